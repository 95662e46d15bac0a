package listener

// JoinRights says what joining the connector's multicast groups takes on
// this kernel, and whether this process has it. The kernel lets a socket
// join when the connector was registered with NL_CFG_F_NONROOT_RECV, or
// when the caller holds CAP_NET_ADMIN in the network namespace's user
// namespace (netlink_allowed in net/netlink/af_netlink.c). Whether the
// connector sets that flag has changed between kernel versions and builds,
// so ProbeJoin tries it instead of guessing from the version.
type JoinRights struct {
	// CapNetAdmin: the calling thread holds CAP_NET_ADMIN (effective).
	CapNetAdmin bool
	// Unprivileged is what the kernel answered a socket without
	// CAP_NET_ADMIN joining group 1: JoinAllowed, JoinRefused (EPERM), or
	// JoinUnknown when the probe could not shed the capability to ask
	// (capset refused, e.g. by a seccomp filter).
	Unprivileged JoinAnswer
	// Err is why the answer is JoinUnknown (nil otherwise).
	Err error
}

// JoinAnswer is the kernel's answer to an unprivileged join.
type JoinAnswer int

// JoinAnswer values.
const (
	JoinUnknown JoinAnswer = iota
	JoinAllowed
	JoinRefused
)

func (a JoinAnswer) String() string {
	switch a {
	case JoinAllowed:
		return "allowed"
	case JoinRefused:
		return "refused"
	}
	return "unknown"
}

// CanJoin reports whether this process can join the groups: it holds
// CAP_NET_ADMIN, or the kernel lets anyone join. It is false when neither
// holds, and also when the kernel's answer is unknown without the
// capability (which the probe then tried as is).
func (r JoinRights) CanJoin() bool { return r.CapNetAdmin || r.Unprivileged == JoinAllowed }
