// Package query answers questions about a host's process table — which
// processes match a where expression (ps), the tree under a process
// (tree), a process's ancestors and descendants (lineage), the table's
// state (info) — and asks them of a whole fleet at once.
//
// Every daemon with a query: section registers a NATS micro service named
// cnbridged (so $SRV.PING|INFO|STATS discovery and "nats micro ls" list the
// fleet) whose endpoints listen on two subjects per question:
//
//	cnbridged.<op>                  every host answers (fan-out)
//	cnbridged.host.<host>.<op>      only that host (a targeted question)
//
// with <op> one of ps, tree, lineage, info and <host> the host's name as
// one subject token (sinks.SubjectToken). The request is a JSON Request;
// each host's answer is one JSON Answer message, bounded by max_rows and
// by the connection's max payload, truncation flagged. A bad request gets
// an error answer (micro's Nats-Service-Error headers, and the Answer's
// error and code), never silence or a crash.
//
// Rows are JSON lines of the output contract: a fields.Record with time
// (when the table was read), host, process and parent, described exactly
// as an enriched event describes them (event.Encoder.TableRow), so command
// line redaction applies as in events.
//
// The same questions go to the local daemon over its tap socket
// (tap.ServerConfig.Queries), with the tap's permissions.
//
// Each daemon also keeps a heartbeat entry in a JetStream key-value bucket
// (Inventory), so that a querier knows which hosts should have answered.
package query

import (
	"encoding/json"
	"strconv"

	"github.com/cnbridged/cnbridged/internal/sinks"
)

// ServiceName is the micro service's name.
const ServiceName = "cnbridged"

// Questions (endpoints).
const (
	OpPS      = "ps"
	OpTree    = "tree"
	OpLineage = "lineage"
	OpInfo    = "info"
)

// Ops lists the questions.
var Ops = []string{OpPS, OpTree, OpLineage, OpInfo}

// Subject prefixes.
const (
	subjectRoot = "cnbridged"
	hostToken   = "host"
)

// AllSubject is the subject every host answers op on.
func AllSubject(op string) string { return subjectRoot + "." + op }

// HostSubject is the subject only host answers op on.
func HostSubject(host, op string) string {
	return subjectRoot + "." + hostToken + "." + sinks.SubjectToken(host) + "." + op
}

// Request is a question. Every member may be left out; members a question
// does not use are refused (a typo must not widen a question).
type Request struct {
	// Host is a glob (path.Match) on host names: a host whose name does
	// not match stays silent. Empty: every host.
	Host string `json:"host,omitempty"`
	// Where selects ps's rows: an expression of the where language
	// (routes' where, tap --where) over a row, which has process, parent
	// and, for the expression only, ancestors.
	Where string `json:"where,omitempty"`
	// Root is the tree's root: an entity id or a pid. Empty: every
	// process without a parent in the table (the whole tree).
	Root string `json:"root,omitempty"`
	// Depth bounds the tree below its root and lineage's descendants (0:
	// no bound).
	Depth int `json:"depth,omitempty"`
	// EntityID is lineage's process.
	EntityID string `json:"entity_id,omitempty"`
	// MaxRows asks for at most this many rows (at most the daemon's
	// max_rows; 0: max_rows).
	MaxRows int `json:"max_rows,omitempty"`
	// TimeoutMs is how long the asker waits for answers: a daemon stops
	// working on an answer it could not give in time (0: DefaultWork).
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
}

// Answer is one host's answer.
type Answer struct {
	Host    string `json:"host"`
	Version string `json:"version,omitempty"`
	// Time is when the table was read (RFC 3339, UTC).
	Time  string      `json:"time,omitempty"`
	Table *TableState `json:"table,omitempty"`
	// Rows are JSON lines of the output contract, one per process.
	Rows []json.RawMessage `json:"rows,omitempty"`
	// Matched counts the processes the question selected; more than
	// len(Rows) when the answer is truncated.
	Matched int `json:"matched"`
	// Truncated: the answer holds fewer rows than matched, cut by
	// TruncatedBy: max_rows, max_bytes (the message size) or time (the
	// asker's timeout came first; Matched counts what was examined).
	Truncated   bool   `json:"truncated"`
	TruncatedBy string `json:"truncated_by,omitempty"`
	// EvalErrors counts rows the where expression failed on (a member
	// the row does not carry, read without has()): they are not selected.
	// EvalError is the first such error.
	EvalErrors int    `json:"eval_errors,omitempty"`
	EvalError  string `json:"eval_error,omitempty"`
	Info       *Info  `json:"info,omitempty"`
	// Error and Code report a question the host could not answer: 400 a
	// bad request, 429 over max_per_second, 503 no process table (or it
	// was busy until the asker's timeout).
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// Error codes of answers.
const (
	CodeBadRequest  = 400
	CodeRateLimited = 429
	CodeUnavailable = 503
)

// TableState says how far an answer can be trusted.
type TableState struct {
	// State is "ok", or why the table may miss processes or hold some
	// that have gone: "off" (no route enriches, so the table is not fed),
	// "seeding" (its /proc scan has not run yet), "resync" (events were
	// lost and the table is being reconciled with /proc).
	State string `json:"state"`
	// Incomplete is set whenever State is not "ok".
	Incomplete bool `json:"incomplete,omitempty"`
	// Processes are the live thread groups the table held.
	Processes int `json:"processes"`
}

// Info is the info question's answer.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// Started is when the daemon started (RFC 3339).
	Started string `json:"started,omitempty"`
	// Processes, Threads: the table's live entries; MaxEntries its bound.
	Processes  int `json:"processes"`
	Threads    int `json:"threads"`
	MaxEntries int `json:"max_entries"`
	// Exited: processes the table remembers after their exit, for the
	// lineage of the others.
	Exited int `json:"exited"`
	// Seeded: processes learnt from a /proc scan; Observed: from their
	// fork event.
	Seeded   int    `json:"seeded"`
	Observed int    `json:"observed"`
	Evicted  uint64 `json:"evicted"`
	// Loss is what the daemon counted lost since it started.
	Loss Loss `json:"loss"`
}

// Loss is the daemon's loss accounting (README "Loss accounting").
type Loss struct {
	// MessagesLost: sequence gaps (cnbridged_messages_lost_total).
	MessagesLost uint64 `json:"messages_lost"`
	// SocketDrops: the kernel's drop count for the socket.
	SocketDrops uint64 `json:"socket_drops"`
	// Resyncs of the process table after loss, and the exits they found
	// lost.
	Resyncs  uint64 `json:"resyncs"`
	ExitLost uint64 `json:"exit_lost"`
}

// codeText is the micro error code header for code.
func codeText(code int) string { return strconv.Itoa(code) }
