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
