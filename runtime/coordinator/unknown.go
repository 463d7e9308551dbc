package coordinator

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
)

// Unknown dataflows. A daemon may report nodes of a dataflow that neither
// this coordinator (c.flows) nor its store knows: the coordinator was
// restarted with a memory store, or its store lost the record. Nobody's
// intent keeps such nodes running, and no command can reach them (stop,
// logs and restart resolve through the store), so after a grace window
// the coordinator stops them, saying why on both sides (Stop.Reason).
// A dataflow the store knows is never stopped this way, and a dataflow
// this coordinator is starting is in c.flows from before its first
// spawn, so a start can never be mistaken for an unknown dataflow.

// DefaultUnknownGrace is Config.UnknownGrace's default.
const DefaultUnknownGrace = time.Minute

// noteUnknown records that daemon s runs dataflow id, unknown to the
// store, and says so once.
func (c *Coordinator) noteUnknown(s *daemonSession, id string) {
	c.mu.Lock()
	if c.flows[id] != nil || c.daemons[s.id] != s {
		c.mu.Unlock()
		return
	}
	_, seen := s.unknownSince[id]
	if !seen {
		if s.unknownSince == nil {
			s.unknownSince = map[string]time.Time{}
		}
		s.unknownSince[id] = c.clock.Now()
	}
	c.mu.Unlock()
	if seen {
		return
	}
	if c.cfg.UnknownGrace < 0 {
		c.log.Warn("daemon runs a dataflow this coordinator has no record of; leaving it alone", "daemon", s.name(), "dataflow", id)
		return
	}
	c.log.Warn(fmt.Sprintf("daemon runs a dataflow this coordinator has no record of; stopping it in %v unless it becomes known", c.cfg.UnknownGrace),
		"daemon", s.name(), "dataflow", id)
}

// stopUnknown stops, on daemon s, the unknown dataflows it has run for
// Config.UnknownGrace, after checking the store once more. A stop that
// fails is tried again a grace window later.
func (c *Coordinator) stopUnknown(s *daemonSession, now time.Time) {
	if c.cfg.UnknownGrace < 0 {
		return
	}
	var due []string
	c.mu.Lock()
	if c.daemons[s.id] == s && s.report != nil { // before its first report, s says nothing yet
		for id, since := range s.unknownSince {
			if c.flows[id] != nil || !s.reports(id) {
				delete(s.unknownSince, id)
				continue
			}
			if now.Sub(since) >= c.cfg.UnknownGrace {
				due = append(due, id)
			}
		}
	}
	c.mu.Unlock()
	sort.Strings(due)
	for _, id := range due {
		if _, err := c.store.Dataflow(id); !errors.Is(err, store.ErrNotFound) {
			// Known after all (or the store fails): never stop it here.
			c.mu.Lock()
			delete(s.unknownSince, id)
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		since, ok := s.unknownSince[id]
		if ok {
			s.unknownSince[id] = now // next attempt, if this one fails, a grace later
		}
		c.mu.Unlock()
		if !ok {
			continue
		}
		reason := fmt.Sprintf("no coordinator has a record of dataflow %s (it ran unknown for %v; was the coordinator restarted with --store memory?)", id, now.Sub(since).Round(time.Second))
		unknownFor := now.Sub(since).Round(time.Second)
		c.stopOnDaemon(s, proto.Stop{DataflowID: id, Reason: reason}, func() {
			c.log.Warn("stopping a dataflow this coordinator has no record of", "daemon", s.name(), "dataflow", id, "unknown_for", unknownFor)
		}, func(rep proto.StopReply) {
			c.mu.Lock()
			unmarkReportedLocked(s, id) // its nodes are gone, whether or not a report says so
			delete(s.unknownSince, id)
			c.mu.Unlock()
			c.log.Info("stopped a dataflow this coordinator had no record of", "daemon", s.name(), "dataflow", id, "status", rep.Status)
		})
	}
}
