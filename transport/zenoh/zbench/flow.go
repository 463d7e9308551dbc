package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh"
)

// flowPub publishes a numbered sample on flow/seq every -interval for
// -duration, then prints a JSON summary with the session's counters.
func flowPub(args []string) error {
	fs := flag.NewFlagSet("flow-pub", flag.ExitOnError)
	connect := fs.String("connect", "tcp/127.0.0.1:17100", "endpoint of the subscriber")
	interval := fs.Duration("interval", 5*time.Millisecond, "time between samples")
	duration := fs.Duration("duration", 10*time.Second, "how long to publish")
	lease := fs.Duration("lease", 10*time.Second, "zenoh lease")
	fs.Parse(args)
	s, err := zenoh.Open(context.Background(), zenoh.Config{Connect: []string{*connect}, Lease: *lease, ReconnectMax: time.Second})
	if err != nil {
		return err
	}
	defer s.Close()
	for !s.Matching("flow/seq") {
		time.Sleep(10 * time.Millisecond)
	}
	var seq, unmatched, failed uint64
	end := time.Now().Add(*duration)
	t := time.NewTicker(*interval)
	defer t.Stop()
	for now := range t.C {
		if now.After(end) {
			break
		}
		seq++
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], seq)
		if !s.Matching("flow/seq") {
			unmatched++ // the subscriber is unreachable: this one is lost
			continue
		}
		if err := s.Publish(context.Background(), "flow/seq", b[:], nil); err != nil {
			failed++
		}
	}
	st := s.Stats()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"published": seq, "unmatched": unmatched, "failed": failed,
		"dropped": st.Dropped, "links_opened": st.LinksOpened, "links_closed": st.LinksClosed,
	})
}

// flowSub listens, subscribes to flow/seq and, on SIGTERM, prints a JSON
// summary: samples received, sequence gaps, reorderings, last seq.
func flowSub(args []string) error {
	fs := flag.NewFlagSet("flow-sub", flag.ExitOnError)
	listen := fs.String("listen", "tcp/127.0.0.1:17100", "endpoint to listen on")
	lease := fs.Duration("lease", 10*time.Second, "zenoh lease")
	fs.Parse(args)
	s, err := zenoh.Open(context.Background(), zenoh.Config{Listen: []string{*listen}, Lease: *lease})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var received, missing, reordered, last uint64
	s.Subscribe("flow/seq", func(smp transport.Sample) {
		v := binary.LittleEndian.Uint64(smp.Payload)
		mu.Lock()
		defer mu.Unlock()
		received++
		switch {
		case v <= last:
			reordered++
		case v > last+1:
			missing += v - last - 1
		}
		last = max(last, v)
	})
	fmt.Println("READY")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	st := s.Stats()
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"received": received, "missing": missing, "reordered": reordered, "last": last,
		"links_opened": st.LinksOpened, "dropped": st.Dropped,
	})
}
