package daemon

import (
	"runtime/debug"
	"testing"
)

func TestBuildInfoResolve(t *testing.T) {
	withVCS := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}},
		}, true
	}
	tagged := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name string
		in   BuildInfo
		read func() (*debug.BuildInfo, bool)
		want BuildInfo
	}{
		{"ldflags win", BuildInfo{Version: "1.0.0", Commit: "fff"}, withVCS, BuildInfo{Version: "1.0.0", Commit: "fff"}},
		{"vcs commit, devel version", BuildInfo{}, withVCS, BuildInfo{Version: "dev", Commit: "abc123"}},
		{"module version", BuildInfo{}, tagged, BuildInfo{Version: "v1.2.3", Commit: "unknown"}},
		{"nothing known", BuildInfo{}, none, BuildInfo{Version: "dev", Commit: "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.resolve(tt.read); got != tt.want {
				t.Errorf("resolve() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
