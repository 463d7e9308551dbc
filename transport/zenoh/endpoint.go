package zenoh

import (
	"fmt"
	"net"
	"strings"
)

// parseEndpoint turns a Zenoh locator "tcp/HOST:PORT" (IPv6 hosts in
// brackets: "tcp/[::1]:7447") into a dialable address. Only TCP is
// supported; locator metadata ('?...') and configuration ('#...') are
// refused rather than silently ignored.
func parseEndpoint(ep string) (string, error) {
	proto, addr, ok := strings.Cut(ep, "/")
	if !ok {
		return "", fmt.Errorf("endpoint %q: want tcp/HOST:PORT", ep)
	}
	if proto != "tcp" {
		return "", fmt.Errorf("endpoint %q: protocol %q is not supported, use tcp", ep, proto)
	}
	if strings.ContainsAny(addr, "?#") {
		return "", fmt.Errorf("endpoint %q: locator metadata and configuration are not supported", ep)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", ep, err)
	}
	if port == "" {
		return "", fmt.Errorf("endpoint %q: missing port", ep)
	}
	return net.JoinHostPort(host, port), nil
}

// formatEndpoint renders a TCP address as a Zenoh locator.
func formatEndpoint(a net.Addr) string { return "tcp/" + a.String() }
