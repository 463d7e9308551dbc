// Package benchmark is adora's data-plane benchmark, in the shape of the
// upstream dora benchmark: a sender and a sink node; for each payload size
// 100 messages 5 ms apart on the "latency" output (one-way latency from the
// sender's timestamp), then 100 messages back to back on "throughput"
// followed by a 1-byte sentinel.
//
// The sender writes payloads straight into shared memory (AllocOutput +
// SendBuffer) for sizes at or above the threshold: the producer fills its
// buffer when the region is new and stamps a 16-byte header per message, so
// the figures measure the data plane, not memcpy.
//
// The programs in sender/ and sink/ run it under `adora run`; the Go
// benchmark in this package runs the same nodes through the router and, in
// the same run, the physical baselines (see baseline.go).
package benchmark

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	node "github.com/adora-rs/adora/nodes"
)

// Sizes are the payload sizes of the upstream benchmark, in bytes.
var Sizes = []int{0, 8, 64, 512, 2048, 4096, 16384, 40960, 409600, 4096000}

// Shape is how many messages per size and how far apart.
type Shape struct {
	Count    int
	Interval time.Duration
	Pause    time.Duration // between phases and sizes
	Sizes    []int
}

// DefaultShape is the upstream shape.
var DefaultShape = Shape{Count: 100, Interval: 5 * time.Millisecond, Pause: 200 * time.Millisecond, Sizes: Sizes}

// RunSender sends the whole benchmark on outputs "latency" and
// "throughput", then closes them.
func RunSender(n *node.Node, s Shape) error {
	random := make([]byte, slices.Max(s.Sizes))
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	for _, size := range s.Sizes {
		for i := 0; i < s.Count; i++ {
			if err := send(n, "latency", size, random); err != nil {
				return err
			}
			time.Sleep(s.Interval)
		}
		time.Sleep(s.Pause)
	}
	for _, size := range s.Sizes {
		for i := 0; i < s.Count; i++ {
			if err := send(n, "throughput", size, random); err != nil {
				return err
			}
		}
		if err := n.SendOutput("throughput", []byte{1}, node.Metadata{}); err != nil {
			return err
		}
		time.Sleep(s.Pause)
	}
	return n.CloseOutputs()
}

func send(n *node.Node, output string, size int, random []byte) error {
	if size < n.Config().ShmThreshold || size < 16 {
		return n.SendOutput(output, random[:size], node.Metadata{Timestamp: time.Now()})
	}
	buf, err := n.AllocOutput(size)
	if err != nil {
		return err
	}
	if buf.Data[size-1] == 0 && buf.Data[8] == 0 {
		copy(buf.Data, random[:size]) // fresh region: produce the payload once
	}
	binary.LittleEndian.PutUint64(buf.Data, uint64(size))
	return n.SendBuffer(output, buf, node.Metadata{Timestamp: time.Now()})
}

// Result is one measured bracket.
type Result struct {
	Kind     string // "latency" or "throughput"
	Size     int
	N        int
	P50      time.Duration
	P95      time.Duration
	P99      time.Duration
	Avg      time.Duration
	Min, Max time.Duration
	PerSec   float64
	Elapsed  time.Duration
}

// Stats summarises latency samples.
func Stats(kind string, size int, samples []time.Duration) Result {
	s := slices.Clone(samples)
	slices.Sort(s)
	r := Result{Kind: kind, Size: size, N: len(s)}
	if len(s) == 0 {
		return r
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	pick := func(p float64) time.Duration { return s[int(p/100*float64(len(s)-1)+0.5)] }
	r.Avg, r.P50, r.P95, r.P99, r.Min, r.Max = sum/time.Duration(len(s)), pick(50), pick(95), pick(99), s[0], s[len(s)-1]
	return r
}

// RunSink measures what arrives and returns the results in arrival order.
func RunSink(n *node.Node) []Result {
	var results []Result
	var lat []time.Duration
	latSize := -1
	var tpStart time.Time
	tpCount, tpSize := 0, -1
	flushLat := func() {
		if len(lat) > 0 {
			results = append(results, Stats("latency", latSize, lat))
		}
		lat = nil
	}
	for ev := range n.Events() {
		if ev.Type != node.Input {
			continue
		}
		now := time.Now()
		switch ev.ID {
		case "latency":
			if len(ev.Data) != latSize {
				flushLat()
				latSize = len(ev.Data)
			}
			lat = append(lat, now.Sub(ev.Metadata.Timestamp))
		case "throughput":
			if len(ev.Data) == 1 && tpCount > 0 {
				el := now.Sub(tpStart)
				results = append(results, Result{Kind: "throughput", Size: tpSize, N: tpCount, Elapsed: el, PerSec: float64(tpCount) / el.Seconds()})
				tpCount = 0
				continue
			}
			if tpCount == 0 {
				tpStart, tpSize = ev.Metadata.Timestamp, len(ev.Data)
			}
			tpCount++
		}
	}
	flushLat()
	return results
}

// Label renders a size the way the sink prints it.
func Label(size int) string {
	switch {
	case size >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(size)/1e6)
	case size >= 1024:
		return fmt.Sprintf("%dKB", size/1024)
	}
	return fmt.Sprintf("%dB", size)
}

// Print writes results as human lines.
func Print(w io.Writer, name string, rs []Result) {
	for _, r := range rs {
		switch r.Kind {
		case "latency":
			fmt.Fprintf(w, "%-10s latency    %8s  p50=%-9v p95=%-9v p99=%-9v avg=%-9v min=%-9v max=%-9v (n=%d)\n",
				name, Label(r.Size), r.P50, r.P95, r.P99, r.Avg, r.Min, r.Max, r.N)
		case "throughput":
			fmt.Fprintf(w, "%-10s throughput %8s  %.0f msg/s (n=%d, %v)\n", name, Label(r.Size), r.PerSec, r.N, r.Elapsed)
		}
	}
}

// WriteCSV appends results in the upstream CSV layout when path is set.
func WriteCSV(path, name string, rs []Result) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, r := range rs {
		if r.Kind == "latency" {
			fmt.Fprintf(f, "latency,%d,%s,%d,%d,%d,%d,%d,%d,%d,%d\n", r.Size, name, r.N, r.Avg, r.P50, r.P95, r.P99, r.P99, r.Min, r.Max)
		} else {
			fmt.Fprintf(f, "throughput,%d,%s,%d,%.0f,%d,0,0,0,0,0\n", r.Size, name, r.N, r.PerSec, r.Elapsed)
		}
	}
	return nil
}
