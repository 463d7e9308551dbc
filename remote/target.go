package remote

import (
	"net"
	"os/user"
	"strconv"

	"github.com/adora-rs/adora/config"
)

// Target says how to reach one machine. The zero Port means
// config.DefaultSSHPort; an empty User means the current user.
type Target struct {
	ID           string
	Host         string
	Port         int
	User         string
	IdentityFile string
	// Local machines are operated on directly (local processes and
	// files), without SSH.
	Local bool
}

// TargetOf resolves machine m of cluster c into a Target, applying the
// cluster's ssh defaults and then the built-in ones.
func TargetOf(c *config.Cluster, m config.Machine) Target {
	t := Target{ID: m.ID, Host: m.Host, Port: m.Port, User: m.User, IdentityFile: m.IdentityFile, Local: m.Local}
	if t.User == "" {
		t.User = c.SSH.User
	}
	if t.Port == 0 {
		t.Port = c.SSH.Port
	}
	if t.IdentityFile == "" {
		t.IdentityFile = c.SSH.IdentityFile
	}
	if t.Port == 0 {
		t.Port = config.DefaultSSHPort
	}
	if t.User == "" {
		if u, err := user.Current(); err == nil {
			t.User = u.Username
		}
	}
	return t
}

// String renders the target the way people write it: user@host, with the
// port when it is not 22, or "local" for a local machine.
func (t Target) String() string {
	if t.Local {
		return "local"
	}
	s := t.Host
	if t.User != "" {
		s = t.User + "@" + s
	}
	if t.Port != 0 && t.Port != config.DefaultSSHPort {
		s += ":" + strconv.Itoa(t.Port)
	}
	return s
}

// Addr is the host:port the SSH client dials.
func (t Target) Addr() string {
	port := t.Port
	if port == 0 {
		port = config.DefaultSSHPort
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}
