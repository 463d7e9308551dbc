package proto

import "time"

// LogCursor remembers how far the lines of each source (one node of one
// dataflow on one daemon) have been shown, so that a follow merging a
// history with a live stream that overlaps it, or resuming after a
// reconnect, shows every line once. Lines that carry a Seq are ordered by
// it; lines without one (Seq 0, an older daemon) by Time per stream, a
// line equal in time and text to one already seen counting as that line.
// The zero value is ready to use; a LogCursor is not safe for concurrent
// use.
type LogCursor struct {
	seq  map[logSource]uint64
	time map[logSource]timePos
}

type logSource struct {
	daemon, dataflow, node string
	stream                 Stream // empty for Seq positions (one per node)
}

// timePos is the newest time seen and the texts seen at that time.
type timePos struct {
	t     time.Time
	lines []string
}

// cutLen is how much of a long line a daemon streams or answers before
// it cuts the rest (each way with its own marker).
const cutLen = 16 << 10

// sameLine reports whether a and b, seen at the same instant on the same
// stream, are one line: equal, or both cut from one long line.
func sameLine(a, b string) bool {
	if a == b {
		return true
	}
	return len(a) >= cutLen && len(b) >= cutLen && a[:cutLen] == b[:cutLen]
}

// Next reports whether l comes after what the cursor has seen of its
// source, and if so moves the cursor past it.
func (c *LogCursor) Next(l LogLine) bool {
	src := logSource{daemon: l.DaemonID, dataflow: l.DataflowID, node: l.NodeID}
	if l.Seq != 0 {
		if c.seq == nil {
			c.seq = map[logSource]uint64{}
		}
		if l.Seq <= c.seq[src] {
			return false
		}
		c.seq[src] = l.Seq
		return true
	}
	src.stream = l.Stream
	if c.time == nil {
		c.time = map[logSource]timePos{}
	}
	p, ok := c.time[src]
	switch {
	case !ok || l.Time.After(p.t):
		c.time[src] = timePos{t: l.Time, lines: []string{l.Line}}
		return true
	case l.Time.Before(p.t):
		return false
	}
	for _, s := range p.lines {
		if sameLine(s, l.Line) {
			return false
		}
	}
	p.lines = append(p.lines, l.Line)
	c.time[src] = p
	return true
}
