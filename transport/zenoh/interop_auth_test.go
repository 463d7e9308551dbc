//go:build interop

package zenoh

// Interop tests of usrpwd authentication against eclipse-zenoh, in both
// roles (see interop_test.go for the Python helper).

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/internal/testutil"
)

// A Python peer or router whose dictionary holds our user accepts our
// dialer with the right password, and refuses a wrong password, an
// unknown user and a dialer without credentials.
func TestInteropUsrPwdGoDialsPython(t *testing.T) {
	requirePythonZenoh(t)
	for _, mode := range []string{"peer", "router"} {
		t.Run(mode, func(t *testing.T) {
			ep := freePort(t)
			py := startPy(t, map[string]any{"mode": mode, "listen": []string{ep}, "action": "sub", "key": "interop/auth/*",
				"usrpwd": map[string]any{"dictionary": map[string]string{"adora": "s3cret-pass", "other": "x"}}})
			goMode := Peer
			if mode == "router" {
				goMode = Client
			}
			for _, tc := range []struct {
				name  string
				creds *Credentials
				ok    bool
			}{
				{"wrong password", &Credentials{User: "adora", Password: "wrong-pass"}, false},
				{"unknown user", &Credentials{User: "mallory", Password: "s3cret-pass"}, false},
				{"no credentials", nil, false},
				{"right credentials", &Credentials{User: "adora", Password: "s3cret-pass"}, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var logs testutil.SyncBuffer
					g := openT(t, Config{Mode: goMode, Connect: []string{ep}, Credentials: tc.creds, Logger: debugLogger(&logs)})
					if !tc.ok {
						waitFor(t, "a refused handshake", func() bool { return strings.Contains(logs.String(), "handshake") })
						time.Sleep(300 * time.Millisecond)
						if n := len(g.Peers()); n != 0 {
							t.Fatalf("%d links open, want none", n)
						}
						if tc.creds != nil && !strings.Contains(logs.String(), "refused our credentials") {
							t.Errorf("log does not say the credentials were refused:\n%s", logs.String())
						}
						return
					}
					waitFor(t, "python subscriber", func() bool { return remoteSubscribed(g, "interop/auth/data") })
					if err := g.Publish(context.Background(), "interop/auth/data", testPayload(1, 64), nil); err != nil {
						t.Fatal(err)
					}
					if s := py.sample(10 * time.Second); s.Key != "interop/auth/data" || s.Sha != sha(testPayload(1, 64)) {
						t.Fatalf("python got %+v", s)
					}
					if strings.Contains(logs.String(), "s3cret-pass") {
						t.Errorf("the password is in the log")
					}
				})
			}
		})
	}
}

// Our dialer with credentials gives up on a Python peer that does not ask
// for them, as a Zenoh dialer does.
func TestInteropUsrPwdPythonWithoutAuth(t *testing.T) {
	requirePythonZenoh(t)
	ep := freePort(t)
	startPy(t, map[string]any{"mode": "peer", "listen": []string{ep}, "action": "sub", "key": "interop/auth/*"})
	var logs testutil.SyncBuffer
	g := openT(t, Config{Connect: []string{ep}, Credentials: &Credentials{User: "adora", Password: "pw"}, Logger: debugLogger(&logs)})
	waitFor(t, "the dialer's verdict", func() bool { return strings.Contains(logs.String(), "does not ask for credentials") })
	time.Sleep(300 * time.Millisecond)
	if n := len(g.Peers()); n != 0 {
		t.Fatalf("%d links open, want none", n)
	}
}

// Our listener with credentials accepts a Python dialer that presents a
// pair it knows, and refuses (counting it) one with a wrong password or
// without credentials.
func TestInteropUsrPwdPythonDialsGo(t *testing.T) {
	requirePythonZenoh(t)
	for _, tc := range []struct {
		name   string
		usrpwd map[string]any
		ok     bool
	}{
		{"right credentials", map[string]any{"user": "robot", "password": "pa55word"}, true},
		{"wrong password", map[string]any{"user": "robot", "password": "guess"}, false},
		{"no credentials", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			g := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Logger: debugLogger(&logs),
				Credentials: &Credentials{Accept: map[string]string{"robot": "pa55word"}}})
			c := newCollector()
			if _, err := g.Subscribe("interop/auth/**", c.handle); err != nil {
				t.Fatal(err)
			}
			spec := map[string]any{"mode": "peer", "connect": g.ListenEndpoints(), "action": "pub", "key": "interop/auth/py",
				"count": 3, "size": 32, "connect_timeout_ms": 0}
			if tc.usrpwd != nil {
				spec["usrpwd"] = tc.usrpwd
			}
			py := startPy(t, spec)
			if !tc.ok {
				waitFor(t, "a refused handshake", func() bool { return g.Stats().AuthRefused > 0 })
				io.WriteString(py.stdin, "go\n")
				if l := py.next(20 * time.Second); l != `"DONE"` {
					t.Fatalf("python: %q", l)
				}
				if n, got := len(g.Peers()), c.samples(); n != 0 || len(got) != 0 {
					t.Fatalf("%d links and %d samples, want none", n, len(got))
				}
				if !strings.Contains(logs.String(), "link refused: no valid credentials") {
					t.Errorf("refusal not logged:\n%s", logs.String())
				}
				if strings.Contains(logs.String(), "guess") || strings.Contains(logs.String(), "pa55word") {
					t.Errorf("a password is in the log:\n%s", logs.String())
				}
				return
			}
			waitFor(t, "python link", func() bool { return len(g.Peers()) == 1 })
			time.Sleep(200 * time.Millisecond)
			io.WriteString(py.stdin, "go\n")
			got := c.waitN(t, 3)
			for i, s := range got {
				if s.Key != "interop/auth/py" || sha(s.Payload) != sha(pyBody(i, 32)) {
					t.Fatalf("sample %d: %q, %d bytes", i, s.Key, len(s.Payload))
				}
			}
			if r := g.Stats().AuthRefused; r != 0 {
				t.Errorf("AuthRefused = %d, want 0", r)
			}
		})
	}
}
