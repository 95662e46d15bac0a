package lru

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Info stands for a value type that holds strings.
type Info struct {
	Comm string
	PPID uint32
}

func info(pid uint32) Info {
	return Info{Comm: "p" + strconv.Itoa(int(pid)), PPID: pid}
}

func TestMapBound(t *testing.T) {
	const max, n = 4096, 100000
	c := New[uint32, Info](max)
	for pid := uint32(1); pid <= n; pid++ {
		c.Put(pid, info(pid))
		if c.Len() > max {
			t.Fatalf("after %d puts Len() = %d, want at most %d", pid, c.Len(), max)
		}
	}
	if c.Len() != max {
		t.Errorf("Len() = %d, want %d", c.Len(), max)
	}
	// The most recent max pids are there, older ones were evicted.
	for pid := uint32(n - max + 1); pid <= n; pid++ {
		got, ok := c.Get(pid)
		if !ok {
			t.Fatalf("Get(%d) missed", pid)
		}
		if diff := cmp.Diff(info(pid), got); diff != "" {
			t.Fatalf("Get(%d) mismatch (-want +got):\n%s", pid, diff)
		}
	}
	for _, pid := range []uint32{1, 2, n / 2, n - max} {
		if _, ok := c.Get(pid); ok {
			t.Errorf("Get(%d) hit, want it evicted", pid)
		}
	}
	// Forget frees a slot: the next Put evicts nothing.
	c.Remove(n)
	c.Remove(n) // a second time does nothing
	c.Remove(1) // nor does forgetting an absent pid
	if _, ok := c.Get(n); ok {
		t.Errorf("Get(%d) hit after Forget", n)
	}
	if c.Len() != max-1 {
		t.Errorf("Len() after Forget = %d, want %d", c.Len(), max-1)
	}
	c.Put(n+1, info(n+1))
	if _, ok := c.Get(n - max + 1); !ok {
		t.Errorf("Put into a forgotten slot evicted pid %d", n-max+1)
	}
	if c.Len() != max {
		t.Errorf("Len() = %d, want %d", c.Len(), max)
	}
}

func TestMapLRU(t *testing.T) {
	c := New[uint32, Info](3)
	c.Put(1, info(1))
	c.Put(2, info(2))
	c.Put(3, info(3))
	c.Get(1)          // order, newest first: 1 3 2
	c.Put(3, info(3)) // 3 1 2
	c.Put(4, info(4)) // evicts 2
	if _, ok := c.Get(2); ok {
		t.Error("pid 2 survived; want it evicted as least recently used")
	}
	c.Put(5, info(5)) // evicts 1
	for pid, want := range map[uint32]bool{1: false, 3: true, 4: true, 5: true} {
		if _, ok := c.Get(pid); ok != want {
			t.Errorf("Get(%d) hit = %v, want %v", pid, ok, want)
		}
	}
}

func TestMapReplace(t *testing.T) {
	c := New[uint32, Info](2)
	c.Put(7, Info{Comm: "sh"})
	c.Put(7, Info{Comm: "ls"}) // exec
	got, ok := c.Get(7)
	if !ok || got.Comm != "ls" || c.Len() != 1 {
		t.Errorf("Get(7) = %+v, %v with Len %d; want the replaced Info and Len 1", got, ok, c.Len())
	}
}

func TestMapForgetAll(t *testing.T) {
	c := New[uint32, Info](4)
	for round := 0; round < 3; round++ {
		for pid := uint32(1); pid <= 4; pid++ {
			c.Put(pid, info(pid))
		}
		for _, pid := range []uint32{2, 4, 1, 3} {
			c.Remove(pid)
		}
		if c.Len() != 0 {
			t.Fatalf("round %d: Len() = %d after forgetting all, want 0", round, c.Len())
		}
	}
	if len(c.slots) != 4 {
		t.Errorf("slots grew to %d, want 4 reused", len(c.slots))
	}
}

func TestMapZero(t *testing.T) {
	for _, max := range []int{0, -1} {
		c := New[uint32, Info](max)
		c.Put(1, info(1))
		if _, ok := c.Get(1); ok || c.Len() != 0 {
			t.Errorf("New[uint32, Info](%d) holds an entry", max)
		}
		c.Remove(1)
	}
}

func TestMapAllocs(t *testing.T) {
	const max = 1024
	c := New[uint32, Info](max)
	v := info(1)
	pid := uint32(0)
	churn := func() {
		pid++
		c.Put(pid, v)
		c.Get(pid - max/2)
		if pid%3 == 0 {
			c.Remove(pid - 1)
		}
	}
	for i := 0; i < 10*max; i++ {
		churn()
	}
	if got := testing.AllocsPerRun(10000, churn); got != 0 {
		t.Errorf("a full cache allocates %v times per Put/Get/Forget, want 0", got)
	}
}

func BenchmarkMap(b *testing.B) {
	const max = 4096
	v := info(1)
	b.Run("Put", func(b *testing.B) {
		c := New[uint32, Info](max)
		pid := uint32(0)
		b.ReportAllocs()
		for b.Loop() {
			pid++
			c.Put(pid, v) // evicts once full
		}
	})
	b.Run("Get", func(b *testing.B) {
		c := New[uint32, Info](max)
		for pid := uint32(0); pid < max; pid++ {
			c.Put(pid, v)
		}
		pid := uint32(0)
		b.ReportAllocs()
		for b.Loop() {
			pid++
			c.Get(pid % max)
		}
	})
	b.Run("PutForget", func(b *testing.B) {
		c := New[uint32, Info](max)
		for pid := uint32(0); pid < max/2; pid++ {
			c.Put(pid, v)
		}
		pid := uint32(max)
		b.ReportAllocs()
		for b.Loop() {
			pid++
			c.Put(pid, v) // fork
			c.Remove(pid) // exit
		}
	})
}
