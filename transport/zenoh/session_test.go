package zenoh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ZENOH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func openT(t testing.TB, cfg Config) *Session {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remoteSubscribed reports whether s has a link whose peer subscribed to
// something matching key.
func remoteSubscribed(s *Session, key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, l := range s.links {
		if l.wants(key) {
			return true
		}
	}
	return false
}

type collector struct {
	mu   sync.Mutex
	got  []transport.Sample
	cond chan struct{}
}

func newCollector() *collector { return &collector{cond: make(chan struct{}, 1)} }

func (c *collector) handle(s transport.Sample) {
	c.mu.Lock()
	c.got = append(c.got, transport.Sample{Key: s.Key, Payload: bytes.Clone(s.Payload), Attachment: bytes.Clone(s.Attachment)})
	c.mu.Unlock()
	select {
	case c.cond <- struct{}{}:
	default:
	}
}

func (c *collector) samples() []transport.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]transport.Sample(nil), c.got...)
}

func (c *collector) waitN(t testing.TB, n int) []transport.Sample {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d samples", n), func() bool { return len(c.samples()) >= n })
	return c.samples()
}

func pair(t *testing.T) (a, b *Session) {
	t.Helper()
	a = openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	b = openT(t, Config{Connect: a.ListenEndpoints()})
	waitFor(t, "link", func() bool { return len(a.Peers()) == 1 && len(b.Peers()) == 1 })
	return a, b
}

func TestGoToGoPublishSubscribe(t *testing.T) {
	a, b := pair(t)
	c := newCollector()
	sub, err := b.Subscribe("demo/*/out", c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, "subscription at a", func() bool { return remoteSubscribed(a, "demo/x/out") })
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := a.Publish(ctx, "demo/x/out", []byte(fmt.Sprint(i)), []byte("meta")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(ctx, "demo/x/other", []byte("no"), nil); err != nil {
		t.Fatal(err)
	}
	got := c.waitN(t, 100)
	for i, s := range got[:100] {
		if s.Key != "demo/x/out" || string(s.Payload) != fmt.Sprint(i) || string(s.Attachment) != "meta" {
			t.Fatalf("sample %d = %q %q %q", i, s.Key, s.Payload, s.Attachment)
		}
	}
	if st := a.Stats(); st.MessagesSent != 100 {
		t.Errorf("a sent %d messages, want 100 (demo/x/other has no subscriber)", st.MessagesSent)
	}
	if st := b.Stats(); st.MessagesReceived != 100 {
		t.Errorf("b received %d, want 100", st.MessagesReceived)
	}
	if p := a.Peers()[0]; p.MessagesSent != 100 || p.BytesSent < 100 {
		t.Errorf("a's link counters: %+v", p)
	}
	if p := b.Peers()[0]; p.MessagesReceived != 100 || p.BytesReceived < 100 {
		t.Errorf("b's link counters: %+v", p)
	}
}

func TestGoToGoLargePayloads(t *testing.T) {
	a, b := pair(t)
	c := newCollector()
	if _, err := a.Subscribe("big", c.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription at b", func() bool { return remoteSubscribed(b, "big") })
	sizes := []int{0, 1, 65000, 65535, 65536, 200_000, 4 << 20}
	var want [][]byte
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i + j*7)
		}
		want = append(want, p)
		if err := b.Publish(context.Background(), "big", p, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := c.waitN(t, len(sizes))
	for i := range sizes {
		if !bytes.Equal(got[i].Payload, want[i]) {
			t.Errorf("payload %d (%d bytes) differs (got %d bytes)", i, sizes[i], len(got[i].Payload))
		}
		if got[i].Attachment != nil {
			t.Errorf("payload %d: unexpected attachment", i)
		}
	}
}

// Sample shortens transport.Sample in tests.
type Sample = transport.Sample

func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{8, 1024, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			a := openT(b, Config{Listen: []string{"tcp/127.0.0.1:0"}})
			c := openT(b, Config{Connect: a.ListenEndpoints()})
			ctx := context.Background()
			a.Subscribe("bench/ping", func(s transport.Sample) { a.Publish(ctx, "bench/pong", s.Payload, nil) })
			pong := make(chan struct{}, 1)
			c.Subscribe("bench/pong", func(transport.Sample) { pong <- struct{}{} })
			waitFor(b, "links", func() bool { return remoteSubscribed(a, "bench/pong") && remoteSubscribed(c, "bench/ping") })
			p := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Publish(ctx, "bench/ping", p, nil)
				<-pong
			}
		})
	}
}

func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{1024, 64 << 10, 4 << 20} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			a := openT(b, Config{Listen: []string{"tcp/127.0.0.1:0"}})
			c := openT(b, Config{Connect: a.ListenEndpoints()})
			ctx := context.Background()
			var got atomic.Int64
			done := make(chan struct{}, 1)
			a.Subscribe("bench/sink", func(s transport.Sample) { got.Add(int64(len(s.Payload))) })
			a.Subscribe("bench/sync", func(transport.Sample) { done <- struct{}{} })
			waitFor(b, "links", func() bool { return remoteSubscribed(c, "bench/sink") && remoteSubscribed(c, "bench/sync") })
			p := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Publish(ctx, "bench/sink", p, nil)
			}
			c.Publish(ctx, "bench/sync", nil, nil)
			<-done
			if got.Load() != int64(b.N*size) {
				b.Fatalf("got %d bytes, want %d", got.Load(), b.N*size)
			}
		})
	}
}

// BenchmarkRawTCPThroughput is the baseline for BenchmarkThroughput: the
// same payloads over one loopback TCP connection, 4-byte length framing.
func BenchmarkRawTCPThroughput(b *testing.B) {
	for _, size := range []int{1024, 64 << 10, 4 << 20} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			done := make(chan int64)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				r := bufio.NewReaderSize(c, 256<<10)
				var total int64
				var hdr [4]byte
				buf := make([]byte, size)
				for {
					if _, err := io.ReadFull(r, hdr[:]); err != nil {
						return
					}
					n := binary.LittleEndian.Uint32(hdr[:])
					if n == 0 {
						done <- total
						return
					}
					io.ReadFull(r, buf[:n])
					total += int64(n)
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			p := make([]byte, size)
			var hdr [4]byte
			binary.LittleEndian.PutUint32(hdr[:], uint32(size))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				(&net.Buffers{hdr[:], p}).WriteTo(c)
			}
			c.Write([]byte{0, 0, 0, 0})
			if got := <-done; got != int64(b.N*size) {
				b.Fatalf("got %d bytes", got)
			}
		})
	}
}
