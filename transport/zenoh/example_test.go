package zenoh_test

import (
	"context"
	"fmt"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh"
)

// Two sessions on one machine: one listens, the other connects,
// subscribes with a wildcard and receives a publication.
func Example() {
	ctx := context.Background()
	a, err := zenoh.Open(ctx, zenoh.Config{Listen: []string{"tcp/127.0.0.1:0"}})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := zenoh.Open(ctx, zenoh.Config{Connect: a.ListenEndpoints()})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	got := make(chan transport.Sample, 1)
	sub, err := b.Subscribe("adora/default/df/output/camera/*", func(s transport.Sample) {
		got <- transport.Sample{Key: s.Key, Payload: append([]byte(nil), s.Payload...)}
	})
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	key := "adora/default/df/output/camera/image"
	for !a.Matching(key) { // b's subscription reaches a asynchronously
		time.Sleep(time.Millisecond)
	}
	if err := a.Publish(ctx, key, []byte("frame 1"), nil); err != nil {
		panic(err)
	}
	s := <-got
	fmt.Printf("%s: %s\n", s.Key, s.Payload)
	// Output: adora/default/df/output/camera/image: frame 1
}

// Two sessions that share credentials link; a third without them is
// refused by the listener, which counts it.
func ExampleCredentials() {
	ctx := context.Background()
	creds := &zenoh.Credentials{User: "adora", Password: "derived-secret", Accept: map[string]string{"adora": "derived-secret"}}
	a, err := zenoh.Open(ctx, zenoh.Config{Listen: []string{"tcp/127.0.0.1:0"}, Credentials: creds})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := zenoh.Open(ctx, zenoh.Config{Connect: a.ListenEndpoints(), Credentials: creds})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	stranger, err := zenoh.Open(ctx, zenoh.Config{Connect: a.ListenEndpoints()})
	if err != nil {
		panic(err)
	}
	defer stranger.Close()

	for len(b.Peers()) == 0 || a.Stats().AuthRefused == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("links:", len(a.Peers()), "stranger links:", len(stranger.Peers()))
	fmt.Println(creds) // the password is never printed
	// Output:
	// links: 1 stranger links: 0
	// usrpwd(user "adora", password set, accepting ["adora"])
}
