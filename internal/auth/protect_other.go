//go:build !linux

package auth

// ProtectProcess does nothing outside Linux.
func ProtectProcess() error { return nil }
