// Package transport defines how adora moves samples between processes and
// machines. Implementations: transport/shm (one machine, shared memory) and
// transport/zenoh (across machines, the Zenoh 1.0 wire protocol). Every
// implementation runs the conformance suite in transport/transporttest.
//
// Note for implementers (kept by the data-plane owner): the suite is
// transporttest.Run(t, factory), where factory returns two connected
// sessions. It checks payload and attachment delivery, order per publisher,
// '*' and '**' matching, payloads up to 4 MiB, fan-out, local delivery,
// Subscription.Close waiting for a running handler, one handler call at a
// time, and errors after Close. Subscriptions may take effect
// asynchronously: the suite probes before it measures. The interface below
// is unchanged; any change will be additive and announced here.
package transport

import "context"

// Sample is one published message: the key it was published on, its
// payload and an optional attachment (adora puts message metadata there).
//
// A Sample handed to a Handler is valid only until the handler returns
// unless the implementation documents otherwise; copy what you keep.
type Sample struct {
	Key        string
	Payload    []byte
	Attachment []byte
}

// Handler receives samples. Implementations call a subscription's handler
// from one goroutine at a time, in publication order per publisher.
type Handler func(Sample)

// Publisher sends samples on a key.
type Publisher interface {
	Publish(ctx context.Context, key string, payload, attachment []byte) error
}

// Subscriber registers interest in a key expression (Zenoh syntax: '*'
// matches one chunk, '**' any number of chunks).
type Subscriber interface {
	Subscribe(keyExpr string, h Handler) (Subscription, error)
}

// Subscription is an active subscription; Close stops delivery and waits
// until no handler call is in flight.
type Subscription interface {
	Close() error
}

// Transport is a session that both publishes and subscribes.
type Transport interface {
	Publisher
	Subscriber
	Close() error
}
