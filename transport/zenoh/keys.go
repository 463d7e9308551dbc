package zenoh

import (
	"fmt"
	"strings"

	"github.com/adora-rs/adora/transport/zenoh/keyexpr"
)

// KeyPrefix is the first chunk of every key adora publishes.
const KeyPrefix = "adora"

// OutputKey returns the key a daemon publishes a node output on:
//
//	adora/<network>/<dataflow>/output/<node>/<output>
//
// network, dataflow and node are single chunks; output may hold '/'
// (output ids may), which adds chunks. No part may be empty, hold a
// wildcard or start with '@'.
func OutputKey(network, dataflow, node, output string) (string, error) {
	for _, p := range []struct{ what, v string }{{"network", network}, {"dataflow", dataflow}, {"node", node}} {
		if p.v == "" || strings.ContainsAny(p.v, "/*$#?") || p.v[0] == '@' {
			return "", fmt.Errorf("zenoh output key: %s %q must be one plain key chunk", p.what, p.v)
		}
	}
	if output == "" || strings.ContainsAny(output, "*$#?@") {
		return "", fmt.Errorf("zenoh output key: output %q must be plain key chunks", output)
	}
	k := strings.Join([]string{KeyPrefix, network, dataflow, "output", node, output}, "/")
	if err := keyexpr.Check(k); err != nil {
		return "", fmt.Errorf("zenoh output key: %w", err)
	}
	return k, nil
}

// DataflowOutputs is the expression matching every output key of one
// dataflow, for a daemon (or a debugging tool) that wants all of them.
func DataflowOutputs(network, dataflow string) string {
	return strings.Join([]string{KeyPrefix, network, dataflow, "output", "**"}, "/")
}

// ParseOutputKey splits a key made by OutputKey; ok is false for any
// other key.
func ParseOutputKey(key string) (network, dataflow, node, output string, ok bool) {
	parts := strings.SplitN(key, "/", 6)
	if len(parts) != 6 || parts[0] != KeyPrefix || parts[3] != "output" {
		return "", "", "", "", false
	}
	for _, p := range parts {
		if p == "" {
			return "", "", "", "", false
		}
	}
	return parts[1], parts[2], parts[4], parts[5], true
}
