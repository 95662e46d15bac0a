package procinfo

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPodUID(t *testing.T) {
	const uid = "1b2c3d4e-0000-4111-8222-123456789abc"
	tests := []struct{ in, want string }{
		{"/kubepods/burstable/pod" + uid + "/" + strings.Repeat("a", 64), uid},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-x.scope", uid},
		{"/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice", uid},
		{"/system.slice/pod" + uid, ""},        // not under kubepods
		{"/kubepods/burstable/podnotauid", ""}, // malformed
		{"/kubepods/burstable/pod" + strings.ToUpper(uid), ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := PodUID(tt.in); got != tt.want {
			t.Errorf("PodUID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParsePasswd(t *testing.T) {
	got := ParsePasswd([]byte("root:x:0:0:root:/root:/bin/bash\n# c\nbad\nalice:x:1000:1000::/home/a:/bin/sh\nalias:x:1000:1000::/:/bin/sh\nnum:x:zz:0::/:\n"))
	want := map[uint32]string{0: "root", 1000: "alice"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParsePasswd (-want +got):\n%s", diff)
	}
}

func TestUsersReload(t *testing.T) {
	p := t.TempDir() + "/passwd"
	os.WriteFile(p, []byte("root:x:0:0::/:\n"), 0o644)
	u := Users{Path: p, MinReload: time.Minute}
	now := time.Unix(1000, 0)
	if got := u.Name(0, now); got != "root" {
		t.Errorf("Name(0) = %q, want root", got)
	}
	os.WriteFile(p, []byte("root:x:0:0::/:\nbob:x:7:7::/:\n"), 0o644)
	if got := u.Name(7, now.Add(time.Second)); got != "" {
		t.Errorf("Name(7) within MinReload = %q, want \"\" (no reread)", got)
	}
	if got := u.Name(7, now.Add(2*time.Minute)); got != "bob" {
		t.Errorf("Name(7) after MinReload = %q, want bob", got)
	}
}

func TestParseStartTicks(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1 (a b) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345 100 1", 12345, true},
		{"1 (x) y) (z) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 777 100 1", 777, true},
		{"1 (short) S 0 1", 0, false},
		{"no paren", 0, false},
	} {
		got, ok := parseStartTicks([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseStartTicks(%q) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReadExecAndStart(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var r Reader
	pid := uint32(cmd.Process.Pid)
	var in Info
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		if in, err = r.ReadExec(pid, nil); err != nil {
			t.Fatal(err)
		}
		if in.Comm == "sleep" && len(in.Cmdline) == 2 { // comm is set before the arguments
			break
		}
		time.Sleep(5 * time.Millisecond) // poll until the child has exec'd
	}
	wd, _ := os.Getwd()
	if in.Comm != "sleep" || in.Cwd != wd || !cmp.Equal(in.Cmdline, []string{"sleep", "5"}) {
		t.Errorf("ReadExec = %+v, want comm sleep, cwd %s, cmdline [sleep 5]", in, wd)
	}
	full, err := r.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	ticks, gone, err := r.ReadStartTicks(pid)
	if err != nil || gone || ticks == 0 || ticks != full.StartTicks {
		t.Errorf("ReadStartTicks = %d, %v, %v; Read said %d", ticks, gone, err, full.StartTicks)
	}
}
