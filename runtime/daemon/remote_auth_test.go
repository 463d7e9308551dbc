package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh"
)

func TestDataPlaneCredentials(t *testing.T) {
	if c := DataPlaneCredentials(""); c != nil {
		t.Fatalf("no token gave credentials %v", c)
	}
	c := DataPlaneCredentials("0123456789abcdef")
	// hex HMAC-SHA256(key token, "adora zenoh data plane v1"), computed
	// independently (Python hmac).
	const want = "13f647d033a373c0f165dc3fe9e489da03be1f64ef5a56b99c240678e982fdef"
	if c.User != "adora" || c.Password != want || len(c.Accept) != 1 || c.Accept["adora"] != want {
		t.Fatalf("credentials user %q, accept %d pairs; password as expected: %v", c.User, len(c.Accept), c.Password == want)
	}
	if DataPlaneCredentials("another token").Password == want {
		t.Fatal("two tokens gave one password")
	}
	if strings.Contains(c.Password, "0123456789abcdef") {
		t.Fatal("the password carries the token")
	}
}

type recordingSetter struct{ got []*zenoh.Credentials }

func (r *recordingSetter) SetCredentials(c *zenoh.Credentials) error {
	r.got = append(r.got, c)
	return nil
}

func TestFollowToken(t *testing.T) {
	toks := []string{"", "tok-a", "tok-a", "tok-b", ""}
	var r recordingSetter
	var logs strings.Builder
	i := 0
	src := FollowToken(func() (string, error) {
		if i == len(toks) {
			return "", errors.New("token file unreadable")
		}
		i++
		return toks[i-1], nil
	}, &r, "", slog.New(slog.NewTextHandler(&logs, nil)))
	for range toks {
		src()
	}
	if _, err := src(); err == nil {
		t.Fatal("the source's error was lost")
	}
	// Set on each change: tok-a, tok-b, none; not for the first "", which
	// is the current token, nor again for the same token, nor after the
	// error.
	if len(r.got) != 3 || r.got[0].Password != DataPlaneCredentials("tok-a").Password ||
		r.got[1].Password != DataPlaneCredentials("tok-b").Password || r.got[2] != nil {
		t.Fatalf("credentials set %d times: %v", len(r.got), r.got)
	}
	if n := strings.Count(logs.String(), "data plane authenticated"); n != 2 || strings.Count(logs.String(), "token is gone") != 1 {
		t.Errorf("log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "tok-") || strings.Contains(logs.String(), DataPlaneCredentials("tok-a").Password) {
		t.Errorf("a secret is in the log:\n%s", logs.String())
	}
}

// openAuthSession opens a Zenoh session as a daemon with token would
// (token "": none).
func openAuthSession(t *testing.T, token string, cfg zenoh.Config) *zenoh.Session {
	t.Helper()
	cfg.Credentials = DataPlaneCredentials(token)
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 100*time.Millisecond
	s, err := zenoh.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two daemons with the coordinator's token exchange a dataflow's data; a
// foreign Zenoh peer that dials a daemon without credentials, or with
// those of another token, can neither subscribe to the dataflow's outputs
// nor publish into them.
func TestDataPlaneRefusesForeignPeers(t *testing.T) {
	const token = "coordinator-token"
	sa := openAuthSession(t, token, zenoh.Config{Listen: []string{"tcp/127.0.0.1:0"}})
	sb := openAuthSession(t, token, zenoh.Config{Connect: sa.ListenEndpoints()})
	df := twoMachineFlow()
	a, b := newBridge(sa, "dfa", discard()), newBridge(sb, "dfa", discard())
	toA, toB := &fakeDeliverer{}, &fakeDeliverer{}
	if err := a.start(toA, df, []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := b.start(toB, df, []string{"inference"}); err != nil {
		t.Fatal(err)
	}
	defer b.close()

	type foreign struct {
		name string
		s    *zenoh.Session
		got  chan transport.Sample
	}
	var foreigners []foreign
	for _, f := range []struct{ name, token string }{{"no credentials", ""}, {"another token", "other-token"}} {
		s := openAuthSession(t, f.token, zenoh.Config{Connect: sa.ListenEndpoints()})
		got := make(chan transport.Sample, 64)
		if _, err := s.Subscribe(zenoh.DataflowOutputs(Network, "dfa"), func(smp transport.Sample) {
			if string(smp.Payload) == "forged" {
				return // its own publication, delivered locally
			}
			select {
			case got <- smp:
			default:
			}
		}); err != nil {
			t.Fatal(err)
		}
		foreigners = append(foreigners, foreign{f.name, s, got})
	}

	// The daemons' own traffic flows.
	deadline := time.Now().Add(15 * time.Second)
	for {
		a.Publish("camera", "frames", []byte("meta"), []byte("frame"))
		if data, _ := toB.snapshot(); len(data) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing crossed the authenticated link")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for sa.Stats().AuthRefused < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("AuthRefused = %d, want both foreigners refused", sa.Stats().AuthRefused)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The foreigners try to inject the output actuator reads on A.
	forged := OutputKey("dfa", "inference", "predictions")
	for i := 0; i < 20; i++ {
		a.Publish("camera", "frames", []byte("meta"), []byte("frame"))
		for _, f := range foreigners {
			f.s.Publish(context.Background(), forged, []byte("forged"), appendAttachment(nil, uint64(i+1), []byte("m")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, f := range foreigners {
		if n := len(f.s.Peers()); n != 0 {
			t.Errorf("%s: %d links open", f.name, n)
		}
		if len(f.got) != 0 {
			t.Errorf("%s: received %d samples of the dataflow", f.name, len(f.got))
		}
	}
	if data, _ := toA.snapshot(); len(data) != 0 {
		t.Errorf("A delivered %q from a foreign peer", data)
	}
	if len(sa.Peers()) != 1 {
		t.Errorf("A has %d links, want B only", len(sa.Peers()))
	}
}
