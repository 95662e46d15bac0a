package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/config"
	"github.com/cnbridged/cnbridged/internal/listener"
)

// grantNetAdmin is the fix for a missing CAP_NET_ADMIN, for each way
// cnbridged is deployed.
const grantNetAdmin = "grant CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN with CapabilityBoundingSet=CAP_NET_ADMIN, as the packaged unit does; " +
	"docker: --cap-add NET_ADMIN; Kubernetes: securityContext.capabilities.add: [NET_ADMIN])"

// kernelJoin says what this kernel answered a join without CAP_NET_ADMIN.
func kernelJoin(r listener.JoinRights) string {
	switch r.Unprivileged {
	case listener.JoinRefused:
		return "this kernel lets only CAP_NET_ADMIN join the connector's groups (probed: a join of group 1 without it is refused)"
	case listener.JoinAllowed:
		return "this kernel lets sockets without CAP_NET_ADMIN join the connector's groups (probed: group 1)"
	}
	return fmt.Sprintf("whether this kernel lets sockets without CAP_NET_ADMIN join is unknown (%v)", r.Err)
}

// checkJoinRights is check's CAP_NET_ADMIN line: whether this process
// holds it, what this kernel needs to join the connector's groups (probed
// at start, see listener.ProbeJoin), and what running without it costs.
func checkJoinRights(c *checker, cfg *config.Config, r listener.JoinRights, rmemMax int) {
	switch {
	case r.CapNetAdmin:
		c.ok("CAP_NET_ADMIN", "held: "+kernelJoin(r)+"; it also gives a receive buffer above net.core.rmem_max, emit and connector requests")
	case r.Unprivileged == listener.JoinRefused:
		c.fail("CAP_NET_ADMIN", "not held, and "+kernelJoin(r)+": no events can be received", grantNetAdmin)
	case r.Unprivileged == listener.JoinUnknown:
		c.warn("CAP_NET_ADMIN", "not held; "+kernelJoin(r), grantNetAdmin)
	case cfg != nil && len(cfg.Requests) > 0:
		c.fail("CAP_NET_ADMIN", "not held: connector requests send to the connector, which needs it", grantNetAdmin)
	default:
		c.warn("CAP_NET_ADMIN", fmt.Sprintf("not held: subscribing works (%s), but the receive buffer is capped at net.core.rmem_max (%d) and emit cannot send", kernelJoin(r), rmemMax),
			"grant CAP_NET_ADMIN for a larger receive buffer, or raise net.core.rmem_max")
	}
}

// joinRefusal is the error run stops with before starting anything when
// this process cannot join the connector's groups: the kernel refuses
// sockets without CAP_NET_ADMIN, and the process lacks it. Nil otherwise
// (also when the kernel's answer is unknown: the join decides).
func joinRefusal(r listener.JoinRights) error {
	if r.Unprivileged != listener.JoinRefused || r.CapNetAdmin {
		return nil
	}
	return errors.New("cannot join the connector's groups: " + kernelJoin(r) + ", and this process lacks it; " + grantNetAdmin)
}

// logJoinRights is run's line saying which case holds here, once the
// daemon runs: whether the process holds CAP_NET_ADMIN and whether this
// kernel lets sockets without it join.
func logJoinRights(log *zap.Logger, r listener.JoinRights) {
	fields := []zap.Field{zap.Bool("cap_net_admin", r.CapNetAdmin), zap.Stringer("unprivileged_join", r.Unprivileged)}
	if r.Err != nil {
		fields = append(fields, zap.NamedError("probe_error", r.Err))
	}
	log.Info("connector join rights", fields...)
}

// hidePID is the hidepid option of the /proc mount in a mountinfo table
// (/proc/self/mountinfo): "invisible", "ptraceable", "noaccess" (or their
// numbers 2, 4, 1), or "" when /proc shows every process. systemd's
// ProtectProc= sets it, and the packaged unit sets ProtectProc=invisible.
func hidePID(mountinfo []byte) string {
	for _, l := range strings.Split(string(mountinfo), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || f[4] != "/proc" || len(g) < 3 || g[0] != "proc" {
			continue
		}
		for _, o := range strings.Split(g[2], ",") {
			if v, ok := strings.CutPrefix(o, "hidepid="); ok && v != "0" && v != "off" {
				return v
			}
		}
		return ""
	}
	return ""
}

// logProcVisibility warns at start when routes enrich but /proc hides
// other users' processes: enrichment then sees only the processes this
// user may ptrace, so the lines of every other process carry no process
// details.
func logProcVisibility(log *zap.Logger, cfg *config.Config, hidepid string) {
	if hidepid == "" || !slices.ContainsFunc(cfg.Routes, func(r config.Route) bool { return r.Enrich }) {
		return
	}
	log.Warn("routes enrich, but /proc hides other users' processes (hidepid="+hidepid+", systemd ProtectProc=, which the packaged unit sets): "+
		"their events carry no process details; to enrich them, install the drop-in /usr/share/doc/cnbridged/enrich.conf (ProtectProc=default and the reader's realtime priority) as /etc/systemd/system/cnbridged.service.d/enrich.conf",
		zap.String("hidepid", hidepid))
}
