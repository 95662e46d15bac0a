package event_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

func FuzzAppendJSON(f *testing.F) {
	f.Add("web-42", []byte("bash"), []byte{0, 1, 2, 3}, uint32(cnmsg.ProcComm), uint32(256), int64(0))
	f.Add(`a"b\c`, []byte("\xff\xfe\x01\n"), []byte(nil), uint32(cnmsg.ProcExit), uint32(0x8b), int64(-1))
	f.Add("h\u2028\x00", []byte("0123456789abcdefXYZ"), []byte("\"}\n"), uint32(cnmsg.ProcFork), uint32(9), int64(1<<62))
	f.Add("\xed\xa0\x80", []byte("\xf0\x9f\x98"), []byte{0xff}, uint32(0x8), uint32(0x7f), int64(123456789))
	f.Fuzz(func(t *testing.T, host string, comm, data []byte, what, exitCode uint32, ts int64) {
		enc := event.NewEncoder(host)
		ev := cnmsg.ProcEvent{What: cnmsg.What(what), PID: 1, TGID: 1, ExitCode: exitCode, HasParent: what&1 != 0}
		copy(ev.Comm[:], comm)
		records := []event.Record{
			{Time: ts, Msg: cnmsg.Message{ID: procID, Len: 40}, Proc: ev, HasProc: true},
			{Time: ts, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: what, Val: exitCode}, Len: uint16(len(data)), Data: data}},
			{Kind: event.KindLoss, Time: ts, Msg: cnmsg.Message{ID: procID}, Loss: event.Loss{HasCPU: what&2 != 0, Lost: exitCode}},
		}
		for i := range records {
			line := enc.AppendJSON(nil, &records[i])
			if !bytes.HasSuffix(line, []byte("}\n")) || bytes.IndexByte(line, '\n') != len(line)-1 {
				t.Fatalf("record %d: line %q does not end in exactly one newline", i, line)
			}
			if !json.Valid(line) {
				t.Fatalf("record %d: invalid JSON %q", i, line)
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if utf8.ValidString(host) && m["host"] != host {
				t.Errorf("record %d: host = %q, want %q", i, m["host"], host)
			}
			switch i {
			case 0:
				c := string(ev.CommBytes())
				if proc, _ := m["proc"].(map[string]any); ev.What == cnmsg.ProcComm && utf8.ValidString(c) && proc["comm"] != c {
					t.Errorf("comm = %q, want %q", proc["comm"], c)
				}
			case 1:
				s, _ := m["data"].(string)
				if got, err := base64.StdEncoding.DecodeString(s); err != nil || !bytes.Equal(got, data) {
					t.Errorf("data %q decodes to %q, %v; want %q", s, got, err, data)
				}
			}
		}
	})
}
