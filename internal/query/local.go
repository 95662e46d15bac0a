package query

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
)

// Over the local daemon's tap socket a question is one line,
// {"query":"ps","request":{…}}, and its answer one line,
// {"type":"query_answer","answer":{…}}, after whatever event lines the
// socket had already sent the client.
type localRequest struct {
	Query   string          `json:"query"`
	Request json.RawMessage `json:"request,omitempty"`
}

type localAnswer struct {
	Type   string  `json:"type"`
	Answer *Answer `json:"answer"`
}

// typeAnswer marks the answer line among event lines.
const typeAnswer = "query_answer"

// LocalMaxBytes bounds an answer over the tap socket.
const LocalMaxBytes = 16 << 20

// LocalHandler answers questions that come over the tap socket
// (tap.ServerConfig.Queries) with r.
func LocalHandler(r *Responder) func(ctx context.Context, line []byte) []byte {
	return func(ctx context.Context, line []byte) []byte {
		var lr localRequest
		var a *Answer
		if err := json.Unmarshal(line, &lr); err != nil {
			a = fail(&Answer{Host: r.Host(), Version: r.cfg.Version}, CodeBadRequest, fmt.Errorf("question: %w", err))
		} else if a = r.Answer(ctx, lr.Query, lr.Request, LocalMaxBytes); a == nil {
			a = fail(&Answer{Host: r.Host(), Version: r.cfg.Version}, CodeBadRequest, errors.New("host: the pattern does not match this host"))
		}
		b, err := json.Marshal(localAnswer{Type: typeAnswer, Answer: a})
		if err != nil {
			b, _ = json.Marshal(localAnswer{Type: typeAnswer, Answer: fail(&Answer{Host: a.Host}, CodeUnavailable, err)})
		}
		return b
	}
}

// Unavailable is the answer line over the tap socket when no question can
// be answered (the daemon is starting or stopping).
func Unavailable(host, why string) []byte {
	b, _ := json.Marshal(localAnswer{Type: typeAnswer, Answer: &Answer{Host: host, Error: why, Code: CodeUnavailable}})
	return b
}

// AskLocal asks the daemon behind the tap socket at path.
func AskLocal(ctx context.Context, path, op string, req Request) (*Answer, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("tap socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	line, _ := json.Marshal(localRequest{Query: op, Request: body})
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("tap socket: %w", err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), LocalMaxBytes+1<<20)
	for sc.Scan() {
		var la localAnswer
		if json.Unmarshal(sc.Bytes(), &la) == nil && la.Type == typeAnswer && la.Answer != nil {
			return la.Answer, nil
		}
		// An event line sent before the question was read.
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("tap socket: no answer: %w", ctx.Err())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tap socket: %w", err)
	}
	return nil, errors.New("tap socket: the daemon closed the connection without an answer (is it older than cnbridged query?)")
}
