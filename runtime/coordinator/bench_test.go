package coordinator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/proto"
)

// BenchmarkStartStop starts and stops a 500-node dataflow spread by
// machine id over 50 in-process daemons.
func BenchmarkStartStop(b *testing.B) {
	srv := coordtest.Start(b, coordinator.Config{TickInterval: time.Hour})
	ctx := context.Background()
	const daemons, nodes = 50, 500
	for i := 0; i < daemons; i++ {
		d, err := coordtest.StartDaemon(ctx, srv.Endpoint, coordtest.DaemonConfig{UUID: fmt.Sprintf("u-%02d", i), MachineID: fmt.Sprintf("m-%02d", i)})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
	}
	var df config.Dataflow
	for i := 0; i < nodes; i++ {
		df.Nodes = append(df.Nodes, config.Node{ID: fmt.Sprintf("n-%03d", i), Path: "/bin/true", Deploy: config.Deploy{Machine: fmt.Sprintf("m-%02d", i%daemons)}})
	}
	c, err := client.Dial(ctx, client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := c.Start(ctx, proto.Start{Name: "bench", Descriptor: []byte("x"), Dataflow: df})
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Placements) != nodes {
			b.Fatalf("%d placements", len(rep.Placements))
		}
		if _, err := c.Stop(ctx, "bench", 0, false); err != nil {
			b.Fatal(err)
		}
	}
}
