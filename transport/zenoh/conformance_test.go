package zenoh

import (
	"testing"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/transporttest"
)

// Two peers over loopback pass the transport conformance suite.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		a := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
		b := openT(t, Config{Connect: a.ListenEndpoints()})
		waitFor(t, "link", func() bool { return len(a.Peers()) == 1 && len(b.Peers()) == 1 })
		return a, b
	})
}
