package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/cnbridged/cnbridged/internal/daemon"
)

// version and commit are set at build time:
//
//	go build -ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.commit=$(git rev-parse HEAD)" ./cmd/cnbridged
//
// Without them, versionInfo falls back to what the Go toolchain recorded
// (the module version for `go install …@vX`, the VCS revision for a build
// in a git checkout without -buildvcs=false).
var (
	version string
	commit  string
)

// versionInfo returns the version, commit and Go version of this binary.
func versionInfo() (ver, rev, goVersion string) {
	ver, rev, goVersion = version, commit, runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return orUnknown(ver), orUnknown(rev), goVersion
	}
	if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	if rev == "" {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	if ver == "" && rev != "" {
		ver = "devel"
	}
	return orUnknown(ver), orUnknown(rev), goVersion
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// versionString is what --version and `version` print.
func versionString() string {
	v, c, g := versionInfo()
	return fmt.Sprintf("cnbridged %s (commit %s, %s)", v, c, g)
}

// buildInfo names this build for cnbridged_build_info, as version prints it.
func buildInfo() daemon.BuildInfo {
	v, c, _ := versionInfo()
	return daemon.BuildInfo{Version: v, Commit: c}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return nil
		},
	}
}

// newManCmd generates section 1 man pages from the command definitions
// (used by packaging; hidden from help).
func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write man pages (section 1) for every command into DIR",
		Hidden: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("man takes one argument, the output directory; got %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return runtimeError(err)
			}
			v, _, _ := versionInfo()
			hdr := &doc.GenManHeader{Title: "CNBRIDGED", Section: "1", Source: "cnbridged " + v, Manual: "cnbridged manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return runtimeError(fmt.Errorf("man pages in %s: %w", args[0], err))
			}
			return nil
		},
	}
}
