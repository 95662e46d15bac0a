package procinfo

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStatus(t *testing.T) {
	real, err := os.ReadFile("testdata/proc/7000/status")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		in             string
		ppid, uid, gid uint32
	}{
		{"fixture, setuid", string(real), 6001, 1000, 1000},
		{"minimal", "PPid:\t1\nUid:\t2\t3\t4\t5\nGid:\t6\t7\t8\t9\n", 1, 2, 6},
		{"no trailing newline", "PPid:\t1\nUid:\t2\t2\t2\t2\nGid:\t3", 1, 2, 3},
		{"largest uid", "Uid:\t4294967295\t0\t0\t0\n", 0, 4294967295, 0},
		{"overflow", "Uid:\t4294967296\t0\t0\t0\n", 0, 0, 0},
		{"garbage", "PPid:\tx\nUid:\t12ab\t0\nGid:\n", 0, 0, 0},
		{"TracerPid is not PPid", "TracerPid:\t5\nPPid:\t7\n", 7, 0, 0},
		{"empty", "", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := parseStatus([]byte(tt.in))
			ppid, uid, gid := st.ppid, st.uid, st.gid
			if ppid != tt.ppid || uid != tt.uid || gid != tt.gid {
				t.Errorf("parseStatus = %d, %d, %d, want %d, %d, %d", ppid, uid, gid, tt.ppid, tt.uid, tt.gid)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		max       int
		want      []string
		truncated bool
	}{
		{"args", "ls\x00-l\x00/tmp\x00", 4096, []string{"ls", "-l", "/tmp"}, false},
		{"empty arg kept", "printf\x00\x00x\x00", 4096, []string{"printf", "", "x"}, false},
		{"setproctitle", "postgres: checkpointer ", 4096, []string{"postgres: checkpointer "}, false},
		{"empty", "", 4096, nil, false},
		{"exactly max", "ab\x00cd\x00", 6, []string{"ab", "cd"}, false},
		{"cut in an arg", "ab\x00cdef\x00", 5, []string{"ab", "cd"}, true},
		{"cut after a NUL", "ab\x00cd\x00", 3, []string{"ab", ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := parseCmdline([]byte(tt.in), tt.max)
			if diff := cmp.Diff(tt.want, got); diff != "" || truncated != tt.truncated {
				t.Errorf("parseCmdline(%q, %d) truncated %v, want %v; args (-want +got):\n%s",
					tt.in, tt.max, truncated, tt.truncated, diff)
			}
		})
	}
}

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"v2", "0::/system.slice/sshd.service\n", "/system.slice/sshd.service", true},
		{"hybrid", "2:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\n", "/c", true},
		{"root", "0::/\n", "/", true},
		{"no newline", "0::/x", "/x", true},
		{"v1 only", "2:cpu:/a\n1:name=systemd:/b\n", "", false},
		{"v1 id 10 is not v2", "10::/a\n", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseCgroup([]byte(tt.in))
			if string(got) != tt.want || ok != tt.ok {
				t.Errorf("parseCgroup(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"1/status", "4242/cgroup", "5151/cmdline", "6000/cmdline"} {
		b, err := os.ReadFile("testdata/proc/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 64)
	}
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		parseStatus(b)
		if p, ok := parseCgroup(b); ok && !bytes.Contains(b, p) {
			t.Errorf("parseCgroup returned %q, not in its input", p)
		}
		if max <= 0 {
			return
		}
		args, truncated := parseCmdline(b, max)
		n := 0
		for _, a := range args {
			n += len(a) + 1
		}
		if n > max+1 || truncated != (len(b) > max) {
			t.Errorf("parseCmdline(%q, %d) = %q, %v", b, max, args, truncated)
		}
	})
}
