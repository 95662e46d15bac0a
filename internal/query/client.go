package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// InboxPrefix is the reply inbox prefix of cnbridged query's connection.
// Hosts may subscribe to _INBOX.> (for their JetStream acknowledgements),
// so answers travel under a prefix of their own, which deploy/nats gives
// only queriers.
const InboxPrefix = "_INBOX_cnbridged_query"

// Asker asks a fleet over NATS.
type Asker struct {
	NC *nats.Conn
	// Bucket is the inventory bucket ("" for none); JSDomain its JetStream
	// domain.
	Bucket, JSDomain string
}

// Question is what to ask whom.
type Question struct {
	Op  string
	Req Request
	// Hosts is a glob on host names ("" every host).
	Hosts string
	// Expect names hosts that should answer, besides the inventory's.
	Expect []string
	// Timeout bounds the whole question: the inventory's read and the
	// gathering of answers.
	Timeout time.Duration
	// Wait gathers until the timeout even when every known host has
	// answered (a host missing from the inventory may still answer).
	Wait bool
}

// Result is what came back.
type Result struct {
	// Answers in the order they came.
	Answers []*Answer
	// Known are the hosts that should have answered: the inventory's
	// and Expect's that match Hosts, sorted.
	Known []string
	// Silent are the known hosts that did not answer in time.
	Silent []string
	// Inventory is where Known came from: "kv", "expect", "kv+expect"
	// or "" (nobody knows which hosts should answer); InventoryErr why
	// the bucket could not be read.
	Inventory    string
	InventoryErr error
	// Targeted: the question went to each known host's own subject,
	// not to every host.
	Targeted bool
	// Bytes received in answers; Elapsed from sending the question to
	// the last answer; Unreadable answers that were not JSON.
	Bytes      int
	Elapsed    time.Duration
	Unreadable int
}

// Ask sends q and gathers answers until every known host has answered
// (unless q.Wait) or the timeout, calling onAnswer (if set) with each as it
// comes.
func (k *Asker) Ask(ctx context.Context, q Question, onAnswer func(*Answer)) (*Result, error) {
	if q.Timeout <= 0 {
		q.Timeout = DefaultWork
	}
	if _, err := path.Match(q.Hosts, ""); err != nil {
		return nil, fmt.Errorf("--host %q: %w", q.Hosts, err)
	}
	ctx, cancel := context.WithTimeout(ctx, q.Timeout)
	defer cancel()
	res := &Result{}
	known := map[string]bool{}
	if k.Bucket != "" {
		// At most a third of the time goes to the inventory.
		// A read that fails on the way (a pull answered by no responder
		// while a cluster or leaf node is busy) is tried again while that
		// time lasts; a missing bucket or JetStream is final.
		ictx, icancel := context.WithTimeout(ctx, q.Timeout/3)
		hosts, err := k.Inventory(ictx)
		for err != nil && !errors.Is(err, ErrNoInventory) && ictx.Err() == nil {
			select {
			case <-ictx.Done():
			case <-time.After(50 * time.Millisecond):
				hosts, err = k.Inventory(ictx)
			}
		}
		icancel()
		if err != nil {
			res.InventoryErr = err
		} else {
			res.Inventory = "kv"
			for _, h := range hosts {
				known[h] = true
			}
		}
	}
	if len(q.Expect) > 0 {
		res.Inventory = strings.TrimPrefix(res.Inventory+"+expect", "+")
		for _, h := range q.Expect {
			known[h] = true
		}
	}
	for h := range known {
		if ok, _ := path.Match(q.Hosts, h); q.Hosts != "" && !ok {
			delete(known, h)
		}
	}
	res.Known = sortedKeys(known)

	// Whom to ask: one host by name; the known hosts a pattern matches,
	// each on its own subject; else every host, those the pattern does
	// not match staying silent.
	var subjects []string
	switch {
	case q.Hosts != "" && !hasMeta(q.Hosts):
		subjects = []string{HostSubject(q.Hosts, q.Op)}
		res.Targeted = true
		res.Known = []string{q.Hosts} // named, so expected
	case q.Hosts != "" && res.Inventory != "":
		for _, h := range res.Known {
			subjects = append(subjects, HostSubject(h, q.Op))
		}
		res.Targeted = true
	default:
		subjects = []string{AllSubject(q.Op)}
		q.Req.Host = q.Hosts
	}
	known = make(map[string]bool, len(res.Known))
	for _, h := range res.Known {
		known[h] = true
	}
	deadline, _ := ctx.Deadline()
	q.Req.TimeoutMs = max(time.Until(deadline).Milliseconds(), 1)
	body, err := json.Marshal(q.Req)
	if err != nil {
		return nil, err
	}

	// Answers are handled on the subscription's goroutine as they come,
	// behind a queue without bounds: a channel would drop what arrives
	// while it is full (10 000 hosts answer in a burst).
	var (
		mu       sync.Mutex
		finished bool
		answered = map[string]bool{}
		waiting  = len(res.Known) // known hosts that have not answered
		done     = make(chan struct{})
	)
	start := time.Now()
	inbox := k.NC.NewInbox()
	sub, err := k.NC.Subscribe(inbox, func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return
		}
		res.Bytes += len(m.Data)
		res.Elapsed = time.Since(start)
		a := parseAnswer(m)
		if a == nil {
			res.Unreadable++
			return
		}
		if !answered[a.Host] && known[a.Host] {
			waiting--
		}
		answered[a.Host] = true
		res.Answers = append(res.Answers, a)
		if onAnswer != nil {
			onAnswer(a)
		}
		if len(res.Known) > 0 && !q.Wait && waiting == 0 {
			finished = true
			close(done)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to the answers: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	for _, subj := range subjects {
		if err := k.NC.PublishRequest(subj, inbox, body); err != nil {
			return nil, fmt.Errorf("asking on %s: %w", subj, err)
		}
	}
	if err := k.NC.FlushWithContext(ctx); err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("asking: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	finished = true
	for _, h := range res.Known {
		if !answered[h] {
			res.Silent = append(res.Silent, h)
		}
	}
	return res, nil
}

// parseAnswer reads an answer message: an Answer, with micro's error
// headers for an error answer whose body is not one.
func parseAnswer(m *nats.Msg) *Answer {
	var a Answer
	if err := json.Unmarshal(m.Data, &a); err == nil && a.Host != "" {
		return &a
	}
	if desc := m.Header.Get(micro.ErrorHeader); desc != "" {
		return &Answer{Host: "?", Error: desc, Code: CodeUnavailable}
	}
	return nil
}

func hasMeta(glob string) bool { return strings.ContainsAny(glob, `*?[\`) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ErrNoInventory is Inventory's error when the server has no JetStream or
// no inventory bucket.
var ErrNoInventory = errors.New("no inventory")

// Inventory returns the hosts whose heartbeat entries are in the bucket:
// the hosts that should answer.
func (k *Asker) Inventory(ctx context.Context) ([]string, error) {
	var js jetstream.JetStream
	var err error
	if k.JSDomain != "" {
		js, err = jetstream.NewWithDomain(k.NC, k.JSDomain)
	} else {
		js, err = jetstream.New(k.NC)
	}
	if err != nil {
		return nil, err
	}
	// The last entry of every key, read with an ordered consumer the
	// server removes by itself (a querier needs no right to delete
	// consumers, and waits for no deletion).
	stream := "KV_" + k.Bucket
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{"$KV." + k.Bucket + ".>"},
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		InactiveThreshold: 5 * time.Second,
	})
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: bucket %s not found (no host keeps a heartbeat there)", ErrNoInventory, k.Bucket)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: the server has no JetStream", ErrNoInventory)
	case err != nil:
		return nil, fmt.Errorf("inventory bucket %s: %w", k.Bucket, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("inventory bucket %s: %w", k.Bucket, err)
	}
	var hosts []string
	for left := int(info.NumPending); left > 0; {
		wait := time.Second
		if d, ok := ctx.Deadline(); ok {
			wait = max(time.Until(d), time.Millisecond)
		}
		batch, err := cons.Fetch(min(left, 1000), jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, fmt.Errorf("inventory bucket %s: %w", k.Bucket, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if op := m.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				continue
			}
			var hb Heartbeat
			if json.Unmarshal(m.Data(), &hb) == nil && hb.Host != "" {
				hosts = append(hosts, hb.Host)
			}
		}
		if err := batch.Error(); err != nil || n == 0 {
			return nil, fmt.Errorf("inventory bucket %s: %d entries not read: %w", k.Bucket, left, errors.Join(err, ctx.Err()))
		}
		left -= n
	}
	slices.Sort(hosts)
	return slices.Compact(hosts), nil
}
