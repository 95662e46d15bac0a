package tap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cnbridged/cnbridged/internal/event"
)

// ServerConfig configures the tap socket.
type ServerConfig struct {
	// Path of the Unix socket.
	Path string
	// Mode of the socket file (0600: only the daemon's user may connect).
	Mode os.FileMode
	// ClientBuffer is how many lines one client may have waiting; lines
	// beyond it are dropped for that client and counted.
	ClientBuffer int
	// Metrics, when set, are the tap metrics to update (else unregistered
	// ones).
	Metrics *Metrics
}

// Metrics are the tap socket's metrics.
type Metrics struct {
	Clients prometheus.Gauge
	Lines   prometheus.Counter
	Dropped prometheus.Counter
}

// NewMetrics returns the tap metrics, registered with reg when it is not
// nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cnbridged_tap_clients",
			Help: "Tap clients connected to the tap socket.",
		}),
		Lines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cnbridged_tap_lines_total",
			Help: "Lines queued for tap clients (one per record per client).",
		}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cnbridged_tap_dropped_total",
			Help: "Lines dropped for tap clients that read too slowly (each client is told its own count).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Clients, m.Lines, m.Dropped)
	}
	return m
}

// ErrInUse is returned when another live server answers on the path.
var ErrInUse = errors.New("another process serves this socket")

// Server serves the daemon's event lines to tap clients. The daemon hands
// it records through Write (it is a sink behind its own bounded queue, so
// it never slows the kernel reader); Write never waits on a client: each
// client has a buffer of ClientBuffer lines, and a line that does not fit
// is dropped for that client, counted, and reported to it in a
// {"type":"tap_dropped","dropped":N} line as soon as it has room again.
type Server struct {
	cfg  ServerConfig
	enc  *event.Encoder
	host string
	log  *zap.Logger
	ln   *net.UnixListener
	ino  uint64 // the socket file's inode: only that file is removed at Close

	mu      sync.Mutex
	clients map[*client]struct{}
	nclient atomic.Int32
	wg      sync.WaitGroup

	// Owned by the goroutine calling Write.
	tc  event.TimeCache
	buf []byte

	mClients prometheus.Gauge
	mLines   prometheus.Counter
	mDropped prometheus.Counter
}

type client struct {
	conn    *net.UnixConn
	lines   chan []byte
	dropped atomic.Uint64
	done    chan struct{}
}

// Listen creates the socket, with cfg.Mode from the start (it is bound
// under a temporary name, given its mode, then renamed into place, so no
// one can connect while it is wider open). A stale socket file left by a
// dead daemon is replaced; a live one is not (ErrInUse).
func Listen(cfg ServerConfig, host string, enc *event.Encoder, log *zap.Logger) (*Server, error) {
	if cfg.ClientBuffer < 1 {
		cfg.ClientBuffer = 1
	}
	dir := filepath.Dir(cfg.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tap.socket %s: %w", cfg.Path, err)
	}
	if c, err := net.DialTimeout("unix", cfg.Path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("tap.socket %s: %w", cfg.Path, ErrInUse)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(cfg.Path)+"."+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("tap.socket %s: %w", cfg.Path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Server, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("tap.socket %s: %w", cfg.Path, err)
	}
	if err := os.Chmod(tmp, cfg.Mode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, cfg.Path); err != nil {
		return fail(err)
	}
	s := &Server{
		cfg: cfg, enc: enc, host: host, log: log, ln: ln,
		clients: make(map[*client]struct{}),
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	s.mClients, s.mLines, s.mDropped = m.Clients, m.Lines, m.Dropped
	if fi, err := os.Stat(cfg.Path); err == nil {
		s.ino = inode(fi)
	}
	return s, nil
}

// Addr is the socket's path.
func (s *Server) Addr() string { return s.cfg.Path }

// Run accepts clients until ctx ends, then disconnects them and removes
// the socket file.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("tap socket accept", zap.Error(err))
			}
			break
		}
		s.add(conn)
	}
	s.mu.Lock()
	for c := range s.clients {
		c.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if fi, err := os.Stat(s.cfg.Path); err == nil && inode(fi) == s.ino {
		os.Remove(s.cfg.Path)
	}
	return nil
}

func (s *Server) add(conn *net.UnixConn) {
	c := &client{conn: conn, lines: make(chan []byte, s.cfg.ClientBuffer), done: make(chan struct{})}
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.nclient.Store(int32(len(s.clients)))
	s.mu.Unlock()
	s.mClients.Inc()
	s.log.Info("tap client connected")
	s.wg.Add(2)
	go func() {
		// A client sends nothing; a read returns when it hangs up.
		defer s.wg.Done()
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				break
			}
		}
		s.remove(c)
	}()
	go func() {
		defer s.wg.Done()
		s.serve(c)
		s.remove(c)
	}()
}

func (s *Server) remove(c *client) {
	s.mu.Lock()
	_, ok := s.clients[c]
	delete(s.clients, c)
	s.nclient.Store(int32(len(s.clients)))
	s.mu.Unlock()
	if ok {
		close(c.done)
		c.conn.Close()
		s.mClients.Dec()
		s.log.Info("tap client disconnected", zap.Uint64("dropped_unreported", c.dropped.Load()))
	}
}

// serve writes c's lines, first reporting the lines it lost. Lines that
// are already waiting go out together, in one write of up to writeBatch
// bytes.
func (s *Server) serve(c *client) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var buf []byte
	for {
		var line []byte
		select {
		case <-c.done:
			return
		case line = <-c.lines:
		case <-tick.C:
		}
		buf = buf[:0]
		if line != nil {
			buf = append(buf, line...)
		more:
			for len(buf) < writeBatch {
				select {
				case l := <-c.lines:
					buf = append(buf, l...)
				default:
					break more
				}
			}
		}
		// The drops happened while the buffer was full, somewhere among
		// these lines; the marker goes first, so that it is seen at once.
		if n := c.dropped.Swap(0); n > 0 {
			buf = append(s.dropLine(nil, n), buf...)
		}
		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				return
			}
		}
	}
}

// writeBatch bounds one write to a client.
const writeBatch = 64 << 10

func (s *Server) dropLine(dst []byte, n uint64) []byte {
	dst = append(dst, `{"time":"`...)
	dst = time.Now().UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","host":`...)
	dst = event.AppendString(dst, s.host)
	dst = append(dst, `,"type":"`+TypeDropped+`","dropped":`...)
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, "}\n"...)
}

// Write hands r to every client without waiting. With no client connected
// it does nothing.
func (s *Server) Write(r *event.Record) error {
	if s.nclient.Load() == 0 {
		return nil
	}
	s.buf = s.enc.AppendJSONCached(s.buf[:0], r, &s.tc)
	line := append([]byte(nil), s.buf...) // shared read-only by the clients
	s.mu.Lock()
	for c := range s.clients {
		select {
		case c.lines <- line:
			s.mLines.Inc()
		default:
			c.dropped.Add(1)
			s.mDropped.Inc()
		}
	}
	s.mu.Unlock()
	return nil
}

// Flush does nothing: clients are written by their own goroutines.
func (s *Server) Flush(context.Context) error { return nil }

// Close does nothing: Run owns the socket and the clients.
func (s *Server) Close(context.Context) error { return nil }

// Probe does what the daemon does to serve the tap socket at path —
// create its directory, refuse a socket a live process serves, bind under
// a temporary name, set the mode and rename it into place — then closes
// and removes it again (cnbridged check). A path that exists and is not a
// socket is reported, not replaced.
func Probe(path string, mode os.FileMode) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("tap.socket %s: exists and is not a socket", path)
	}
	s, err := Listen(ServerConfig{Path: path, Mode: mode}, "", nil, zap.NewNop())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Run(ctx) // closes the socket and removes its file
}
