package coordinator

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// maxFollowBuf bounds the lines held for a follower while its history is
// fetched; beyond it the oldest are dropped (and counted, see dropped).
const maxFollowBuf = 10000

// maxDaemonTail bounds the lines asked from one daemon for one logs
// request (the reply must fit in a frame anyway).
const maxDaemonTail = 10000

// follower is a CLI following a dataflow's logs. Guarded by Coordinator.mu.
type follower struct {
	conn   *wsconn.Conn
	id     uint64 // the Logs request ID
	flowID string
	node   string
	ready  bool            // history answered; lines go out directly
	buf    []proto.LogLine // lines that arrived while history was fetched
	ended  bool            // the dataflow ended before ready (or during a catch-up)
	end    proto.LogsEnd
	lagged bool
	// dropped counts lines the follower's connection had no room for
	// since the last delivery; the next delivery says so first.
	dropped int
	// cur holds what the follower was sent of each node (the history,
	// then live lines): a line the history already had, still in flight
	// from the daemon when the history was read, is not sent again.
	cur proto.LogCursor
	// tail is the request's Tail, for catch-ups.
	tail int
	// pending holds, per daemon whose history is being fetched again
	// (it reconnected, see catchUp), the lines it streamed meanwhile.
	pending map[string]*catchUp
}

// catchUp is one history fetch from a daemon that (re)connected while a
// follow was open: lines it wrote while no coordinator listened are in its
// log files only.
type catchUp struct {
	s     *daemonSession
	lines []proto.LogLine // streamed during the fetch, held to keep order
}

// holdLocked keeps l until the history is answered (see hold).
func (fl *follower) holdLocked(l proto.LogLine) {
	var n int
	fl.buf, n = hold(fl.buf, l)
	fl.dropped += n
}

// hold appends l to buf; a full buf (maxFollowBuf) first drops its oldest
// tenth. It returns the lines dropped.
func hold(buf []proto.LogLine, l proto.LogLine) ([]proto.LogLine, int) {
	n := 0
	if len(buf) >= maxFollowBuf {
		n = maxFollowBuf / 10
		buf = buf[:copy(buf, buf[n:])]
	}
	return append(buf, l), n
}

func (fl *follower) wants(l proto.LogLine) bool {
	return fl.flowID == l.DataflowID && (fl.node == "" || fl.node == l.NodeID)
}

// daemonLog records lines from daemon s and forwards them to followers.
func (c *Coordinator) daemonLog(s *daemonSession, lines []proto.LogLine) {
	out := map[*follower][]proto.LogLine{}
	c.mu.Lock()
	for _, l := range lines {
		l.DaemonID = s.id
		f, ok := c.flows[l.DataflowID]
		if !ok {
			continue
		}
		f.logs = append(f.logs, l)
		if len(f.logs) >= 2*logRing { // trimmed now and then, not per line
			f.logs = append(f.logs[:0:0], f.logs[len(f.logs)-logRing:]...)
		}
		for fl := range c.followers {
			if !fl.wants(l) {
				continue
			}
			if cu := fl.pending[s.id]; cu != nil {
				var n int
				cu.lines, n = hold(cu.lines, l)
				fl.dropped += n
				continue
			}
			if fl.ready {
				if fl.cur.Next(l) {
					out[fl] = append(out[fl], l)
				}
			} else {
				fl.holdLocked(l)
			}
		}
	}
	notes := map[*follower]int{}
	for fl, ls := range out {
		if fl.dropped > 0 {
			notes[fl] = fl.dropped
			out[fl] = append([]proto.LogLine{droppedNote(fl, ls[0].Time)}, ls...)
			fl.dropped = 0
		}
	}
	c.mu.Unlock()
	for fl, ls := range out {
		if fl.conn.TrySend(proto.TypeLog, proto.Log{Follow: fl.id, Lines: ls}) {
			continue
		}
		n := len(ls)
		if notes[fl] > 0 {
			n += notes[fl] - 1 // the note is not a line
		}
		c.mu.Lock()
		c.droppedLocked(fl, n)
		c.mu.Unlock()
	}
}

// droppedNote is the system line that opens a delivery after lines were
// dropped for fl.
func droppedNote(fl *follower, t time.Time) proto.LogLine {
	return proto.LogLine{DataflowID: fl.flowID, Stream: proto.System, Time: t,
		Line: fmt.Sprintf("... %d lines dropped: this follow could not keep up (adora logs shows every line)", fl.dropped)}
}

// droppedLocked counts n lines fl's connection had no room for.
func (c *Coordinator) droppedLocked(fl *follower, n int) {
	fl.dropped += n
	if !fl.lagged {
		fl.lagged = true
		c.log.Warn("log follower is too slow; dropping lines", "remote", fl.conn.RemoteAddr(), "dataflow", fl.flowID)
	}
}

// deliverLocked sends ls to fl without blocking, in frames that fit, after
// a note of the lines dropped before, if any.
func (c *Coordinator) deliverLocked(fl *follower, ls []proto.LogLine) {
	for len(ls) > 0 {
		n := fitCount(ls, proto.MaxLogsReplyBytes-lineSize(droppedNote(fl, time.Time{})))
		batch := ls[:n]
		if fl.dropped > 0 {
			batch = append([]proto.LogLine{droppedNote(fl, ls[0].Time)}, batch...)
		}
		if !fl.conn.TrySend(proto.TypeLog, proto.Log{Follow: fl.id, Lines: batch}) {
			c.droppedLocked(fl, len(ls))
			return
		}
		fl.dropped = 0
		ls = ls[n:]
	}
}

// fitCount is how many leading lines of ls fit in max bytes (at least one).
func fitCount(ls []proto.LogLine, max int) int {
	size := 0
	for i, l := range ls {
		if size += lineSize(l); size > max && i > 0 {
			return i
		}
	}
	return len(ls)
}

// lineSize estimates a line's encoded size.
func lineSize(l proto.LogLine) int {
	return len(l.Line) + len(l.NodeID) + len(l.DataflowID) + len(l.DaemonID) + 160
}

// endFollowersLocked ends every follow of dataflow id.
func (c *Coordinator) endFollowersLocked(id string, st proto.FlowStatus, errText string) {
	for fl := range c.followers {
		if fl.flowID != id {
			continue
		}
		end := proto.LogsEnd{Follow: fl.id, DataflowID: id, Status: st, Error: errText}
		if !fl.ready || len(fl.pending) > 0 {
			fl.ended, fl.end = true, end
			continue
		}
		delete(c.followers, fl)
		c.sendEndLocked(fl, end)
	}
}

func (c *Coordinator) sendEndLocked(fl *follower, end proto.LogsEnd) {
	var note *proto.Log
	if fl.dropped > 0 {
		note = &proto.Log{Follow: fl.id, Lines: []proto.LogLine{droppedNote(fl, c.clock.Now())}}
		if fl.conn.TrySend(proto.TypeLog, *note) {
			note = nil
		}
	}
	if note == nil && fl.conn.TrySend(proto.TypeLogsEnd, end) {
		return
	}
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		if note != nil {
			fl.conn.Send(ctx, proto.TypeLog, *note)
		}
		fl.conn.Send(ctx, proto.TypeLogsEnd, end)
	}()
}

func (c *Coordinator) unfollow(conn *wsconn.Conn, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for fl := range c.followers {
		if fl.conn == conn && fl.id == id {
			delete(c.followers, fl)
		}
	}
}

func (c *Coordinator) dropFollowers(conn *wsconn.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for fl := range c.followers {
		if fl.conn == conn {
			delete(c.followers, fl)
		}
	}
}

// logs answers a Logs request: history from the daemons (the coordinator's
// recent lines for daemons that cannot answer), then, with Follow, new
// lines as Log events until the dataflow ends.
func (c *Coordinator) logs(ctx context.Context, conn *wsconn.Conn, e *proto.Envelope, req proto.Logs) error {
	var fl *follower
	c.mu.Lock()
	f := c.resolveLocked(req.Dataflow)
	var id string
	var daemonIDs []string
	var ring []proto.LogLine
	sessions := map[string]*daemonSession{}
	if f != nil {
		id, daemonIDs, ring = f.rec.ID, f.daemonIDs(), append([]proto.LogLine(nil), f.logs[max(0, len(f.logs)-logRing):]...)
		if req.Follow {
			if c.followersOfLocked(conn) >= maxFollowersPerConn {
				c.mu.Unlock()
				return fmt.Errorf("too many log follows on this connection (at most %d)", maxFollowersPerConn)
			}
			fl = &follower{conn: conn, id: e.ID, flowID: id, node: req.Node, tail: req.Tail}
			c.followers[fl] = struct{}{}
		}
	}
	c.mu.Unlock()
	var endNow *proto.LogsEnd
	if f == nil {
		r, err := c.resolveRecord(req.Dataflow)
		if err != nil {
			return err
		}
		id = r.ID
		seen := map[string]bool{}
		for _, p := range r.Placements {
			if !seen[p.DaemonID] {
				seen[p.DaemonID] = true
				daemonIDs = append(daemonIDs, p.DaemonID)
			}
		}
		if req.Follow {
			endNow = &proto.LogsEnd{Follow: e.ID, DataflowID: r.ID, Status: r.Status, Error: r.Error}
		}
	}
	if req.Node != "" && !c.hasNode(id, req.Node) {
		c.dropFollower(fl)
		return fmt.Errorf("dataflow `%s` has no node `%s`", req.Dataflow, req.Node)
	}
	c.mu.Lock()
	for _, did := range daemonIDs {
		if s, ok := c.daemons[did]; ok {
			sessions[did] = s
		}
	}
	c.mu.Unlock()

	lines := c.history(ctx, id, req, daemonIDs, sessions, ring)
	if err := conn.Reply(ctx, e, proto.TypeLogsReply, proto.LogsReply{DataflowID: id, Lines: lines}, nil); err != nil {
		c.dropFollower(fl)
		return nil
	}
	if endNow != nil {
		conn.Send(ctx, proto.TypeLogsEnd, *endNow)
		return nil
	}
	if fl != nil {
		c.startFollowing(fl, lines)
	}
	return nil
}

func (c *Coordinator) followersOfLocked(conn *wsconn.Conn) int {
	n := 0
	for fl := range c.followers {
		if fl.conn == conn {
			n++
		}
	}
	return n
}

func (c *Coordinator) dropFollower(fl *follower) {
	if fl == nil {
		return
	}
	c.mu.Lock()
	delete(c.followers, fl)
	c.mu.Unlock()
}

// hasNode reports whether dataflow id (active or stored) has node.
func (c *Coordinator) hasNode(id, node string) bool {
	c.mu.Lock()
	f, ok := c.flows[id]
	c.mu.Unlock()
	var pl []proto.Placement
	if ok {
		pl = f.rec.Placements
	} else if r, err := c.store.Dataflow(id); err == nil {
		pl = r.Placements
	}
	for _, p := range pl {
		if p.NodeID == node {
			return true
		}
	}
	return false
}

// startFollowing flushes lines buffered while history was fetched (minus
// those history already had) and switches fl to direct delivery; from
// then on fl.cur keeps out the lines history had that the daemons stream
// only now.
func (c *Coordinator) startFollowing(fl *follower, history []proto.LogLine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.followers[fl]; !ok {
		return // unfollowed or connection gone
	}
	for _, l := range history {
		fl.cur.Next(l)
	}
	var flush []proto.LogLine
	for _, l := range fl.buf {
		if fl.cur.Next(l) {
			flush = append(flush, l)
		}
	}
	fl.buf, fl.ready = nil, true
	c.deliverLocked(fl, flush)
	if fl.ended && len(fl.pending) == 0 {
		delete(c.followers, fl)
		c.sendEndLocked(fl, fl.end)
	}
}

// history gathers the last req.Tail lines of dataflow id from its daemons.
func (c *Coordinator) history(ctx context.Context, id string, req proto.Logs, daemonIDs []string, sessions map[string]*daemonSession, ring []proto.LogLine) []proto.LogLine {
	var mu sync.Mutex
	var lines []proto.LogLine
	var wg sync.WaitGroup
	for _, did := range daemonIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []proto.LogLine
			if s := sessions[did]; s != nil {
				rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				var rep proto.LogsReply
				tail := req.Tail
				if tail <= 0 || tail > maxDaemonTail {
					tail = maxDaemonTail
				}
				err := s.conn.Request(rctx, proto.TypeLogs, proto.Logs{Dataflow: id, Node: req.Node, Tail: tail}, &rep)
				cancel()
				if err == nil {
					for _, l := range rep.Lines {
						l.DaemonID = did
						got = append(got, l)
					}
					mu.Lock()
					lines = append(lines, got...)
					mu.Unlock()
					return
				}
				c.log.Warn("logs from daemon failed; using the coordinator's recent lines", "daemon", s.name(), "err", err)
			}
			for _, l := range ring {
				if l.DaemonID == did && (req.Node == "" || l.NodeID == req.Node) {
					got = append(got, l)
				}
			}
			mu.Lock()
			lines = append(lines, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
	if req.Tail > 0 && len(lines) > req.Tail {
		lines = lines[len(lines)-req.Tail:]
	}
	return fitLines(lines, proto.MaxLogsReplyBytes)
}

// fitLines keeps the newest lines whose encoding fits in max bytes; when
// it drops some it says so in a first, system line.
func fitLines(lines []proto.LogLine, max int) []proto.LogLine {
	size, keep := 0, 0
	for i := len(lines) - 1; i >= 0; i-- {
		n := lineSize(lines[i])
		if size+n > max {
			break
		}
		size += n
		keep++
	}
	if keep == len(lines) {
		if lines == nil {
			return []proto.LogLine{}
		}
		return lines
	}
	dropped := len(lines) - keep
	out := make([]proto.LogLine, 0, keep+1)
	first := lines[dropped]
	out = append(out, proto.LogLine{DataflowID: first.DataflowID, Stream: proto.System, Time: first.Time,
		Line: fmt.Sprintf("... %d earlier lines omitted (too many for one reply); use --tail", dropped)})
	return append(out, lines[dropped:]...)
}

// catchUp fetches again, for every follow of a dataflow with nodes on
// daemon s, s's history: s just registered, and lines its nodes wrote
// while it was away from this coordinator (or before this coordinator
// started) are in its log files only. It runs on s's reader goroutine
// before any later message of s, so every line s streams from now on is
// held until the history is merged (follower.cur drops what was shown).
func (c *Coordinator) catchUp(s *daemonSession) {
	type job struct {
		fl *follower
		cu *catchUp
	}
	var jobs []job
	c.mu.Lock()
	for fl := range c.followers {
		f := c.flows[fl.flowID]
		if f == nil || !f.involves(s) {
			continue
		}
		cu := &catchUp{s: s}
		if old := fl.pending[s.id]; old != nil {
			cu.lines = old.lines // an older connection's fetch is superseded
		}
		if fl.pending == nil {
			fl.pending = map[string]*catchUp{}
		}
		fl.pending[s.id] = cu
		jobs = append(jobs, job{fl, cu})
	}
	c.mu.Unlock()
	for _, j := range jobs {
		if !c.goWorker(func() { c.catchUpOne(j.fl, j.cu) }) {
			c.finishCatchUp(j.fl, j.cu, nil)
		}
	}
}

func (c *Coordinator) catchUpOne(fl *follower, cu *catchUp) {
	tail := fl.tail
	if tail <= 0 || tail > maxDaemonTail {
		tail = maxDaemonTail
	}
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	var rep proto.LogsReply
	if err := cu.s.conn.Request(ctx, proto.TypeLogs, proto.Logs{Dataflow: fl.flowID, Node: fl.node, Tail: tail}, &rep); err != nil {
		c.log.Warn("logs from a reconnected daemon failed; lines it wrote while away are in its log files only", "daemon", cu.s.name(), "dataflow", fl.flowID, "err", err)
		c.finishCatchUp(fl, cu, nil)
		return
	}
	for i := range rep.Lines {
		rep.Lines[i].DaemonID = cu.s.id
	}
	c.finishCatchUp(fl, cu, rep.Lines)
}

// finishCatchUp merges a catch-up's history and held lines into fl's
// stream, and ends fl if its dataflow ended meanwhile.
func (c *Coordinator) finishCatchUp(fl *follower, cu *catchUp, history []proto.LogLine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl.pending[cu.s.id] != cu {
		return // superseded by a newer connection's catch-up
	}
	delete(fl.pending, cu.s.id)
	if _, ok := c.followers[fl]; !ok {
		return
	}
	lines := append(history, cu.lines...)
	if !fl.ready {
		fl.buf = append(fl.buf, lines...) // startFollowing filters them
		return
	}
	var out []proto.LogLine
	for _, l := range lines {
		if fl.cur.Next(l) {
			out = append(out, l)
		}
	}
	c.deliverLocked(fl, out)
	if fl.ended && len(fl.pending) == 0 {
		delete(c.followers, fl)
		c.sendEndLocked(fl, fl.end)
	}
}
