package shm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/adora-rs/adora/transport"
)

// Session is a connection to a Hub and implements transport.Transport.
//
// Payloads of at least the threshold are copied once into a memfd region of
// the session's pool and travel by reference; subscribers' handlers get a
// read-only view of the publisher's memory (zero copy), valid until the
// handler returns, after which the session releases it. Handlers of one
// session run on its reader goroutine, one at a time, in arrival order; a
// handler must not close its own subscription.
type Session struct {
	c         *Conn
	threshold int

	mu      sync.Mutex
	closed  bool
	subs    map[uint32]*subscription
	nextSub uint32

	pmu     sync.Mutex
	pcond   *sync.Cond
	pool    map[uint32]*Region
	free    []uint32
	nextReg uint32

	maps map[uint32][]byte // regions received (reader goroutine only)
	done chan struct{}
}

var _ transport.Transport = (*Session)(nil)

// ErrClosed is returned by a closed Session.
var ErrClosed = errors.New("shm session closed")

// DialSession connects to the hub at path. threshold 0 means
// DefaultThreshold.
func DialSession(path string, threshold int) (*Session, error) {
	c, err := Dial(path)
	if err != nil {
		return nil, fmt.Errorf("shm: connect to hub %s: %w", path, err)
	}
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	s := &Session{c: c, threshold: threshold, subs: map[uint32]*subscription{}, pool: map[uint32]*Region{},
		maps: map[uint32][]byte{}, done: make(chan struct{})}
	s.pcond = sync.NewCond(&s.pmu)
	go s.read()
	return s, nil
}

type subscription struct {
	s     *Session
	id    uint32
	expr  string
	h     transport.Handler
	ready chan struct{}
	mu    sync.Mutex // held while the handler runs
	dead  bool
}

// Subscribe declares interest in keyExpr. It returns once the hub has the
// subscription, so samples published afterwards reach h.
func (s *Session) Subscribe(keyExpr string, h transport.Handler) (transport.Subscription, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.nextSub++
	sub := &subscription{s: s, id: s.nextSub, expr: keyExpr, h: h, ready: make(chan struct{})}
	s.subs[sub.id] = sub
	s.mu.Unlock()
	if err := s.c.WriteMsg(&Msg{Type: MsgSubscribe, Count: sub.id, ID: keyExpr}, nil); err != nil {
		return nil, fmt.Errorf("shm: subscribe %s: %w", keyExpr, err)
	}
	select {
	case <-sub.ready:
		return sub, nil
	case <-s.done:
		return nil, ErrClosed
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("shm: subscribe %s: hub did not answer", keyExpr)
	}
}

// Close stops delivery and waits for a running handler call.
func (sub *subscription) Close() error {
	s := sub.s
	s.mu.Lock()
	delete(s.subs, sub.id)
	closed := s.closed
	s.mu.Unlock()
	sub.mu.Lock()
	sub.dead = true
	sub.mu.Unlock()
	if closed {
		return nil
	}
	return s.c.WriteMsg(&Msg{Type: MsgUnsubscribe, Count: sub.id}, nil)
}

// Publish sends a sample on key.
func (s *Session) Publish(ctx context.Context, key string, payload, attachment []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	m := &Msg{Type: MsgOutput, ID: key, Meta: Meta{Params: attachment}, Data: payload}
	if len(payload) >= s.threshold {
		id, r, err := s.region(len(payload))
		if err != nil {
			return fmt.Errorf("shm: publish %s: %w", key, err)
		}
		copy(r.Data, payload)
		m.Data, m.Shm = nil, &ShmRef{Region: id, Len: uint64(len(payload))}
	}
	if err := s.c.WriteMsg(m, nil); err != nil {
		return fmt.Errorf("shm: publish %s: %w", key, err)
	}
	return nil
}

// maxSessionRegions caps a session's regions; at the cap Publish waits
// for a subscriber to release one.
const maxSessionRegions = 256

// region takes a free pool region of at least n bytes (or creates one) and
// announces it to the hub the first time.
func (s *Session) region(n int) (uint32, *Region, error) {
	s.pmu.Lock()
	for {
		for i, id := range s.free {
			if r := s.pool[id]; r.Size() >= n {
				s.free = append(s.free[:i], s.free[i+1:]...)
				s.pmu.Unlock()
				return id, r, nil
			}
		}
		if len(s.pool) < maxSessionRegions {
			break
		}
		if len(s.free) > 0 { // free but too small: make room
			id := s.free[0]
			s.free = s.free[1:]
			s.pool[id].Close()
			delete(s.pool, id)
			s.c.WriteMsg(&Msg{Type: MsgRegionClosed, Region: id}, nil)
			continue
		}
		if s.isClosed() {
			s.pmu.Unlock()
			return 0, nil, ErrClosed
		}
		s.pcond.Wait()
	}
	s.pmu.Unlock()
	r, err := NewRegion("adora-shm", n)
	if err != nil {
		return 0, nil, err
	}
	s.pmu.Lock()
	s.nextReg++
	id := s.nextReg
	s.pool[id] = r
	s.pmu.Unlock()
	if err := s.c.WriteMsg(&Msg{Type: MsgRegion, Region: id, Size: uint64(r.Size())}, r.File()); err != nil {
		return 0, nil, err
	}
	return id, r, nil
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Session) read() {
	defer func() {
		close(s.done)
		s.pmu.Lock()
		s.pcond.Broadcast() // wake publishers waiting for a region
		s.pmu.Unlock()
	}()
	for {
		m, err := s.c.ReadMsg()
		if err != nil {
			return
		}
		switch m.Type {
		case MsgAck:
			s.mu.Lock()
			if sub := s.subs[m.Count]; sub != nil {
				close(sub.ready)
			}
			s.mu.Unlock()
		case MsgRegion:
			f, err := s.c.TakeFile()
			if err != nil {
				return
			}
			data, err := MapRegion(f, m.Size)
			f.Close()
			if err != nil {
				return
			}
			s.maps[m.Region] = data
		case MsgRegionClosed:
			Unmap(s.maps[m.Region])
			delete(s.maps, m.Region)
		case MsgDropped:
			s.pmu.Lock()
			s.free = append(s.free, m.Regions...)
			s.pcond.Broadcast()
			s.pmu.Unlock()
		case MsgInput:
			s.deliver(m)
		}
	}
}

func (s *Session) deliver(m *Msg) {
	sample := transport.Sample{Key: m.ID, Payload: m.Data, Attachment: m.Meta.Params}
	if m.Shm != nil {
		data := s.maps[m.Shm.Region]
		end := m.Shm.Offset + m.Shm.Len
		if end <= uint64(len(data)) && end >= m.Shm.Offset {
			sample.Payload = data[m.Shm.Offset:end:end]
		}
	}
	s.mu.Lock()
	var subs []*subscription
	for _, sub := range s.subs {
		if Matches(sub.expr, m.ID) {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.mu.Lock()
		if !sub.dead {
			sub.h(sample)
		}
		sub.mu.Unlock()
	}
	if m.Shm != nil {
		s.c.WriteMsg(&Msg{Type: MsgRelease, Tokens: []uint64{m.Token}}, nil)
	}
}

// Close disconnects from the hub and frees the session's memory.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.c.Close()
	<-s.done
	for id, data := range s.maps {
		Unmap(data)
		delete(s.maps, id)
	}
	s.pmu.Lock()
	for id, r := range s.pool {
		r.Close()
		delete(s.pool, id)
	}
	s.pmu.Unlock()
	return err
}
