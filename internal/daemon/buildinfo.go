package daemon

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo names the running build for cnbridged_build_info.
type BuildInfo struct {
	Version string // release version, set with -ldflags; "" falls back to the module version
	Commit  string // VCS revision; "" falls back to the vcs.revision Go recorded, else "unknown"
}

// resolve fills in what the linker flags left empty from the build
// information Go embeds in the binary.
func (b BuildInfo) resolve(read func() (*debug.BuildInfo, bool)) BuildInfo {
	if bi, ok := read(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		if b.Commit == "" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					b.Commit = s.Value
				}
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// registerBuildInfo exports cnbridged_build_info, a constant 1 whose labels
// name the build.
func registerBuildInfo(reg prometheus.Registerer, b BuildInfo) {
	b = b.resolve(debug.ReadBuildInfo)
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cnbridged_build_info",
		Help: "Always 1; the labels name the running build: version, VCS commit and the Go version it was built with.",
		ConstLabels: prometheus.Labels{
			"version":   b.Version,
			"commit":    b.Commit,
			"goversion": runtime.Version(),
		},
	})
	g.Set(1)
	reg.MustRegister(g)
}
