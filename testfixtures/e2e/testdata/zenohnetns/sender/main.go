// Command sender is a node of the cross-machine Zenoh test: it sends the
// numbers 1..COUNT on output "seq" (each followed by a space and PAD
// bytes of padding when PAD is set), one every INTERVAL (its own clock, no
// timer input, so that its input queue can drop nothing), appends each
// number it handed to the daemon to the file RECORD, then stays up until
// it is stopped, so that the daemon keeps reporting its counters.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
}

func run() error {
	total, err := strconv.Atoi(os.Getenv("COUNT"))
	if err != nil || total <= 0 {
		return fmt.Errorf("COUNT %q: want a positive number", os.Getenv("COUNT"))
	}
	every, err := time.ParseDuration(os.Getenv("INTERVAL"))
	if err != nil || every <= 0 {
		return fmt.Errorf("INTERVAL %q: want a positive duration", os.Getenv("INTERVAL"))
	}
	pad := 0
	if v := os.Getenv("PAD"); v != "" {
		if pad, err = strconv.Atoi(v); err != nil || pad < 0 {
			return fmt.Errorf("PAD %q: want a byte count", v)
		}
	}
	padding := bytes.Repeat([]byte{'x'}, pad)
	rec, err := os.OpenFile(os.Getenv("RECORD"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer rec.Close()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	n, err := node.Init()
	if err != nil {
		return err
	}
	defer n.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	events := n.Events()
	for i := 1; i <= total; {
		select {
		case <-term:
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil // no inputs: the stream may end at once
			} else if ev.Type == node.Stop {
				return nil
			}
		case <-t.C:
			msg := strconv.AppendInt(nil, int64(i), 10)
			if pad > 0 {
				msg = append(append(msg, ' '), padding...)
			}
			if err := n.SendOutput("seq", msg, node.Metadata{}); err != nil {
				return err
			}
			if _, err := fmt.Fprintln(rec, i); err != nil {
				return err
			}
			i++
		}
	}
	fmt.Println("sent", total)
	for {
		select {
		case <-term:
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if ev.Type == node.Stop {
				return nil
			}
		}
	}
}
