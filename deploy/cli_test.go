package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// generate runs the built daemon with args and returns its stdout.
func generate(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := buildStatic(t) // before the deadline: the first call builds
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cnbridged %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestCompletionBash: the bash script parses, registers a completion for
// cnbridged when sourced, and completes a subcommand and the values of
// --format, --event and --log-level by asking the binary.
func TestCompletionBash(t *testing.T) {
	needTools(t, "bash")
	script := filepath.Join(t.TempDir(), "cnbridged.bash")
	if err := os.WriteFile(script, generate(t, "completion", "bash"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	// Completing needs bash-completion's helpers (as at a real prompt)
	// and calls the binary (cnbridged __complete ...): put the build first
	// in PATH.
	const loader = "/usr/share/bash-completion/bash_completion"
	if !exists(loader) {
		t.Skipf("%s missing (apt-get install bash-completion)", loader)
	}
	// $2 is the command line being completed, the cursor at its end.
	probe := `. ` + loader + `
. "$1" || exit 1
complete -p cnbridged || exit 1
COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__start_cnbridged cnbridged "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf 'reply:%s\n' "${COMPREPLY[@]}"`
	for _, tt := range []struct {
		line string
		want []string
	}{
		{"cnbridged vali", []string{"validate"}},
		{"cnbridged run --format ", []string{"json", "text"}},
		{"cnbridged --format ", []string{"json", "text"}},
		{"cnbridged tap --event ", []string{"fork", "exec", "exit", "uid", "gid", "sid", "comm", "ptrace", "coredump", "msg"}},
		{"cnbridged check --log-level ", []string{"debug", "info", "warn", "error"}},
	} {
		cmd := exec.CommandContext(t.Context(), "bash", "-c", probe, "probe", script, tt.line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(buildStatic(t))+":"+os.Getenv("PATH"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sourcing the bash completion: %v\n%s%s", err, out, stderr.Bytes())
		}
		if !bytes.Contains(out, []byte("complete ")) || !bytes.Contains(out, []byte(" cnbridged\n")) {
			t.Errorf("complete -p cnbridged printed %q, want a completion for cnbridged", out)
		}
		var got []string
		for _, l := range strings.Split(string(out), "\n") {
			if r, ok := strings.CutPrefix(l, "reply:"); ok {
				got = append(got, strings.TrimSpace(r))
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("completing %q gave %q, want %q", tt.line, got, tt.want)
		}
	}
}

// TestCompletionZshFish: the zsh and fish scripts parse.
func TestCompletionZshFish(t *testing.T) {
	for _, sh := range []struct{ shell, check string }{{"zsh", "-n"}, {"fish", "--no-execute"}} {
		t.Run(sh.shell, func(t *testing.T) {
			needTools(t, sh.shell)
			script := filepath.Join(t.TempDir(), "cnbridged."+sh.shell)
			if err := os.WriteFile(script, generate(t, "completion", sh.shell), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh.shell, sh.check, script).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", sh.shell, sh.check, err, out)
			}
		})
	}
}

// TestManPages: cnbridged man DIR writes a page for every command, and man
// renders each without a warning.
func TestManPages(t *testing.T) {
	needTools(t, "man")
	dir := t.TempDir()
	generate(t, "man", dir)
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	for _, p := range manPages {
		if _, err := os.Stat(filepath.Join(dir, p+".1")); err != nil {
			t.Errorf("cnbridged man wrote no %s.1 (wrote %q)", p, pages)
		}
	}
	for _, p := range pages {
		cmd := exec.CommandContext(t.Context(), "man", "--warnings", "-E", "UTF-8", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "PAGER=cat")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("man -l %s: %v\n%s", filepath.Base(p), err, stderr.Bytes())
			continue
		}
		if stderr.Len() > 0 {
			t.Errorf("man -l %s warned:\n%s", filepath.Base(p), stderr.Bytes())
		}
		if !bytes.Contains(stdout.Bytes(), []byte("NAME")) {
			t.Errorf("man -l %s rendered no NAME section:\n%s", filepath.Base(p), stdout.Bytes())
		}
	}
}
