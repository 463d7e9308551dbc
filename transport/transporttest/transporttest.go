// Package transporttest is the conformance suite every transport.Transport
// implementation runs: delivery of payload and attachment, order per
// publisher, key-expression matching, large payloads, fan-out to several
// subscribers, and the Close contracts.
//
// An implementation's test calls Run with a Factory that returns two
// connected sessions (they may be the same machine or process). The suite
// tolerates subscriptions that take effect asynchronously (as in Zenoh): it
// probes each subscription until a sample arrives before it measures.
package transporttest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport"
)

// Factory returns two connected sessions: samples published on either
// reach matching subscriptions on both. The suite closes them.
type Factory func(t *testing.T) (a, b transport.Transport)

// Timeout bounds every wait of the suite.
var Timeout = 10 * time.Second

// Run runs the whole suite.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, transport.Transport, transport.Transport)
	}{
		{"Delivery", testDelivery},
		{"OrderPerPublisher", testOrder},
		{"KeyExpressions", testKeyExpr},
		{"LargePayloads", testLarge},
		{"FanOut", testFanOut},
		{"LocalDelivery", testLocal},
		{"SubscriptionClose", testSubClose},
		{"HandlerNotConcurrent", testNotConcurrent},
		{"PublishAfterClose", testPublishAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := f(t)
			t.Cleanup(func() { a.Close(); b.Close() })
			tc.fn(t, a, b)
		})
	}
}

// collector records samples (copied) delivered to a subscription.
type collector struct {
	mu      sync.Mutex
	samples []transport.Sample
	notify  chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) handle(s transport.Sample) {
	c.mu.Lock()
	c.samples = append(c.samples, transport.Sample{Key: s.Key, Payload: bytes.Clone(s.Payload), Attachment: bytes.Clone(s.Attachment)})
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// real returns the samples that are not probes.
func (c *collector) real() []transport.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []transport.Sample
	for _, s := range c.samples {
		if !strings.HasSuffix(s.Key, "/probe") {
			out = append(out, s)
		}
	}
	return out
}

func (c *collector) waitFor(t *testing.T, n int) []transport.Sample {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		if got := c.real(); len(got) >= n {
			return got
		}
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("got %d samples, want %d", len(c.real()), n)
		}
	}
}

func (c *collector) sawProbe() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.samples {
		if strings.HasSuffix(s.Key, "/probe") {
			return true
		}
	}
	return false
}

// subscribe subscribes and probes prefix+"/probe" from pub until the
// subscription sees it.
func subscribe(t *testing.T, sub, pub transport.Transport, expr, probeKey string) (*collector, transport.Subscription) {
	t.Helper()
	c := newCollector()
	s, err := sub.Subscribe(expr, c.handle)
	if err != nil {
		t.Fatalf("subscribe %s: %v", expr, err)
	}
	t.Cleanup(func() { s.Close() })
	deadline := time.Now().Add(Timeout)
	for !c.sawProbe() {
		if time.Now().After(deadline) {
			t.Fatalf("subscription %s never received a probe on %s", expr, probeKey)
		}
		if err := pub.Publish(context.Background(), probeKey, nil, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return c, s
}

func publish(t *testing.T, p transport.Transport, key string, payload, att []byte) {
	t.Helper()
	if err := p.Publish(context.Background(), key, payload, att); err != nil {
		t.Fatalf("publish %s: %v", key, err)
	}
}

func testDelivery(t *testing.T, a, b transport.Transport) {
	c, _ := subscribe(t, b, a, "tt/delivery/**", "tt/delivery/probe")
	publish(t, a, "tt/delivery/x", []byte("hello"), []byte("meta"))
	publish(t, a, "tt/delivery/empty", nil, nil)
	got := c.waitFor(t, 2)
	if got[0].Key != "tt/delivery/x" || string(got[0].Payload) != "hello" || string(got[0].Attachment) != "meta" {
		t.Fatalf("first sample %+v", got[0])
	}
	if got[1].Key != "tt/delivery/empty" || len(got[1].Payload) != 0 || len(got[1].Attachment) != 0 {
		t.Fatalf("empty sample %+v", got[1])
	}
}

func testOrder(t *testing.T, a, b transport.Transport) {
	c, _ := subscribe(t, b, a, "tt/order/*", "tt/order/probe")
	const n = 500
	for i := 0; i < n; i++ {
		publish(t, a, "tt/order/k", []byte(fmt.Sprint(i)), nil)
	}
	got := c.waitFor(t, n)
	for i, s := range got[:n] {
		if string(s.Payload) != fmt.Sprint(i) {
			t.Fatalf("sample %d carries %q", i, s.Payload)
		}
	}
}

func testKeyExpr(t *testing.T, a, b transport.Transport) {
	c1 := newCollector()
	s1, err := b.Subscribe("tt/ke/*/out", c1.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	c2, _ := subscribe(t, b, a, "tt/ke/**", "tt/ke/probe")
	// Probe c1 through a key it matches and that is not a probe for c2.
	deadline := time.Now().Add(Timeout)
	for !c1.hasKey("tt/ke/warm/out") {
		if time.Now().After(deadline) {
			t.Fatal("subscription tt/ke/*/out never became live")
		}
		publish(t, a, "tt/ke/warm/out", nil, nil)
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range []string{"tt/ke/n1/out", "tt/ke/n1/n2/out", "tt/ke/out", "tt/other/n1/out", "tt/ke/n1/out/more", "tt/ke/end"} {
		publish(t, a, k, []byte(k), nil)
	}
	publish(t, a, "tt/ke/last/out", nil, nil)
	c1.waitForKey(t, "tt/ke/last/out")
	c2.waitForKey(t, "tt/ke/last/out")
	if got, want := c1.keys("tt/ke/warm/out", "tt/ke/last/out"), []string{"tt/ke/n1/out"}; !equal(got, want) {
		t.Errorf("tt/ke/*/out matched %q, want %q", got, want)
	}
	want2 := []string{"tt/ke/n1/out", "tt/ke/n1/n2/out", "tt/ke/out", "tt/ke/n1/out/more", "tt/ke/end"}
	if got := c2.keys("tt/ke/warm/out", "tt/ke/last/out"); !equal(got, want2) {
		t.Errorf("tt/ke/** matched %q, want %q", got, want2)
	}
}

func (c *collector) hasKey(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.samples {
		if s.Key == k {
			return true
		}
	}
	return false
}

func (c *collector) waitForKey(t *testing.T, k string) {
	t.Helper()
	deadline := time.After(Timeout)
	for !c.hasKey(k) {
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("never received %s", k)
		}
	}
}

// keys lists the keys received with payload == key, skipping probes and
// the given markers.
func (c *collector) keys(skip ...string) []string {
	var out []string
	for _, s := range c.real() {
		if string(s.Payload) == s.Key && !contains(skip, s.Key) {
			out = append(out, s.Key)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed)
	}
	return b
}

func testLarge(t *testing.T, a, b transport.Transport) {
	c, _ := subscribe(t, b, a, "tt/large/*", "tt/large/probe")
	sizes := []int{4095, 4096, 65536, 1 << 20, 4 << 20}
	for i, n := range sizes {
		publish(t, a, "tt/large/x", pattern(n, i), []byte(fmt.Sprint(n)))
	}
	got := c.waitFor(t, len(sizes))
	for i, n := range sizes {
		if !bytes.Equal(got[i].Payload, pattern(n, i)) || string(got[i].Attachment) != fmt.Sprint(n) {
			t.Fatalf("payload %d (%d bytes) corrupted: got %d bytes", i, n, len(got[i].Payload))
		}
	}
}

func testFanOut(t *testing.T, a, b transport.Transport) {
	c1, _ := subscribe(t, b, a, "tt/fan/*", "tt/fan/probe")
	c2, _ := subscribe(t, b, a, "tt/fan/*", "tt/fan/probe")
	c3, _ := subscribe(t, a, a, "tt/fan/*", "tt/fan/probe")
	for i := 0; i < 20; i++ {
		publish(t, a, "tt/fan/k", pattern(10000, i), nil)
	}
	for _, c := range []*collector{c1, c2, c3} {
		got := c.waitFor(t, 20)
		for i, s := range got[:20] {
			if !bytes.Equal(s.Payload, pattern(10000, i)) {
				t.Fatalf("fan-out sample %d corrupted", i)
			}
		}
	}
}

func testLocal(t *testing.T, a, _ transport.Transport) {
	c, _ := subscribe(t, a, a, "tt/local/*", "tt/local/probe")
	publish(t, a, "tt/local/k", []byte("self"), nil)
	if got := c.waitFor(t, 1); string(got[0].Payload) != "self" {
		t.Fatalf("local sample %+v", got[0])
	}
}

func testSubClose(t *testing.T, a, b transport.Transport) {
	var calls atomic.Int64
	var closed atomic.Bool
	var late atomic.Int64
	started := make(chan struct{}, 1)
	sub, err := b.Subscribe("tt/close/*", func(s transport.Sample) {
		if closed.Load() {
			late.Add(1)
		}
		calls.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		time.Sleep(time.Millisecond)
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				a.Publish(context.Background(), "tt/close/k", []byte("x"), nil)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(Timeout):
		t.Fatal("subscription never received")
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	n := calls.Load()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if late.Load() != 0 || calls.Load() != n {
		t.Fatalf("handler ran %d times after Close returned", calls.Load()-n)
	}
}

func testNotConcurrent(t *testing.T, a, b transport.Transport) {
	var inside, overlap atomic.Int64
	done := make(chan struct{})
	var count atomic.Int64
	sub, err := b.Subscribe("tt/conc/*", func(s transport.Sample) {
		if inside.Add(1) > 1 {
			overlap.Add(1)
		}
		time.Sleep(50 * time.Microsecond)
		inside.Add(-1)
		if count.Add(1) == 200 {
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Wait until the subscription is live, then publish from two goroutines.
	deadline := time.Now().Add(Timeout)
	for count.Load() == 0 && time.Now().Before(deadline) {
		a.Publish(context.Background(), "tt/conc/probe", nil, nil)
		time.Sleep(10 * time.Millisecond)
	}
	base := count.Load()
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				a.Publish(context.Background(), "tt/conc/k", pattern(100, i), nil)
			}
		}()
	}
	wg.Wait()
	if base >= 200 {
		t.Fatal("too many probes")
	}
	select {
	case <-done:
	case <-time.After(Timeout):
		if count.Load() < 200-base {
			t.Fatalf("received %d samples", count.Load())
		}
	}
	if overlap.Load() != 0 {
		t.Fatalf("handler calls overlapped %d times", overlap.Load())
	}
}

func testPublishAfterClose(t *testing.T, a, _ transport.Transport) {
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(context.Background(), "tt/closed/k", []byte("x"), nil); err == nil {
		t.Fatal("Publish on a closed transport succeeded")
	}
	if _, err := a.Subscribe("tt/closed/*", func(transport.Sample) {}); err == nil {
		t.Fatal("Subscribe on a closed transport succeeded")
	}
}
