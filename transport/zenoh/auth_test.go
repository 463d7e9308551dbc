package zenoh

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/internal/testutil"
	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// debugLogger logs at debug level into buf, a sink safe for the
// session's goroutines.
func debugLogger(buf *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func daemonCreds(pwd string) *Credentials {
	return &Credentials{User: "adora", Password: pwd, Accept: map[string]string{"adora": pwd}}
}

// dialAuth opens a listener with lcreds and a dialer with dcreds, and
// returns both and their logs.
func dialAuth(t *testing.T, lcreds, dcreds *Credentials) (l, d *Session, llog, dlog *testutil.SyncBuffer) {
	t.Helper()
	llog, dlog = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	l = openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Credentials: lcreds, Logger: debugLogger(llog)})
	d = openT(t, Config{Connect: l.ListenEndpoints(), Credentials: dcreds, Logger: debugLogger(dlog),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	return l, d, llog, dlog
}

func TestUsrPwdAcceptsRightCredentials(t *testing.T) {
	l, d, llog, dlog := dialAuth(t, daemonCreds("tok-1"), daemonCreds("tok-1"))
	c := newCollector()
	if _, err := l.Subscribe("auth/**", c.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscriber", func() bool { return remoteSubscribed(d, "auth/x") })
	if err := d.Publish(context.Background(), "auth/x", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if got := c.waitN(t, 1); string(got[0].Payload) != "hello" {
		t.Fatalf("got %q", got[0].Payload)
	}
	if r := l.Stats().AuthRefused; r != 0 {
		t.Errorf("AuthRefused = %d", r)
	}
	for _, lg := range []*testutil.SyncBuffer{llog, dlog} {
		if strings.Contains(lg.String(), "tok-1") {
			t.Errorf("password in log:\n%s", lg)
		}
	}
}

func TestUsrPwdRefusals(t *testing.T) {
	for _, tc := range []struct {
		name           string
		lcreds, dcreds *Credentials
		listenerLog    string // "" when the listener does not refuse
		dialerLog      string
	}{
		{"no credentials", daemonCreds("right"), nil, "no credentials offered in INIT", "a peer that requires credentials"},
		{"wrong password", daemonCreds("right"), daemonCreds("wrong"), "wrong password", "refused our credentials"},
		{"unknown user", daemonCreds("right"), &Credentials{User: "eve", Password: "right"}, "unknown user", "refused our credentials"},
		{"accept only, no dial pair", daemonCreds("right"), &Credentials{Accept: map[string]string{"adora": "right"}}, "no credentials offered in INIT", "a peer that requires credentials"},
		{"listener without auth", nil, daemonCreds("right"), "", "does not ask for credentials"},
		{"empty dictionary", &Credentials{User: "adora", Password: "right"}, daemonCreds("right"), "unknown user", "refused our credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, d, llog, dlog := dialAuth(t, tc.lcreds, tc.dcreds)
			waitFor(t, "the dialer's verdict", func() bool { return strings.Contains(dlog.String(), tc.dialerLog) })
			if tc.listenerLog != "" {
				waitFor(t, "a counted refusal", func() bool { return l.Stats().AuthRefused > 0 })
				if !strings.Contains(llog.String(), tc.listenerLog) || !strings.Contains(llog.String(), "link refused: no valid credentials") {
					t.Errorf("listener log lacks %q:\n%s", tc.listenerLog, llog)
				}
			} else if r := l.Stats().AuthRefused; r != 0 {
				t.Errorf("AuthRefused = %d on a listener without credentials", r)
			}
			time.Sleep(100 * time.Millisecond) // several dial attempts
			if len(l.Peers()) != 0 || len(d.Peers()) != 0 || l.Stats().LinksOpened != 0 {
				t.Fatalf("a link opened: %d/%d", len(l.Peers()), len(d.Peers()))
			}
			for _, s := range []string{"right", "wrong"} {
				if strings.Contains(llog.String()+dlog.String(), "="+s) || strings.Contains(llog.String()+dlog.String(), `"`+s+`"`) {
					t.Errorf("password %q in a log:\n%s\n%s", s, llog, dlog)
				}
			}
			if n := strings.Count(llog.String(), `level=WARN msg="zenoh: link refused`); tc.listenerLog != "" && n != 1 {
				t.Errorf("the listener warned %d times for %d refusals in a burst, want once:\n%s", n, l.Stats().AuthRefused, llog)
			}
			if n := strings.Count(dlog.String(), "link not authenticated"); tc.dcreds != nil && tc.dcreds.User != "" && n != 1 {
				t.Errorf("the dialer warned %d times, want once for repeated identical refusals:\n%s", n, dlog)
			}
		})
	}
}

// Two daemons that dial each other with the same credentials end with one
// authenticated link.
func TestUsrPwdMutualDial(t *testing.T) {
	c := daemonCreds("shared")
	a := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Credentials: c})
	b := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Credentials: c})
	a.Connect(b.ListenEndpoints()[0])
	b.Connect(a.ListenEndpoints()[0])
	waitFor(t, "one link each", func() bool { return len(a.Peers()) == 1 && len(b.Peers()) == 1 })
	if a.Stats().AuthRefused+b.Stats().AuthRefused != 0 {
		t.Fatal("a daemon refused the other")
	}
}

// SetCredentials applies to handshakes that start afterwards; open links
// stay.
func TestUsrPwdSetCredentials(t *testing.T) {
	l := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	old := openT(t, Config{Connect: l.ListenEndpoints()})
	waitFor(t, "first link", func() bool { return len(l.Peers()) == 1 })
	if err := l.SetCredentials(daemonCreds("new")); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, l)
	p.write(wire.AppendInit(nil, &wire.Init{Version: wire.Version, WhatAmI: wire.Peer, ZID: []byte{7, 1}, Resolution: wire.DefaultResolution, BatchSize: wire.DefaultBatchSize}))
	if r := p.closed(); r != wire.CloseGeneric {
		t.Fatalf("CLOSE reason %d, want generic (0)", r)
	}
	good := openT(t, Config{Connect: l.ListenEndpoints(), Credentials: daemonCreds("new")})
	waitFor(t, "authenticated link", func() bool { return len(good.Peers()) == 1 })
	if len(old.Peers()) != 1 || len(l.Peers()) != 2 {
		t.Fatalf("links: old %d, listener %d", len(old.Peers()), len(l.Peers()))
	}
	if err := l.SetCredentials(&Credentials{User: "x"}); err == nil {
		t.Fatal("a user without a password was accepted")
	}
}

// rawAuthHandshake runs INIT/OPEN by hand with the usrpwd answer made by
// answer from the listener's nonce, and returns the CLOSE reason the
// listener sent (-1: it opened).
func rawAuthHandshake(t *testing.T, l *Session, answer func(nonce uint64) []byte) int {
	t.Helper()
	p := dialRaw(t, l)
	p.write(wire.AppendInit(nil, &wire.Init{Version: wire.Version, WhatAmI: wire.Peer, ZID: []byte{9, 1}, Resolution: wire.DefaultResolution,
		BatchSize: wire.DefaultBatchSize, Auth: wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdInitSyn})}))
	ack, ok := p.read().(*wire.Init)
	if !ok || !ack.Ack {
		t.Fatal("want INIT ack")
	}
	nonce, err := challenge(ack.Auth)
	if err != nil {
		t.Fatal(err)
	}
	p.write(wire.AppendOpen(nil, &wire.Open{Lease: time.Second, InitialSN: 1, Cookie: ack.Cookie, Auth: answer(nonce)}))
	b := p.readBatch()
	if b == nil {
		t.Fatal("listener closed without CLOSE")
	}
	switch m := wire.ReadTransportMessage(wire.NewReader(b)).(type) {
	case *wire.Open:
		if !acknowledged(m.Auth) {
			t.Error("OPEN ack does not confirm usrpwd")
		}
		return -1
	case *wire.Close:
		if m.Session {
			t.Error("CLOSE closes the session, want the link only (as eclipse-zenoh)")
		}
		return int(m.Reason)
	default:
		t.Fatalf("got %T", m)
	}
	return 0
}

func TestUsrPwdHandshakeAnswers(t *testing.T) {
	a := &authConfig{user: []byte("adora"), password: []byte("pw")}
	for _, tc := range []struct {
		name   string
		answer func(nonce uint64) []byte
		reason int
	}{
		{"right answer", a.answer, -1},
		{"answer to another nonce (replay)", func(n uint64) []byte { return a.answer(n + 1) }, wire.CloseGeneric},
		{"no auth extension", func(uint64) []byte { return nil }, wire.CloseGeneric},
		{"empty auth extension", func(uint64) []byte { return []byte{} }, wire.CloseGeneric},
		{"garbled usrpwd body", func(uint64) []byte {
			return wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdOpenSyn, Body: []byte{0xff}})
		}, wire.CloseGeneric},
		{"truncated HMAC", func(n uint64) []byte {
			body := wire.AppendUsrPwdOpen(nil, &wire.UsrPwdOpen{User: []byte("adora"), HMAC: usrpwdHMAC(n, []byte("pw"))[:16]})
			return wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdOpenSyn, Body: body})
		}, wire.CloseGeneric},
		{"user with its password as HMAC", func(uint64) []byte {
			body := wire.AppendUsrPwdOpen(nil, &wire.UsrPwdOpen{User: []byte("adora"), HMAC: []byte("pw")})
			return wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdOpenSyn, Body: body})
		}, wire.CloseGeneric},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Credentials: &Credentials{Accept: map[string]string{"adora": "pw"}}})
			if got := rawAuthHandshake(t, l, tc.answer); got != tc.reason {
				t.Fatalf("result %d, want %d (-1: open)", got, tc.reason)
			}
			want := uint64(0)
			if tc.reason >= 0 {
				want = 1
			}
			if r := l.Stats().AuthRefused; r != want {
				t.Errorf("AuthRefused = %d, want %d", r, want)
			}
		})
	}
}

// Known vector: HMAC-SHA3-256 keyed with the nonce's 8 little-endian
// bytes over the password (computed independently with Python's hmac and
// hashlib.sha3_256).
func TestUsrPwdHMACVector(t *testing.T) {
	got := fmt.Sprintf("%x", usrpwdHMAC(0x0102030405060708, []byte("s3cret-pass")))
	if got != usrpwdVector {
		t.Fatalf("HMAC = %s, want %s", got, usrpwdVector)
	}
}

const usrpwdVector = "722a0347096ac5849e03ab3c48374dee7663366700f5efdc6a26ad75cb24a69d"

func TestCredentialsNeverPrinted(t *testing.T) {
	c := &Credentials{User: "adora", Password: "hunter2", Accept: map[string]string{"robot": "letmein"}}
	cfg := Config{Credentials: c}
	var logs testutil.SyncBuffer
	debugLogger(&logs).Info("config", "creds", c, "cfg", cfg)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v %+v %#v", *c, *c, *c), logs.String()} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "letmein") {
			t.Errorf("password printed: %s", s)
		}
	}
	if s := c.String(); !strings.Contains(s, "adora") || !strings.Contains(s, "robot") {
		t.Errorf("String() = %s, want the user names", s)
	}
}

func TestCredentialsValidate(t *testing.T) {
	for _, tc := range []struct {
		c  *Credentials
		ok bool
	}{
		{&Credentials{User: "u", Password: "p"}, true},
		{&Credentials{Accept: map[string]string{"u": "p"}}, true},
		{&Credentials{}, true}, // requires credentials, accepts none
		{&Credentials{User: "u"}, false},
		{&Credentials{Password: "p"}, false},
		{&Credentials{Accept: map[string]string{"": "p"}}, false},
		{&Credentials{Accept: map[string]string{"u": ""}}, false},
	} {
		s, err := Open(context.Background(), Config{Credentials: tc.c})
		if s != nil {
			s.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%v: err = %v, want ok %v", tc.c, err, tc.ok)
		}
	}
}

func TestRefusalLimiter(t *testing.T) {
	var r refusalLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at      time.Duration
		ok      bool
		skipped int
	}{
		{0, true, 0}, {time.Second, false, 0}, {9 * time.Second, false, 0},
		{10 * time.Second, true, 2}, {11 * time.Second, false, 0}, {30 * time.Second, true, 1},
	}
	for _, st := range steps {
		skipped, ok := r.allow(t0.Add(st.at))
		if ok != st.ok || skipped != st.skipped {
			t.Fatalf("at %v: allow = %d, %v; want %d, %v", st.at, skipped, ok, st.skipped, st.ok)
		}
	}
}
