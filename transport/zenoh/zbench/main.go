// Command zbench measures transport/zenoh against raw TCP on the same
// link, in the same run: round-trip latency and one-way throughput by
// payload size. Run "zbench serve" on one host (or network namespace) and
// "zbench client" on the other; netns.sh does both across two namespaces
// joined by a veth pair.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: zbench serve|client|flow-pub|flow-sub [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	case "flow-pub":
		err = flowPub(os.Args[2:])
	case "flow-sub":
		err = flowSub(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// Raw TCP framing: 4-byte little-endian length with the top bit set for
// "echo", then the payload. Length 0 asks for a 1-byte sync answer.
const echoBit = 1 << 31

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "address to listen on")
	tcpPort := fs.Int("tcp-port", 17000, "raw TCP port")
	zPort := fs.Int("zenoh-port", 17001, "zenoh port")
	fs.Parse(args)

	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*tcpPort)))
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go rawServe(c)
		}
	}()
	s, err := zenoh.Open(context.Background(), zenoh.Config{Listen: []string{fmt.Sprintf("tcp/%s:%d", *host, *zPort)}})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	s.Subscribe("bench/ping", func(smp transport.Sample) { s.Publish(ctx, "bench/pong", smp.Payload, nil) })
	var sunk atomic.Int64
	s.Subscribe("bench/sink", func(smp transport.Sample) { sunk.Add(int64(len(smp.Payload))) })
	s.Subscribe("bench/sync", func(transport.Sample) {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], uint64(sunk.Swap(0)))
		binary.LittleEndian.PutUint64(b[8:], uint64(cpuNow()))
		s.Publish(ctx, "bench/synced", b[:], nil)
	})
	fmt.Println("READY")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	ln.Close()
	return nil
}

func rawServe(c net.Conn) {
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [4]byte
	buf := make([]byte, 0, 1<<20)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		v := binary.LittleEndian.Uint32(hdr[:])
		n := int(v &^ echoBit)
		if n == 0 {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], uint64(cpuNow()))
			c.Write(b[:])
			continue
		}
		buf = slices.Grow(buf[:0], n)[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		if v&echoBit != 0 {
			if _, err := (&net.Buffers{hdr[:], buf}).WriteTo(c); err != nil {
				return
			}
		}
	}
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "server address")
	tcpPort := fs.Int("tcp-port", 17000, "raw TCP port")
	zPort := fs.Int("zenoh-port", 17001, "zenoh port")
	sizesFlag := fs.String("sizes", "8,1024,65536,1048576,4194304", "payload sizes in bytes")
	volume := fs.Int("volume", 64<<20, "bytes sent per throughput run")
	reps := fs.Int("reps", 5, "alternating raw/zenoh rounds per size")
	publishers := fs.Int("publishers", 1, "concurrent zenoh publishers in the throughput runs (raw TCP keeps one writer)")
	fs.Parse(args)
	if *publishers < 1 {
		return fmt.Errorf("-publishers must be at least 1, got %d", *publishers)
	}

	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("-sizes: %w", err)
		}
		sizes = append(sizes, n)
	}
	raw, err := net.Dial("tcp", net.JoinHostPort(*host, strconv.Itoa(*tcpPort)))
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.(*net.TCPConn).SetNoDelay(true)
	rr := bufio.NewReaderSize(raw, 256<<10)

	s, err := zenoh.Open(context.Background(), zenoh.Config{Connect: []string{fmt.Sprintf("tcp/%s:%d", *host, *zPort)}})
	if err != nil {
		return err
	}
	defer s.Close()
	pong := make(chan int, 1)
	synced := make(chan [2]int64, 1)
	s.Subscribe("bench/pong", func(smp transport.Sample) { pong <- len(smp.Payload) })
	s.Subscribe("bench/synced", func(smp transport.Sample) {
		synced <- [2]int64{int64(binary.LittleEndian.Uint64(smp.Payload)), int64(binary.LittleEndian.Uint64(smp.Payload[8:]))}
	})
	ctx := context.Background()
	// Ping until one comes back: both sides then know each other's
	// subscriptions.
	deadline := time.Now().Add(10 * time.Second)
	for ready := false; !ready; {
		s.Publish(ctx, "bench/ping", []byte{0}, nil)
		select {
		case <-pong:
			ready = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				return fmt.Errorf("no zenoh answer from %s:%d", *host, *zPort)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	for len(pong) > 0 {
		<-pong
	}
	fmt.Printf("| payload | raw TCP RTT p50 | zenoh RTT p50 | zenoh/raw RTT | raw TCP MB/s | zenoh MB/s | zenoh/raw MB/s | raw CPU ms/GB | zenoh CPU ms/GB | raw/zenoh CPU |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	b := &bench{raw: raw, rr: rr, s: s, pong: pong, synced: synced, reps: *reps, volume: *volume, publishers: *publishers}
	for _, size := range sizes {
		if err := b.size(size); err != nil {
			return err
		}
	}
	st := s.Stats()
	fmt.Printf("\nzenoh client counters: sent %d, received %d, dropped %d; %d zenoh publishers\n", st.MessagesSent, st.MessagesReceived, st.Dropped, *publishers)
	return nil
}

// bench holds both connections of a client run.
type bench struct {
	raw          net.Conn
	rr           *bufio.Reader
	s            *zenoh.Session
	pong         chan int
	synced       chan [2]int64
	reps, volume int
	publishers   int // concurrent zenoh publishers in throughput runs
}

// size measures one payload size and prints its table row. Raw TCP and
// zenoh alternate in reps rounds; each figure is the median over rounds,
// so load from other processes hits both alike.
func (b *bench) size(size int) error {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	rounds := max(20, min(2000, (64<<20)/max(size, 1)/4)/b.reps)
	n := min(max(1, b.volume/max(size, 1)), 200000)
	var rawRTT, zRTT []time.Duration
	var rawMBps, zMBps, rawCPU, zCPU []float64
	for r := 0; r < b.reps; r++ {
		rawRTT = append(rawRTT, median(rounds, func() error { return rawPing(b.raw, b.rr, payload) }))
		zRTT = append(zRTT, median(rounds, func() error { return b.zenohPing(payload) }))
		mbps, cpu, err := b.rawThroughput(payload, n)
		if err != nil {
			return err
		}
		rawMBps, rawCPU = append(rawMBps, mbps), append(rawCPU, cpu)
		if mbps, cpu, err = b.zenohThroughput(payload, n); err != nil {
			return err
		}
		zMBps, zCPU = append(zMBps, mbps), append(zCPU, cpu)
	}
	rR, zR := mid(rawRTT), mid(zRTT)
	rT, zT := mid(rawMBps), mid(zMBps)
	rC, zC := mid(rawCPU), mid(zCPU)
	fmt.Printf("| %s | %s | %s | %.2fx | %.0f | %.0f | %.0f%% | %.0f | %.0f | %.0f%% |\n", human(size), us(rR), us(zR),
		float64(zR)/float64(rR), rT, zT, 100*zT/rT, rC, zC, 100*rC/zC)
	return nil
}

func (b *bench) zenohPing(payload []byte) error {
	if err := b.s.Publish(context.Background(), "bench/ping", payload, nil); err != nil {
		return err
	}
	<-b.pong
	return nil
}

// rawThroughput sends n payloads one way and returns MB/s and the CPU
// both ends spent per GB.
func (b *bench) rawThroughput(payload []byte, n int) (float64, float64, error) {
	srv0, err := rawSync(b.raw, b.rr)
	if err != nil {
		return 0, 0, err
	}
	cli0 := cpuNow()
	var srv1 int64
	mbps := throughput(n*len(payload), func() (err error) {
		srv1, err = rawSink(b.raw, b.rr, payload, n)
		return err
	})
	return mbps, cpuPerGB(cpuNow()-cli0+srv1-srv0, n*len(payload)), nil
}

// zsync waits until the zenoh server has everything sent so far and
// returns what it counted and its CPU time.
func (b *bench) zsync() ([2]int64, error) {
	if err := b.s.Publish(context.Background(), "bench/sync", nil, nil); err != nil {
		return [2]int64{}, err
	}
	return <-b.synced, nil
}

// zenohThroughput is rawThroughput over zenoh.
func (b *bench) zenohThroughput(payload []byte, n int) (float64, float64, error) {
	v0, err := b.zsync()
	if err != nil {
		return 0, 0, err
	}
	cli0 := cpuNow()
	var v1 [2]int64
	mbps := throughput(n*len(payload), func() (err error) {
		if err := b.publishAll(payload, n); err != nil {
			return err
		}
		if v1, err = b.zsync(); err != nil {
			return err
		}
		if v1[0] != int64(n*len(payload)) {
			return fmt.Errorf("zenoh sink got %d bytes, want %d", v1[0], n*len(payload))
		}
		return nil
	})
	return mbps, cpuPerGB(cpuNow()-cli0+v1[1]-v0[1], n*len(payload)), nil
}

// publishAll publishes n payloads on bench/sink from b.publishers
// goroutines, which share the n between them.
func (b *bench) publishAll(payload []byte, n int) error {
	errs := make(chan error, b.publishers)
	for g := range b.publishers {
		k := n / b.publishers
		if g < n%b.publishers {
			k++
		}
		go func() {
			for range k {
				if err := b.s.Publish(context.Background(), "bench/sink", payload, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range b.publishers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// rawPing sends p with the echo bit and reads the echo back into a
// reused buffer (large reads bypass the bufio buffer).
func rawPing(c net.Conn, r *bufio.Reader, p []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(p))|echoBit)
	if _, err := (&net.Buffers{hdr[:], p}).WriteTo(c); err != nil {
		return err
	}
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := int(binary.LittleEndian.Uint32(hdr[:]) &^ echoBit)
	echoBuf = slices.Grow(echoBuf[:0], n)[:n]
	_, err := io.ReadFull(r, echoBuf)
	return err
}

var echoBuf []byte

// rawSink sends n payloads without echo, then syncs; it returns the
// server's CPU time at the sync.
func rawSink(c net.Conn, r *bufio.Reader, p []byte, n int) (int64, error) {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(p)))
	for i := 0; i < n; i++ {
		if _, err := (&net.Buffers{hdr[:], p}).WriteTo(c); err != nil {
			return 0, err
		}
	}
	return rawSync(c, r)
}

// rawSync waits until the server has read everything sent so far and
// returns its CPU time.
func rawSync(c net.Conn, r *bufio.Reader) (int64, error) {
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
		return 0, err
	}
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(b[:])), nil
}

// cpuNow is the CPU time (user and system) this process has used, in ns.
func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuPerGB is CPU milliseconds per GB (1e9 bytes) moved.
func cpuPerGB(cpuNs int64, bytes int) float64 {
	return float64(cpuNs) / 1e6 / (float64(bytes) / 1e9)
}

func median(rounds int, f func() error) time.Duration {
	for i := 0; i < max(5, rounds/10); i++ { // warm up
		if err := f(); err != nil {
			log.Fatal(err)
		}
	}
	d := make([]time.Duration, rounds)
	for i := range d {
		t0 := time.Now()
		if err := f(); err != nil {
			log.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func throughput(bytes int, f func() error) float64 {
	t0 := time.Now()
	if err := f(); err != nil {
		log.Fatal(err)
	}
	return float64(bytes) / time.Since(t0).Seconds() / 1e6
}

// mid returns the median of xs.
func mid[T time.Duration | float64](xs []T) T {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func human(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }
