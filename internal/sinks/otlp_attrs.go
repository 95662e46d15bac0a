package sinks

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// OpenTelemetry semantic-convention attribute names (registry 1.44.0,
// model/process, container, k8s), README "Schemas".
const (
	attrProcessPID         = "process.pid"
	attrProcessParentPID   = "process.parent_pid"
	attrExecutablePath     = "process.executable.path"
	attrExecutableName     = "process.executable.name"
	attrProcessCommand     = "process.command"
	attrCommandArgs        = "process.command_args"
	attrArgsCount          = "process.args_count"
	attrProcessOwner       = "process.owner"
	attrUserID             = "process.user.id"
	attrUserName           = "process.user.name"
	attrRealUserID         = "process.real_user.id"
	attrRealUserName       = "process.real_user.name"
	attrWorkingDirectory   = "process.working_directory"
	attrCreationTime       = "process.creation.time"
	attrExitCode           = "process.exit.code"
	attrExitTime           = "process.exit.time"
	attrLinuxCgroup        = "process.linux.cgroup"
	attrContainerID        = "container.id"
	attrK8sPodUID          = "k8s.pod.uid"
	attrHostName           = "host.name"
	attrServiceName        = "service.name"
	attrServiceVersion     = "service.version"
	otlpServiceName        = "cnbridged"
	otlpScopeName          = "github.com/cnbridged/cnbridged"
	otlpEventNamePrefix    = "cnbridged."
	otlpSeverityTextInfo   = "INFO"
	otlpSeverityTextWarn   = "WARN"
	otlpProcessEventPrefix = "process."
)

// otlpAttributes puts the record's process attributes, under their
// semantic-convention names, into m: the process the record is about
// (the table's description where it has one, the kernel event's ids
// otherwise), its parent's pid, its container and pod, and for an exit
// its code and time. Records that are about no process add nothing.
func otlpAttributes(m pcommon.Map, r *fields.Record) {
	var p *fields.Proc
	if r.Proc.Set {
		p = &r.Proc.V
	}
	if !r.Process.Set && p == nil {
		return
	}
	pr := &r.Process.V
	pid := pr.PID
	if !pid.Set && p != nil {
		if p.Event == "fork" {
			pid = p.ChildTGID
		} else {
			pid = p.TGID
		}
	}
	if pid.Set {
		m.PutInt(attrProcessPID, pid.V)
	}
	switch {
	case r.Parent.Set && r.Parent.V.PID.Set:
		m.PutInt(attrProcessParentPID, r.Parent.V.PID.V)
	case pr.PPID.Set:
		m.PutInt(attrProcessParentPID, pr.PPID.V)
	case p != nil && p.ParentTGID.Set:
		m.PutInt(attrProcessParentPID, p.ParentTGID.V)
	}
	if pr.Exe.Set && pr.Exe.V != "" {
		m.PutStr(attrExecutablePath, pr.Exe.V)
		m.PutStr(attrExecutableName, pr.Exe.V[strings.LastIndexByte(pr.Exe.V, '/')+1:])
	}
	if args := pr.Cmdline.V; pr.Cmdline.Set && len(args) > 0 {
		m.PutStr(attrProcessCommand, args[0])
		s := m.PutEmptySlice(attrCommandArgs)
		s.EnsureCapacity(len(args))
		for _, a := range args {
			s.AppendEmpty().SetStr(a)
		}
		m.PutInt(attrArgsCount, int64(len(args)))
	}
	uid, euid := pr.UID, pr.EUID
	if p != nil && p.RUID.Set {
		uid, euid = p.RUID, p.EUID
	}
	named := pr.User.Set && pr.User.V != "" && uid.Set && uid.V == pr.UID.V
	if euid.Set {
		m.PutInt(attrUserID, euid.V)
		if named && euid.V == uid.V {
			m.PutStr(attrUserName, pr.User.V)
		}
	}
	if uid.Set {
		m.PutInt(attrRealUserID, uid.V)
		if named {
			m.PutStr(attrRealUserName, pr.User.V)
			m.PutStr(attrProcessOwner, pr.User.V)
		}
	}
	if pr.Cwd.Set && pr.Cwd.V != "" {
		m.PutStr(attrWorkingDirectory, pr.Cwd.V)
	}
	l := &r.Life.V
	switch {
	case pr.StartTime.Set:
		m.PutStr(attrCreationTime, pr.StartTime.V)
	case r.Life.Set && l.Start.Set:
		m.PutStr(attrCreationTime, l.Start.V)
	}
	if p != nil && p.Event == "exit" {
		switch {
		case p.ExitStatus.Set:
			m.PutInt(attrExitCode, p.ExitStatus.V)
		case p.Signal.Set && p.ExitCode.Set:
			m.PutInt(attrExitCode, 128+p.ExitCode.V&0x7f) // as a shell reports it
		}
		m.PutStr(attrExitTime, r.Time)
	}
	if r.Life.Set && l.End.Set { // a closed life: its exit
		switch {
		case l.ExitStatus.Set:
			m.PutInt(attrExitCode, l.ExitStatus.V)
		case l.Signal.Set && l.ExitCode.Set:
			m.PutInt(attrExitCode, 128+l.ExitCode.V&0x7f)
		}
		m.PutStr(attrExitTime, l.End.V)
	}
	if pr.Cgroup.Set && pr.Cgroup.V != "" {
		m.PutStr(attrLinuxCgroup, pr.Cgroup.V)
	}
	if pr.ContainerID.Set {
		m.PutStr(attrContainerID, pr.ContainerID.V)
	}
	if pr.PodUID.Set {
		m.PutStr(attrK8sPodUID, pr.PodUID.V)
	}
}

// otlpEventName is the LogRecord's event name: cnbridged.process.exec,
// cnbridged.process.exit, …, cnbridged.loss, cnbridged.gap, ….
func otlpEventName(r *fields.Record) string {
	switch {
	case r.Type.Set:
		return otlpEventNamePrefix + r.Type.V
	case r.Proc.Set:
		return otlpEventNamePrefix + otlpProcessEventPrefix + r.Proc.V.Event
	}
	return otlpEventNamePrefix + "message"
}

// otlpSeverity is INFO for what happened, WARN for records that say
// events are missing (loss, gap, a slow tap client's drops).
func otlpSeverity(r *fields.Record) (plog.SeverityNumber, string) {
	if r.Type.Set {
		switch r.Type.V {
		case fields.TypeLoss, fields.TypeGap, fields.TypeTapDropped:
			return plog.SeverityNumberWarn, otlpSeverityTextWarn
		}
	}
	return plog.SeverityNumberInfo, otlpSeverityTextInfo
}
