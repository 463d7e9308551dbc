package zenoh

import "testing"

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		ep, addr string
		ok       bool
	}{
		{"tcp/127.0.0.1:7447", "127.0.0.1:7447", true},
		{"tcp/[::1]:7447", "[::1]:7447", true},
		{"tcp/localhost:0", "localhost:0", true},
		{"tcp/10.0.0.2:7447?iface=eth0", "", false},
		{"tcp/10.0.0.2:7447#retry=1", "", false},
		{"udp/10.0.0.2:7447", "", false},
		{"tls/10.0.0.2:7447", "", false},
		{"10.0.0.2:7447", "", false},
		{"tcp/10.0.0.2", "", false},
		{"tcp/10.0.0.2:", "", false},
	} {
		addr, err := parseEndpoint(tc.ep)
		if (err == nil) != tc.ok || addr != tc.addr {
			t.Errorf("parseEndpoint(%q) = %q, %v; want %q ok=%v", tc.ep, addr, err, tc.addr, tc.ok)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"tcp/127.0.0.1:7447", "tcp/[::1]:0", "udp/x:1", "tcp/a:b:c", "tcp/[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ep string) {
		addr, err := parseEndpoint(ep)
		if err != nil {
			return
		}
		// what we accept round-trips through the locator form
		again, err := parseEndpoint("tcp/" + addr)
		if err != nil || again != addr {
			t.Fatalf("%q -> %q -> %q, %v", ep, addr, again, err)
		}
	})
}
