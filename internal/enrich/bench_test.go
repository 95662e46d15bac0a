package enrich

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/cnmsg"
	"github.com/cnbridged/cnbridged/internal/event"
)

// BenchmarkEnrichment compares, in one run, the cost per process event of
// encoding it as is and of enriching it first. exec: an exec of this
// process (a live process whose /proc entry is read for real); forkexit
// and threads: a fork and the exit of the child (a process, or a thread of
// this process), described from the process table; cycle: a process's
// fork, exec and exit. Events/s = 1e9 / ns/op. The baseline, f57ef5d, read
// /proc for every fork and exec (docs/performance.md).
func BenchmarkEnrichment(b *testing.B) {
	self := uint32(os.Getpid())
	enc := event.NewEncoder("bench")
	pool := event.NewPool()
	buf := make([]byte, 0, 1<<20)
	kids := sleepers(b, 64)
	// base is a fork timestamp of now, in the middle of a tick: forks
	// are stamped from it on, after the processes seeded below started.
	var base uint64
	run := func(b *testing.B, enrich bool, gen func(i int) cnmsg.ProcEvent, readers ...int) {
		o := Options{MaxEntries: 65536, NoSeed: true}
		if len(readers) > 0 {
			o.ExecReaders = readers[0]
		}
		e := New(o, prometheus.NewRegistry(), zap.NewNop())
		// The table knows these processes, as it would after its start scan.
		for _, pid := range append([]uint32{1, self}, kids...) {
			if o, ok := e.observe(pid); ok {
				e.table.Seed(&o)
			}
		}
		base = midTick(e, monotonicNs())
		evs := make([]cnmsg.ProcEvent, event.MaxBatchRecords)
		b.ReportAllocs()
		cpu0 := cpuNs()
		defer func() { b.ReportMetric(float64(cpuNs()-cpu0)/float64(b.N), "cpu-ns/op") }()
		i := 0
		for done := 0; done < b.N; {
			n := min(len(evs), b.N-done)
			for k := range evs[:n] {
				evs[k] = gen(i)
				i++
			}
			batch := procBatch(pool, evs[:n]...)
			if enrich {
				enrichNow(e, batch)
			} else {
				for i := range batch.Records {
					batch.Records[i].Enrich = event.EnrichNone
				}
			}
			for i := range batch.Records {
				buf = enc.AppendJSON(buf[:0], &batch.Records[i])
			}
			done += len(batch.Records)
			batch.Release()
		}
	}
	exec := func(int) cnmsg.ProcEvent { return cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self, TGID: self} }
	// execs of 64 live processes in turn: a burst of execs is of
	// different processes, which readers in parallel do not contend on.
	execMany := func(i int) cnmsg.ProcEvent {
		pid := kids[i%len(kids)]
		return cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid}
	}
	// Children get pids from 4 000 000 up (pid_max), so they never collide
	// with this process's.
	forkExit := func(i int) cnmsg.ProcEvent {
		child := uint32(4_000_000 + i/2)
		if i%2 == 0 {
			return cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: self, ParentTGID: self, ChildPID: child, ChildTGID: child,
				TimestampNs: base + uint64(i)*10_000_000}
		}
		return cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: child, TGID: child}
	}
	threads := func(i int) cnmsg.ProcEvent {
		tid := uint32(4_000_000 + i/2)
		if i%2 == 0 {
			return cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: self, ParentTGID: self, ChildPID: tid, ChildTGID: self}
		}
		return cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: tid, TGID: self}
	}
	// A process's life: fork (from pid 1), exec, exit; the child is this
	// process, so that the exec's /proc read is of a live process.
	cycle := func(i int) cnmsg.ProcEvent {
		switch i % 3 {
		case 0:
			return cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: 1, ParentTGID: 1, ChildPID: self, ChildTGID: self,
				TimestampNs: base + uint64(i)*10_000_000}
		case 1:
			return cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: self, TGID: self}
		}
		return cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: self, TGID: self}
	}
	b.Run("cycle/enriched", func(b *testing.B) { run(b, true, cycle) })
	b.Run("exec/plain", func(b *testing.B) { run(b, false, exec) })
	b.Run("exec/enriched", func(b *testing.B) { run(b, true, exec) })
	// The same execs read by two goroutines (process_table.exec_readers:
	// 2, the default on this 2-CPU machine): ns/op is the rate, cpu-ns/op
	// the cost.
	b.Run("exec/enriched-readers2", func(b *testing.B) { run(b, true, exec, 2) })
	b.Run("execmany/enriched", func(b *testing.B) { run(b, true, execMany) })
	b.Run("execmany/enriched-readers2", func(b *testing.B) { run(b, true, execMany, 2) })
	b.Run("forkexit/plain", func(b *testing.B) { run(b, false, forkExit) })
	b.Run("forkexit/enriched", func(b *testing.B) { run(b, true, forkExit) })
	b.Run("threads/enriched", func(b *testing.B) { run(b, true, threads) })
}

// sleepers starts n processes that sleep until the benchmark ends and
// returns their pids.
func sleepers(b *testing.B, n int) []uint32 {
	pids, stop := startSleepers(b, n)
	b.Cleanup(stop)
	return pids
}

// startSleepers starts n sleeping processes; stop ends them.
func startSleepers(b *testing.B, n int) (pids []uint32, stop func()) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	for range n {
		cmd := exec.Command("sleep", "3600")
		if err := cmd.Start(); err != nil {
			stop()
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	return pids, stop
}

// cpuNs is the CPU time (user and system) this process has used: under a
// loaded machine a steadier measure than the wall time per op.
func cpuNs() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkExecFresh is the exec case for processes /proc has not shown
// before, as every real exec is: the kernel builds /proc's entries for a
// process on its first lookup, and that costs more than the reads that
// follow (docs/performance.md). exec: each op is the exec of its own
// sleeping process, which the table knows from its fork event (applied
// outside the timer, as the daemon's table knows it: no /proc read);
// life: each op is a process's fork, exec and exit, all timed (cpu-ns/op
// per process, not per event). Processes are started and ended a batch
// at a time outside the timer (about 1 ms each: -benchtime 2000x keeps it
// short).
func BenchmarkExecFresh(b *testing.B) {
	b.Run("exec", func(b *testing.B) { benchFresh(b, false) })
	b.Run("life", func(b *testing.B) { benchFresh(b, true) })
}

func benchFresh(b *testing.B, life bool) {
	self := uint32(os.Getpid())
	e := New(Options{MaxEntries: 65536, NoSeed: true}, prometheus.NewRegistry(), zap.NewNop())
	if o, ok := e.observe(self); ok {
		e.table.Seed(&o)
	}
	pool := event.NewPool()
	enc := event.NewEncoder("bench")
	buf := make([]byte, 0, 1<<20)
	var cpu int64
	now := monotonicNs() // forks are stamped from now on, after this process started
	apply := func(evs []cnmsg.ProcEvent, timed bool) {
		if timed {
			b.StartTimer()
			defer b.StopTimer()
			cpu0 := cpuNs()
			defer func() { cpu += cpuNs() - cpu0 }()
		}
		batch := procBatch(pool, evs...)
		enrichNow(e, batch)
		for i := range batch.Records {
			buf = enc.AppendJSON(buf[:0], &batch.Records[i])
		}
		batch.Release()
	}
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(event.MaxBatchRecords, b.N-done)
		kids, stop := startSleepers(b, n)
		var forks, execs, exits []cnmsg.ProcEvent
		for i, pid := range kids {
			// Mid-tick timestamps: the fork's start needs no /proc read.
			forks = append(forks, cnmsg.ProcEvent{What: cnmsg.ProcFork, ParentPID: self, ParentTGID: self,
				ChildPID: pid, ChildTGID: pid, TimestampNs: midTick(e, now+int64(done+i+1)*10_000_000)})
			execs = append(execs, cnmsg.ProcEvent{What: cnmsg.ProcExec, PID: pid, TGID: pid})
			exits = append(exits, cnmsg.ProcEvent{What: cnmsg.ProcExit, PID: pid, TGID: pid})
		}
		apply(forks, life)
		apply(execs, true)
		apply(exits, life)
		stop()
		done += n
	}
	b.StartTimer()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}
