package proctable

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkMemory65536 fills a table with 65 536 live processes, each with
// a typical image (a 60-byte exe path, 4 arguments, a 50-byte cgroup), as
// a fork then an exec make them, and reports the heap and the resident
// memory they hold per entry and in all.
func BenchmarkMemory65536(b *testing.B) {
	const n = DefaultMaxEntries
	for b.Loop() {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		rss0 := vmRSS()
		tb := New(Options{BootID: "2761f572-1620-42ee-aba7-50e6c1c3f2f5"})
		tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/usr/lib/systemd/systemd", Cmdline: []string{"/sbin/init"}, Cgroup: "/init.scope"})
		for pid := uint32(2); pid <= n; pid++ {
			tb.Fork(1, pid, pid, uint64(pid)*1e7+5e6)
			tb.Exec(pid, pid, &Observed{
				Exe:     "/usr/local/lib/service-" + strconv.Itoa(int(pid)) + strings.Repeat("x", 30) + "/bin/worker",
				Cmdline: []string{"worker", "--config=/etc/worker/worker.yaml", "--id=" + strconv.Itoa(int(pid)), "--verbose"},
				Cwd:     "/var/lib/worker", Comm: "worker", User: "worker", UID: 1000, EUID: 1000, GID: 1000, EGID: 1000,
				Cgroup: "/system.slice/worker-" + strconv.Itoa(int(pid)) + ".service/" + strings.Repeat("y", 20),
			}, false)
		}
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		rss1 := vmRSS()
		heap := float64(m1.HeapAlloc - m0.HeapAlloc)
		b.ReportMetric(heap/float64(tb.Len()), "heap-B/entry")
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rss1-rss0)/(1<<20), "rss-MiB")
		runtime.KeepAlive(tb)
	}
}

// BenchmarkMemoryExited fills the exited memory (DefaultMaxExited
// processes, each with the typical image of BenchmarkMemory65536, forked,
// exec'd and exited) and reports the heap each remembered process holds.
func BenchmarkMemoryExited(b *testing.B) {
	const n = DefaultMaxExited
	for b.Loop() {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		tb := New(Options{BootID: "2761f572-1620-42ee-aba7-50e6c1c3f2f5"})
		tb.Seed(&Observed{PID: 1, StartTicks: 1, Exe: "/usr/lib/systemd/systemd", Cmdline: []string{"/sbin/init"}, Cgroup: "/init.scope"})
		for pid := uint32(2); pid < n+2; pid++ {
			tb.Fork(1, pid, pid, uint64(pid)*1e7+5e6)
			tb.Exec(pid, pid, &Observed{
				Exe:     "/usr/local/lib/service-" + strconv.Itoa(int(pid)) + strings.Repeat("x", 30) + "/bin/worker",
				Cmdline: []string{"worker", "--config=/etc/worker/worker.yaml", "--id=" + strconv.Itoa(int(pid)), "--verbose"},
				Cwd:     "/var/lib/worker", Comm: "worker", User: "worker", UID: 1000, EUID: 1000, GID: 1000, EGID: 1000,
				Cgroup: "/system.slice/worker-" + strconv.Itoa(int(pid)) + ".service/" + strings.Repeat("y", 20),
			}, false)
			tb.Exit(pid, pid, uint64(pid)*1e7+8e6)
		}
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		if st := tb.Stats(); st.Exited != n || st.Processes != 1 {
			b.Fatalf("stats %+v, want %d exited", st, n)
		}
		heap := float64(m1.HeapAlloc - m0.HeapAlloc)
		b.ReportMetric(heap/n, "heap-B/exited")
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		runtime.KeepAlive(tb)
	}
}

// vmRSS returns this process's resident set in bytes (0 when unknown).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
