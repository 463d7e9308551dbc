package dataplane

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	node "github.com/adora-rs/adora/nodes"
)

// The test binary doubles as node programs: with DP_TEST_NODE set, TestMain
// runs the named node instead of the tests. Nodes are configured through
// DP_* variables and write what they see to DP_LOG, one line per event.

var testNodes = map[string]func(n *node.Node) error{
	"sender":   runSender,
	"receiver": runReceiver,
}

func runTestNode(name string) int {
	f := testNodes[name]
	if f == nil {
		fmt.Fprintf(os.Stderr, "unknown test node %q\n", name)
		return 2
	}
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "init:", err)
		return 1
	}
	defer n.Close()
	if err := f(n); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envDur(k string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(k))
	return d
}

// fill writes seq into the first 8 bytes and a seq-dependent pattern after.
func fill(b []byte, seq int) {
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(seq))
	}
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq*7 + i)
	}
}

// check returns the sequence number in b and whether the pattern holds.
func check(b []byte) (int, bool) {
	if len(b) < 8 {
		return -1, len(b) == 0
	}
	seq := int(binary.LittleEndian.Uint64(b))
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq*7+i) {
			return seq, false
		}
	}
	return seq, true
}

// runSender sends DP_COUNT messages of DP_SIZE bytes on every output,
// DP_INTERVAL apart (pausing DP_PAUSE after seq DP_PAUSE_AFTER), through
// AllocOutput when DP_ALLOC is set. With DP_CLOSE it then closes its
// outputs; with DP_WAIT_STOP it then waits for STOP and logs its pool
// statistics (once all but one region are free, or after DP_POOL_WAIT,
// default 5s).
func runSender(n *node.Node) error {
	count, size := envInt("DP_COUNT", 10), envInt("DP_SIZE", 16)
	interval := envDur("DP_INTERVAL")
	start := envInt("DP_START", 0)
	outs := n.Config().Outputs
	var each *os.File // DP_LOG_EACH: log "WROTE seq" once a send returned
	if os.Getenv("DP_LOG_EACH") != "" {
		each = openLog()
		defer each.Close()
	}
	for seq := start; seq < start+count; seq++ {
		for _, o := range outs {
			if os.Getenv("DP_ALLOC") != "" {
				buf, err := n.AllocOutput(size)
				if err != nil {
					return err
				}
				fill(buf.Data, seq)
				if err := n.SendBuffer(o, buf, node.Metadata{TypeInfo: "bytes"}); err != nil {
					return err
				}
				continue
			}
			b := make([]byte, size)
			fill(b, seq)
			params := map[string]any{"seq": seq}
			if os.Getenv("DP_FLUSH_LAST") != "" && seq == start+count-1 {
				params["flush"] = true
			}
			if err := n.SendOutput(o, b, node.Metadata{Parameters: params}); err != nil {
				return err
			}
		}
		if each != nil {
			fmt.Fprintln(each, "WROTE", seq)
		}
		if interval > 0 {
			time.Sleep(interval)
		}
		if seq == envInt("DP_PAUSE_AFTER", -1) {
			time.Sleep(envDur("DP_PAUSE"))
		}
	}
	logf := openLog()
	defer logf.Close()
	fmt.Fprintln(logf, "SENT", count)
	if os.Getenv("DP_CLOSE") != "" { // close the outputs, stay alive
		if err := n.CloseOutputs(); err != nil {
			return err
		}
	}
	if os.Getenv("DP_WAIT_STOP") == "" {
		return nil
	}
	for ev := range n.Events() {
		if ev.Type == node.Stop {
			break
		}
	}
	// Let pending DROPPED frames arrive (a receiver may still hold the
	// last message: it releases it when it takes its next event).
	wait := 5 * time.Second
	if d := envDur("DP_POOL_WAIT"); d > 0 {
		wait = d
	}
	deadline := time.Now().Add(wait)
	for {
		regions, free, _ := n.PoolStats()
		if regions-free <= 1 || time.Now().After(deadline) {
			fmt.Fprintln(logf, "POOL", regions, free)
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openLog() *os.File {
	p := os.Getenv("DP_LOG")
	if p == "" {
		p = os.DevNull
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	return f
}

// runReceiver logs every event: "INPUT id seq len ok|bad shared", or the
// event type with its id. DP_SLEEP slows it down; DP_RETAIN keeps every
// shared payload (never releasing it).
func runReceiver(n *node.Node) error {
	logf := openLog()
	defer logf.Close()
	sleep := envDur("DP_SLEEP")
	retain := os.Getenv("DP_RETAIN") != ""
	for ev := range n.Events() {
		switch ev.Type {
		case node.Input:
			seq, ok := check(ev.Data)
			if retain {
				ev.Retain()
			}
			fmt.Fprintf(logf, "INPUT %s %d %d %v %v\n", ev.ID, seq, len(ev.Data), ok, ev.Shared())
			if sleep > 0 {
				time.Sleep(sleep)
			}
		case node.NodeRestarted, node.NodeFailed:
			fmt.Fprintf(logf, "%s %s %s\n", ev.Type, ev.ID, strings.Join(ev.Inputs, ","))
		case node.Error:
			fmt.Fprintf(logf, "%s %s\n", ev.Type, ev.Err)
		default:
			fmt.Fprintf(logf, "%s %s\n", ev.Type, ev.ID)
		}
	}
	return nil
}
