package event

import (
	"hash/crc32"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/proctable"
)

// idSamples are, per kind, records about different facts. A new kind
// must add its own (TestIDsEveryKind fails until it does).
func idSamples() map[Kind][]Record {
	proc := func(cpu, seq uint32) Record {
		return Record{Time: 7, HasProc: true, Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, CPU: cpu},
			Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: seq}}
	}
	user := func(t int64, port, seq uint32) Record {
		return Record{Time: t, Sender: port, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 10, Val: 2}, Seq: seq}}
	}
	loss := func(cpu, from, to uint32) Record {
		return Record{Kind: KindLoss, Time: 7, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}},
			Loss: Loss{CPU: cpu, HasCPU: true, FromSeq: from, ToSeq: to, Lost: to - from + 1}}
	}
	gap := func(from, to int64) Record {
		// Gap and exit_lost records carry no CPU and seq 0: their ids must
		// not come from the message (issue 20: all of them had one id).
		return Record{Kind: KindGap, Time: to, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Gap: &Gap{From: from, To: to}}
	}
	lost := func(tgid uint32, ticks uint64) Record {
		return Record{Kind: KindExitLost, Time: 7, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Enrich: EnrichDone,
			Enriched: &Enrichment{Process: &proctable.Process{TGID: tgid, PID: tgid, StartTicks: ticks,
				EntityID: proctable.EntityID("b00t", tgid, ticks)}}}
	}
	supp := func(route int, from int64, key string, overflow bool) Record {
		return Record{Kind: KindSuppressed, Time: 7, Suppressed: &Suppressed{Route: route, From: from, To: from + 1e9, Count: 3, Overflow: overflow,
			Key: []KeyValue{{Path: "process.exe", Value: key}}}}
	}
	life := func(entity string, t int64) Record {
		return Record{Kind: KindLife, Time: t, Life: &Life{Process: fields.Some(fields.Process{EntityID: fields.Some(entity)})}}
	}
	return map[Kind][]Record{
		KindMessage: {proc(0, 1), proc(1, 1), proc(0, 2),
			{Time: 7, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 10, Val: 2}, Seq: 1}},
			// A sender that does not number its messages, several per
			// receive time, and a second sender.
			user(7, 99, 0), user(7, 99, 0), user(7, 99, 0), user(8, 99, 0), user(7, 98, 0)},
		KindLoss:     {loss(0, 4, 6), loss(1, 4, 6), loss(0, 7, 9)},
		KindGap:      {gap(100, 200), gap(200, 300), gap(100, 300)},
		KindExitLost: {lost(42, 1000), lost(42, 2000), lost(43, 1000)},
		KindSuppressed: {supp(1, 100, "/usr/bin/cc", false), supp(1, 100, "/usr/bin/ld", false), supp(2, 100, "/usr/bin/cc", false),
			supp(1, 200, "/usr/bin/cc", false), supp(1, 100, "", true)},
		KindLife: {life("b:7:1", 7), life("b:8:1", 7), life("b:7:1", 9)},
	}
}

// TestIDsEveryKind (issue 20): every kind has a name and an id rule of
// its own, and records about different facts get different ids, also
// when they arrive with one receive time.
func TestIDsEveryKind(t *testing.T) {
	samples := idSamples()
	var g IDs
	seen := map[string]Kind{}
	for _, k := range Kinds() {
		if strings.HasPrefix(k.String(), "kind") {
			t.Errorf("kind %d has no name", k)
		}
		rs := samples[k]
		if len(rs) < 2 {
			t.Errorf("kind %s: no id samples; give it an id rule in IDs.Append and samples here", k)
		}
		for i := range rs {
			id := string(g.Append(nil, &rs[i]))
			if strings.HasPrefix(id, k.String()+":t") {
				t.Errorf("kind %s: id %q is the fallback: give the kind an id rule", k, id)
			}
			if other, dup := seen[id]; dup {
				t.Errorf("kind %s record %d: id %q already given to a %s record", k, i, id, other)
			}
			seen[id] = k
		}
	}
}

// TestIDsStable: the same fact gets the same id from another sink or a
// restarted daemon (a fresh IDs), so JetStream drops the copy.
func TestIDsStable(t *testing.T) {
	for k, rs := range idSamples() {
		var a, b IDs
		for i := range rs {
			x, y := string(a.Append(nil, &rs[i])), string(b.Append(nil, &rs[i]))
			if x != y {
				t.Errorf("kind %s record %d: ids %q and %q", k, i, x, y)
			}
		}
	}
}

func TestIDs(t *testing.T) {
	exec := Record{Time: 1, HasProc: true, Proc: cnmsg.ProcEvent{What: cnmsg.ProcExec, CPU: 3},
		Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}, Seq: 7}}
	user := Record{Time: 99, Sender: 4242, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 10, Val: 2}, Seq: 5}}
	kern := Record{Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 10, Val: 2}, Seq: 5}}
	loss := Record{Kind: KindLoss, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Loss: Loss{CPU: 1, HasCPU: true, FromSeq: 4, ToSeq: 6, Lost: 3}}
	gap := Record{Kind: KindGap, Time: 20, Msg: cnmsg.Message{ID: cnmsg.ID{Idx: 1, Val: 1}}, Gap: &Gap{From: 10, To: 20}}
	lost := Record{Kind: KindExitLost, Time: 20, Enriched: &Enrichment{Process: &proctable.Process{EntityID: "B:42:1000"}}}
	supp := Record{Kind: KindSuppressed, Time: 20, Suppressed: &Suppressed{Route: 2, From: 10, To: 20, Overflow: true}}
	life := Record{Kind: KindLife, Time: 20, Life: &Life{Process: fields.Some(fields.Process{EntityID: fields.Some("B:42:1000")})}}
	other := Record{Kind: numKinds, Time: 20}
	var g IDs
	var got []string
	for _, r := range []*Record{&exec, &kern, &user, &user, &loss, &gap, &lost, &supp, &life, &other, &other} {
		got = append(got, string(g.Append(nil, r)))
	}
	want := []string{"1.1:3:7", "10.2:-:5", "10.2@4242:t99:5", "10.2@4242:t99+1:5", "1.1:1:loss4-6",
		"gap:10-20", "exit_lost:B:42:1000", "suppressed:2:t10-20:" + strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte("overflow"))), 16),
		"life:B:42:1000:t20", "kind6:t20+0", "kind6:t20+1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}
