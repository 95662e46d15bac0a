package event_test

import (
	"testing"
	"time"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// BenchmarkAppendJSON is the per-line encoding cost of every line sink.
func BenchmarkAppendJSON(b *testing.B) {
	payload := make([]byte, 64)
	for i := range payload {
		payload[i] = byte(i)
	}
	cases := []struct {
		name string
		r    event.Record
	}{
		{"data64", event.Record{
			Time: time.Now().UnixNano(), Sender: 4242,
			Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 2718, Val: 28}, Seq: 7, Len: 64, Data: payload},
		}},
		{"fork", event.Record{
			Time:    time.Now().UnixNano(),
			Msg:     cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 7, Len: 40},
			Proc:    cnmsg.ProcEvent{What: cnmsg.ProcFork, CPU: 1, TimestampNs: 123456789, ParentPID: 1, ParentTGID: 1, ChildPID: 4242, ChildTGID: 4242},
			HasProc: true,
		}},
		{"exit", event.Record{
			Time:    time.Now().UnixNano(),
			Msg:     cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 8, Len: 40},
			Proc:    cnmsg.ProcEvent{What: cnmsg.ProcExit, CPU: 1, TimestampNs: 123456789, PID: 4242, TGID: 4242, ExitCode: 256, ExitSignal: 17, ParentPID: 1, ParentTGID: 1, HasParent: true},
			HasProc: true,
		}},
		{"loss", event.Record{
			Kind: event.KindLoss, Time: time.Now().UnixNano(),
			Msg:  cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}},
			Loss: event.Loss{CPU: 1, HasCPU: true, FromSeq: 10, ToSeq: 19, Lost: 10},
		}},
	}
	enc := event.NewEncoder("bench-host")
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = enc.AppendJSON(buf[:0], &c.r)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
	// The same, with the per-batch time cache the line sinks use.
	for _, c := range cases {
		b.Run(c.name+"-timecache", func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			var tc event.TimeCache
			b.ReportAllocs()
			for b.Loop() {
				buf = enc.AppendJSONCached(buf[:0], &c.r, &tc)
			}
		})
	}
}
