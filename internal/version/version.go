// Package version holds adora's version, set at build time with
// -ldflags "-X github.com/adora-rs/adora/internal/version.Version=...".
package version

// Version is the adora release version.
var Version = "0.1.0-dev"

// ProtocolVersion is the control-plane protocol version; coordinators and
// daemons refuse peers that speak another one.
const ProtocolVersion = 1
