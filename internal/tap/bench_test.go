package tap

import (
	"bufio"
	"io"
	"net"
	"testing"
)

// BenchmarkWriteNoClient is what the tap costs per record while nobody
// taps: the daemon hands it every routed record.
func BenchmarkWriteNoClient(b *testing.B) {
	s, _ := startServer(b, 16)
	r := execRecord(42)
	b.ReportAllocs()
	for b.Loop() {
		s.Write(r)
	}
}

// BenchmarkWriteOneClient encodes each record once and queues it for one
// client that reads as fast as it can.
func BenchmarkWriteOneClient(b *testing.B) {
	s, _ := startServer(b, 4096)
	conn, err := net.Dial("unix", s.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go io.Copy(io.Discard, bufio.NewReader(conn))
	waitClients(b, s, 1)
	r := execRecord(42)
	b.ReportAllocs()
	for b.Loop() {
		s.Write(r)
	}
}
