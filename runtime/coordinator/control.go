package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

func versionString() string { return version.Version }

func (c *Coordinator) handleControl(w http.ResponseWriter, r *http.Request) {
	if !c.track(w) {
		return
	}
	defer c.untrack()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	// Closing the coordinator must not wait for a peer that never says hello.
	stopHello := context.AfterFunc(c.ctx, func() { ws.NetConn().Close() })
	_, err = wsconn.ServerHello(ws, proto.RoleCLI, helloTimeout)
	stopHello()
	if err != nil {
		c.log.Warn("control hello refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	var inflight atomic.Int32 // this connection's requests being served
	conn := wsconn.Start(ws, func(conn *wsconn.Conn, e *proto.Envelope) { c.controlMessage(&inflight, conn, e) }, c.cfg.ConnOptions)
	select {
	case <-conn.Done():
	case <-c.ctx.Done():
	}
	conn.Close()
	c.dropFollowers(conn)
}

// Per control connection bounds.
const (
	maxRequestsPerConn  = 64
	maxFollowersPerConn = 16
)

// controlMessage dispatches one CLI message; requests run on their own
// worker (at most maxRequestsPerConn per connection) so a slow stop never
// blocks the connection.
func (c *Coordinator) controlMessage(inflight *atomic.Int32, conn *wsconn.Conn, e *proto.Envelope) {
	if e.Type == proto.TypeUnfollow {
		var u proto.Unfollow
		if e.Into(&u) == nil {
			c.unfollow(conn, u.Follow)
		}
		return
	}
	if !e.IsRequest() {
		return
	}
	if inflight.Add(1) > maxRequestsPerConn {
		inflight.Add(-1)
		conn.Reply(c.ctx, e, "", nil, fmt.Errorf("too many requests in flight on this connection (at most %d)", maxRequestsPerConn))
		return
	}
	ok := c.goWorker(func() {
		defer inflight.Add(-1)
		t, payload, err := c.control(conn, e)
		if t == "" && err == nil {
			return // answered by the handler itself
		}
		conn.Reply(c.ctx, e, t, payload, err)
		if e.Type == proto.TypeDestroy {
			c.markDestroyed()
		}
	})
	if !ok {
		inflight.Add(-1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Reply(ctx, e, "", nil, fmt.Errorf("coordinator is shutting down"))
	}
}

func (c *Coordinator) control(conn *wsconn.Conn, e *proto.Envelope) (proto.Type, any, error) {
	ctx := c.ctx
	switch e.Type {
	case proto.TypeStart:
		var req proto.Start
		if err := e.Into(&req); err != nil {
			return "", nil, err
		}
		r, err := c.Start(ctx, req)
		return proto.TypeStartReply, r, err
	case proto.TypeStopFlow:
		var req proto.StopFlow
		if err := e.Into(&req); err != nil {
			return "", nil, err
		}
		r, err := c.Stop(ctx, req)
		return proto.TypeStopReply, r, err
	case proto.TypeRestart:
		var req proto.Restart
		if err := e.Into(&req); err != nil {
			return "", nil, err
		}
		r, err := c.Restart(ctx, req)
		return proto.TypeRestartRep, r, err
	case proto.TypeList:
		var req proto.List
		if len(e.Payload) > 0 {
			if err := e.Into(&req); err != nil {
				return "", nil, err
			}
		}
		r, err := c.List(req)
		return proto.TypeListReply, r, err
	case proto.TypeInfo:
		var req proto.Info
		if err := e.Into(&req); err != nil {
			return "", nil, err
		}
		r, err := c.Info(req.Dataflow)
		return proto.TypeInfoReply, r, err
	case proto.TypeDaemons:
		var req proto.Daemons
		if len(e.Payload) > 0 {
			if err := e.Into(&req); err != nil {
				return "", nil, err
			}
		}
		r := c.Daemons()
		if req.All {
			r.Daemons = append(r.Daemons, c.knownDaemons(r.Daemons)...)
		}
		return proto.TypeDaemonsRep, r, nil
	case proto.TypeTop:
		return proto.TypeTopReply, c.Top(), nil
	case proto.TypeLogs:
		var req proto.Logs
		if err := e.Into(&req); err != nil {
			return "", nil, err
		}
		return "", nil, c.logs(ctx, conn, e, req)
	case proto.TypeDestroy:
		var req proto.Destroy
		if len(e.Payload) > 0 {
			if err := e.Into(&req); err != nil {
				return "", nil, err
			}
		}
		err := c.Destroy(ctx, req)
		return proto.TypeReply, nil, err
	}
	return "", nil, fmt.Errorf("unknown request %q", e.Type)
}

// List returns the active dataflows, and with req.All the finished ones
// the store still holds.
func (c *Coordinator) List(req proto.List) (proto.ListReply, error) {
	out := proto.ListReply{Dataflows: []proto.DataflowInfo{}}
	seen := map[string]bool{}
	c.mu.Lock()
	for id, f := range c.flows {
		out.Dataflows = append(out.Dataflows, f.info())
		seen[id] = true
	}
	c.mu.Unlock()
	if req.All {
		recs, err := c.store.Dataflows()
		if err != nil {
			return out, fmt.Errorf("list dataflows: %w", err)
		}
		for _, r := range recs {
			if !seen[r.ID] && !r.Status.Active() {
				out.Dataflows = append(out.Dataflows, recordInfo(r))
			}
		}
	}
	sort.Slice(out.Dataflows, func(i, j int) bool {
		a, b := out.Dataflows[i], out.Dataflows[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.CreatedAt.Before(b.CreatedAt)
	})
	return out, nil
}

// Info describes one dataflow (the active one with that name or uuid
// first, then the most recent record), descriptor included.
func (c *Coordinator) Info(ref string) (proto.DataflowInfo, error) {
	c.mu.Lock()
	if f := c.resolveLocked(ref); f != nil {
		d := f.info()
		d.Descriptor = f.rec.Descriptor
		c.mu.Unlock()
		return d, nil
	}
	c.mu.Unlock()
	r, err := c.resolveRecord(ref)
	if err != nil {
		return proto.DataflowInfo{}, err
	}
	d := recordInfo(r)
	d.Descriptor = r.Descriptor
	return d, nil
}

// Daemons lists the connected daemons.
func (c *Coordinator) Daemons() proto.DaemonsReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := proto.DaemonsReply{Daemons: []proto.DaemonInfo{}, ActiveDataflows: len(c.flows), CoordinatorVersion: version.Version, Now: c.clock.Now()}
	for _, s := range c.sortedDaemonsLocked() {
		d := s.info(true)
		d.DataPlane = c.dataPlaneStatusLocked(s)
		r.Daemons = append(r.Daemons, d)
	}
	return r
}

// knownDaemons returns the stored daemons not in connected.
func (c *Coordinator) knownDaemons(connected []proto.DaemonInfo) []proto.DaemonInfo {
	recs, err := c.store.Daemons()
	if err != nil {
		c.log.Warn("read daemons from store", "err", err)
		return nil
	}
	live := map[string]bool{}
	for _, d := range connected {
		live[d.ID] = true
	}
	var out []proto.DaemonInfo
	for _, r := range recs {
		if live[r.ID] {
			continue
		}
		out = append(out, proto.DaemonInfo{ID: r.ID, MachineID: r.MachineID, Labels: r.Labels, Version: r.Version,
			Hostname: r.Hostname, OS: r.OS, Arch: r.Arch, ZenohEndpoints: r.ZenohEndpoints,
			ConnectedAt: r.FirstSeen, LastHeartbeat: r.LastSeen})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MachineID != out[j].MachineID {
			return out[i].MachineID < out[j].MachineID
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Top returns the latest metrics of the nodes of active dataflows.
func (c *Coordinator) Top() proto.TopReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := proto.TopReply{Time: c.clock.Now(), Nodes: []proto.NodeMetric{}}
	for _, s := range c.daemons {
		for fid, byNode := range s.metrics {
			f, ok := c.flows[fid]
			if !ok {
				continue
			}
			for _, m := range byNode {
				m.DataflowID, m.DataflowName, m.DaemonID, m.MachineID = fid, f.rec.Name, s.id, s.reg.MachineID
				r.Nodes = append(r.Nodes, m)
			}
		}
	}
	sort.Slice(r.Nodes, func(i, j int) bool {
		a, b := r.Nodes[i], r.Nodes[j]
		if a.DataflowName != b.DataflowName {
			return a.DataflowName < b.DataflowName
		}
		return a.NodeID < b.NodeID
	})
	r.DataPlane = c.dataPlaneStatusesLocked()
	r.Nodes, r.Omitted = fitMetrics(r.Nodes, maxReplyBytes-encodedSize(r.DataPlane))
	return r
}

// fitMetrics keeps the leading metrics whose encoding fits in max bytes
// and says how many it left out.
func fitMetrics(ms []proto.NodeMetric, max int) ([]proto.NodeMetric, int) {
	size := 0
	for i, m := range ms {
		b, _ := json.Marshal(m)
		if size += len(b) + 1; size > max {
			return ms[:i], len(ms) - i
		}
	}
	return ms, 0
}

// maxReplyBytes keeps a list-like reply inside one frame.
const maxReplyBytes = proto.MaxMessageSize - 64<<10

// destroyParallelism bounds the dataflows Destroy stops at once, and the
// daemons it tells to exit at once.
const destroyParallelism = 10

// Destroy stops every active dataflow and tells every daemon to exit. The
// control API then closes Destroyed (after answering) so the process exits.
func (c *Coordinator) Destroy(ctx context.Context, req proto.Destroy) error {
	c.mu.Lock()
	var ids []string
	for id := range c.flows {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Strings(ids)
	var errs []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, destroyParallelism)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rep, err := c.Stop(ctx, proto.StopFlow{Dataflow: id, Grace: req.Grace})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
			} else if rep.Error != "" {
				errs = append(errs, rep.Name+": "+rep.Error)
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	sessions := c.sortedDaemonsLocked()
	c.mu.Unlock()
	for _, s := range sessions {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.conn.Request(dctx, proto.TypeDestroy, proto.Destroy{Grace: req.Grace}, nil); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("daemon `%s`: %v", s.name(), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.log.Info("destroy: dataflows stopped and daemons told to exit", "dataflows", len(ids), "daemons", len(sessions))
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("destroy: %s", joinErrs(errs))
	}
	return nil
}

func joinErrs(errs []string) string {
	out := ""
	for i, e := range errs {
		if i > 0 {
			out += "; "
		}
		out += e
	}
	return out
}

// markDestroyed closes Destroyed once.
func (c *Coordinator) markDestroyed() {
	c.destroyMu.Do(func() { close(c.destroyed) })
}
