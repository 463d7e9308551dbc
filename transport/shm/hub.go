package shm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
)

// Hub is the broker of the shared-memory pub/sub transport on one machine:
// sessions (Dial) connect to its unix socket, declare subscriptions and
// publish; the hub forwards every sample to the sessions with a matching
// subscription. Payloads in shared memory are forwarded as region
// references (the memfd is passed once per receiving session), never
// copied; the publisher gets a region back (DROPPED) when every receiver
// released it, and a session that disconnects releases everything it held.
// A subscriber that falls 65536 frames behind loses samples (logged) rather
// than growing the hub's memory.
//
// The daemon's node data plane (runtime/dataplane) uses the same frames and
// regions with dataflow-specific routing; Hub serves generic keyed pub/sub
// (transport.Transport) on one machine.
type Hub struct {
	ln  *net.UnixListener
	log *slog.Logger

	mu      sync.Mutex
	closed  bool
	clients map[*hubClient]bool
	samples map[uint64]*hubSample
	nextReg uint32
	nextTok uint64

	wg sync.WaitGroup
}

type hubClient struct {
	c       *Conn
	subs    map[uint32]string
	owned   map[uint32]*hubRegion
	mapped  map[uint32]bool
	held    map[uint64]int
	out     []outFrame
	wake    chan struct{}
	gone    bool
	dropped uint64
}

// maxHubQueue bounds the frames waiting for one session's socket.
const maxHubQueue = 1 << 16

type outFrame struct {
	m *Msg
	f *os.File
}

type hubRegion struct {
	id, localID uint32
	owner       *hubClient
	file        *os.File
	size        uint64
	live        int
	ownerGone   bool
	retire      bool
	sentTo      map[*hubClient]bool
}

type hubSample struct {
	token     uint64
	reg       *hubRegion
	off, size uint64
	refs      int
}

// NewHub listens on a unix socket at path.
func NewHub(path string, log *slog.Logger) (*Hub, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("shm hub: listen: %w", err)
	}
	h := &Hub{ln: ln, log: log, clients: map[*hubClient]bool{}, samples: map[uint64]*hubSample{}}
	h.wg.Add(1)
	go h.accept()
	return h, nil
}

// Close disconnects every session and removes the socket.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	var cs []*hubClient
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	err := h.ln.Close()
	for _, c := range cs {
		c.c.Close()
	}
	h.wg.Wait()
	return err
}

// Samples reports live shared-memory samples, for leak checks.
func (h *Hub) Samples() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.samples)
}

func (h *Hub) accept() {
	defer h.wg.Done()
	for {
		uc, err := h.ln.AcceptUnix()
		if err != nil {
			return
		}
		c := &hubClient{c: NewConn(uc), subs: map[uint32]string{}, owned: map[uint32]*hubRegion{},
			mapped: map[uint32]bool{}, held: map[uint64]int{}, wake: make(chan struct{}, 1)}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			c.c.Close()
			return
		}
		h.clients[c] = true
		h.mu.Unlock()
		h.wg.Add(2)
		go h.read(c)
		go h.write(c)
	}
}

func (h *Hub) read(c *hubClient) {
	defer h.wg.Done()
	err := h.readLoop(c)
	h.mu.Lock()
	c.gone = true
	delete(h.clients, c)
	for tok, n := range c.held {
		if s := h.samples[tok]; s != nil {
			for range n {
				h.unrefLocked(s)
			}
		}
	}
	for _, g := range c.owned {
		g.ownerGone = true
		if g.live == 0 {
			h.retireLocked(g)
		}
	}
	h.mu.Unlock()
	c.kick()
	c.c.Close()
	if !errors.Is(err, net.ErrClosed) {
		h.log.Debug("shm hub: session ended", "err", err)
	}
}

func (c *hubClient) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *hubClient) sendLocked(m *Msg, f *os.File) {
	c.out = append(c.out, outFrame{m, f})
	c.kick()
}

func (h *Hub) write(c *hubClient) {
	defer h.wg.Done()
	var buf []byte
	for range c.wake {
		h.mu.Lock()
		out, gone := c.out, c.gone
		c.out = nil
		h.mu.Unlock()
		if gone {
			return
		}
		for _, o := range out {
			if o.f != nil {
				if len(buf) > 0 {
					c.c.WriteFrames(buf)
					buf = buf[:0]
				}
				c.c.WriteMsg(o.m, o.f)
				continue
			}
			buf = AppendFrame(buf, o.m)
		}
		if len(buf) > 0 {
			c.c.WriteFrames(buf)
			buf = buf[:0]
		}
	}
}

func (h *Hub) readLoop(c *hubClient) error {
	for {
		m, err := c.c.ReadMsg()
		if err != nil {
			return err
		}
		switch m.Type {
		case MsgSubscribe:
			h.mu.Lock()
			c.subs[m.Count] = m.ID
			c.sendLocked(&Msg{Type: MsgAck, Count: m.Count}, nil)
			h.mu.Unlock()
		case MsgUnsubscribe:
			h.mu.Lock()
			delete(c.subs, m.Count)
			h.mu.Unlock()
		case MsgRegion:
			f, err := c.c.TakeFile()
			if err != nil {
				return err
			}
			if err := CheckRegionFile(f, m.Size); err != nil {
				f.Close()
				return err
			}
			h.mu.Lock()
			h.nextReg++
			c.owned[m.Region] = &hubRegion{id: h.nextReg, localID: m.Region, owner: c, file: f, size: m.Size, sentTo: map[*hubClient]bool{}}
			h.mu.Unlock()
		case MsgRegionClosed:
			h.mu.Lock()
			if g := c.owned[m.Region]; g != nil {
				g.retire = true
				if g.live == 0 {
					h.retireLocked(g)
				}
			}
			h.mu.Unlock()
		case MsgRelease:
			h.mu.Lock()
			for _, t := range m.Tokens {
				if c.held[t] == 0 {
					continue
				}
				if c.held[t]--; c.held[t] == 0 {
					delete(c.held, t)
				}
				if s := h.samples[t]; s != nil {
					h.unrefLocked(s)
				}
			}
			h.mu.Unlock()
		case MsgOutput:
			if err := h.publish(c, m); err != nil {
				return err
			}
		default:
			return fmt.Errorf("shm hub: unexpected frame %s", m.Type)
		}
	}
}

func (h *Hub) publish(from *hubClient, m *Msg) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s *hubSample
	if m.Shm != nil {
		g := from.owned[m.Shm.Region]
		if g == nil || m.Shm.Offset+m.Shm.Len > g.size || m.Shm.Offset+m.Shm.Len < m.Shm.Offset {
			return fmt.Errorf("shm hub: sample references unknown region %d", m.Shm.Region)
		}
		h.nextTok++
		s = &hubSample{token: h.nextTok, reg: g, off: m.Shm.Offset, size: m.Shm.Len, refs: 1}
		g.live++
		h.samples[s.token] = s
	}
	for c := range h.clients {
		if !c.matchesLocked(m.ID) {
			continue
		}
		if len(c.out) >= maxHubQueue {
			c.dropped++ // a subscriber this far behind loses samples rather than the hub its memory
			if c.dropped == 1 || c.dropped%10000 == 0 {
				h.log.Warn("shm hub: subscriber too slow, dropping samples", "dropped", c.dropped)
			}
			continue
		}
		in := &Msg{Type: MsgInput, ID: m.ID, Meta: m.Meta, Data: m.Data}
		if s != nil {
			if !c.mapped[s.reg.id] {
				c.mapped[s.reg.id] = true
				s.reg.sentTo[c] = true
				c.sendLocked(&Msg{Type: MsgRegion, Region: s.reg.id, Size: s.reg.size}, s.reg.file)
			}
			in.Data = nil
			in.Shm = &ShmRef{Region: s.reg.id, Offset: s.off, Len: s.size}
			in.Token = s.token
			s.refs++
			c.held[s.token]++
		}
		c.sendLocked(in, nil)
	}
	if s != nil {
		h.unrefLocked(s)
	}
	return nil
}

func (c *hubClient) matchesLocked(key string) bool {
	for _, expr := range c.subs {
		if Matches(expr, key) {
			return true
		}
	}
	return false
}

func (h *Hub) unrefLocked(s *hubSample) {
	if s.refs--; s.refs > 0 {
		return
	}
	delete(h.samples, s.token)
	g := s.reg
	if g.live--; g.live > 0 {
		return
	}
	if g.ownerGone || g.retire {
		h.retireLocked(g)
		return
	}
	g.owner.sendLocked(&Msg{Type: MsgDropped, Regions: []uint32{g.localID}}, nil)
}

func (h *Hub) retireLocked(g *hubRegion) {
	delete(g.owner.owned, g.localID)
	for c := range g.sentTo {
		if !c.gone {
			delete(c.mapped, g.id)
			c.sendLocked(&Msg{Type: MsgRegionClosed, Region: g.id}, nil)
		}
	}
	g.sentTo = nil
	if g.file != nil {
		g.file.Close()
		g.file = nil
	}
}
