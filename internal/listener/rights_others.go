//go:build !linux

package listener

// ProbeJoin returns ErrUnsupported in Err: there is no connector.
func ProbeJoin() JoinRights { return JoinRights{Err: ErrUnsupported} }
