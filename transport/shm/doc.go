// Package shm is adora's shared-memory transport on one machine.
//
// It owns the pieces both ends of the local data plane use:
//
//   - wire.go: the frames of the node protocol (docs/node-protocol.md), a
//     length-prefixed binary encoding with a strict decoder;
//   - conn.go: a framed unix stream connection that passes file
//     descriptors (SCM_RIGHTS) in order with the frames announcing them;
//   - region.go: memfd regions, sealed against resizing, mapped read-write
//     by their owner and read-only by receivers;
//   - hub.go, session.go: keyed publish/subscribe (transport.Transport)
//     over those frames, for uses outside a dataflow.
//
// Payloads below the threshold (DefaultThreshold, 4 KiB) travel inline in
// frames; larger ones are written once into a region and passed by
// reference, never copied between processes. A region's life:
//
//	owner creates + seals ──REGION(fd)──▶ daemon ──REGION(fd)──▶ receivers map it
//	owner writes, OUTPUT(ref) ──▶ INPUT(ref, token) ──▶ receiver reads in place
//	receivers RELEASE(token) ──▶ daemon: last one? ──DROPPED──▶ owner reuses it
//	owner gone / retires it ──▶ daemon closes fd ──REGION_CLOSED──▶ receivers unmap
package shm
