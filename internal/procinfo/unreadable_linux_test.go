package procinfo

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/cnbridged/cnbridged/internal/cntest"
)

// TestReadOtherUsersProcess: a reader without ptrace access to a process
// (here: this test binary run as nobody, reading pid 1) cannot follow its
// exe and cwd links. Read and ReadExec leave them empty, name them in
// Unreadable, and still read the world-readable files. Before, the empty
// fields said nothing, so enriched events did not list them as missing.
func TestReadOtherUsersProcess(t *testing.T) {
	cntest.NeedRoot(t, "runs this test binary as nobody with setpriv")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv is not installed")
	}
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		os.Args[0], "-test.run=^TestHelperReadOther$").Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var got struct{ Read, Exec Info }
	if err := json.Unmarshal(firstLine(out), &got); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	for name, in := range map[string]Info{"Read": got.Read, "ReadExec": got.Exec} {
		if in.Exe != "" || in.Cwd != "" || len(in.Unreadable) != 2 || in.Unreadable[0] != "exe" || in.Unreadable[1] != "cwd" {
			t.Errorf("%s of pid 1 as nobody: exe %q cwd %q unreadable %v; want both empty and named", name, in.Exe, in.Cwd, in.Unreadable)
		}
		if in.Gone || len(in.Cmdline) == 0 || in.Comm == "" {
			t.Errorf("%s of pid 1 as nobody: %+v; want comm and cmdline read", name, in)
		}
	}
}

// TestHelperReadOther is TestReadOtherUsersProcess's child: it prints what
// it reads of pid 1 as one JSON line.
func TestHelperReadOther(t *testing.T) {
	if os.Getuid() != 65534 {
		t.Skip("run by TestReadOtherUsersProcess as nobody")
	}
	var r Reader
	defer r.Close()
	read, err := r.Read(1)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := r.ReadExec(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(struct{ Read, Exec Info }{read, ex})
	os.Stdout.Write(append(b, '\n'))
}

func firstLine(b []byte) []byte {
	line, _, _ := bytes.Cut(b, []byte{'\n'}) // the JSON comes before PASS
	return line
}
