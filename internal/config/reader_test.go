package config_test

import "testing"

func TestReaderPriority(t *testing.T) {
	if c := load(t, minimal, "listener.reader_priority=0"); c.Listener.ReaderPriority != 0 {
		t.Errorf("reader_priority 0: got %d", c.Listener.ReaderPriority)
	}
	if c := load(t, minimal, "listener.reader_priority=99"); c.Listener.ReaderPriority != 99 {
		t.Errorf("reader_priority 99: got %d", c.Listener.ReaderPriority)
	}
	for _, v := range []string{"-1", "100"} {
		checkErr(t, loadErr(t, minimal, "listener.reader_priority="+v), "listener.reader_priority: "+v+" is outside 0..99")
	}
}
