package zenoh

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha3"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// Credentials configure Zenoh's user/password authentication ("usrpwd",
// as eclipse-zenoh 1.x implements it) for both roles of a session:
//
//   - dialling, it presents User and Password (when User is set): it
//     answers the listener's nonce with HMAC-SHA3-256(nonce, Password);
//   - accepting, it requires every dialer to present a pair from Accept,
//     and closes the link of one that does not (CLOSE reason generic, as
//     eclipse-zenoh does), counting it in Stats.AuthRefused.
//
// This matches the transport.auth.usrpwd section of a Zenoh config: user
// and password, and the pairs of its dictionary_file. Only the handshake
// is authenticated; the data that follows is not encrypted.
//
// Passwords are secrets: String, GoString and LogValue never show them.
type Credentials struct {
	User     string
	Password string
	// Accept maps each user a dialer may present to its password. With
	// Credentials set and Accept empty, no dialer is accepted.
	Accept map[string]string
}

// String describes c without its passwords.
func (c Credentials) String() string {
	return fmt.Sprintf("usrpwd(user %q, password %s, accepting %q)", c.User, redact(c.Password), slices.Sorted(maps.Keys(c.Accept)))
}

// GoString is String: %#v must not show the passwords either.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps passwords out of structured logs.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

func redact(p string) string {
	if p == "" {
		return "unset"
	}
	return "set"
}

// validate reports a configuration that cannot work.
func (c Credentials) validate() error {
	if (c.User == "") != (c.Password == "") {
		return errors.New("zenoh config: credentials need both a user and a password to dial, or neither")
	}
	for u, p := range c.Accept {
		if u == "" || p == "" {
			return fmt.Errorf("zenoh config: accepted credentials: user %q has an empty name or password", u)
		}
	}
	return nil
}

// authConfig is the session's private copy of its Credentials.
type authConfig struct {
	user, password []byte
	accept         map[string][]byte
}

func newAuthConfig(c *Credentials) (*authConfig, error) {
	if c == nil {
		return nil, nil
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	a := &authConfig{user: []byte(c.User), password: []byte(c.Password), accept: map[string][]byte{}}
	for u, p := range c.Accept {
		a.accept[u] = []byte(p)
	}
	return a, nil
}

// dials reports whether a dialer with this configuration presents
// credentials.
func (a *authConfig) dials() bool { return a != nil && len(a.user) > 0 }

// usrpwdHMAC is HMAC-SHA3-256 keyed with the nonce (little-endian) over
// the password.
func usrpwdHMAC(nonce uint64, password []byte) []byte {
	var key [8]byte
	binary.LittleEndian.PutUint64(key[:], nonce)
	m := hmac.New(func() hash.Hash { return sha3.New256() }, key[:])
	m.Write(password)
	return m.Sum(nil)
}

// errAuth marks a handshake that failed on credentials, either way.
var errAuth = errors.New("zenoh handshake: authentication failed")

// newNonce is the usrpwd challenge of our INIT ack.
func newNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// usrpwdOffered reports whether an INIT syn asks for usrpwd.
func usrpwdOffered(auth []byte) bool {
	exts, err := wire.DecodeAuthExts(auth)
	if err != nil {
		return false
	}
	e, ok := wire.FindAuthExt(exts, wire.AuthUsrPwd)
	return ok && e.Key == wire.UsrPwdInitSyn
}

// verify checks the usrpwd answer of an OPEN syn against the nonce. It
// returns the user it names (for the log) and why it is refused. The time
// it takes does not tell a known user from an unknown one.
func (a *authConfig) verify(auth []byte, nonce uint64) (user string, err error) {
	if auth == nil {
		return "", errors.New("no auth extension in OPEN")
	}
	exts, err := wire.DecodeAuthExts(auth)
	if err != nil {
		return "", fmt.Errorf("auth extension: %w", err)
	}
	e, ok := wire.FindAuthExt(exts, wire.AuthUsrPwd)
	if !ok || e.Key != wire.UsrPwdOpenSyn {
		return "", errors.New("no usrpwd answer in OPEN")
	}
	m, err := wire.DecodeUsrPwdOpen(e.Body)
	if err != nil {
		return "", fmt.Errorf("usrpwd answer: %w", err)
	}
	user = printableUser(m.User)
	pwd, known := a.accept[string(m.User)]
	if !known {
		pwd = unknownUserPassword[:]
	}
	good := hmac.Equal(usrpwdHMAC(nonce, pwd), m.HMAC)
	switch {
	case !known:
		return user, errors.New("unknown user")
	case !good:
		return user, errors.New("wrong password")
	}
	return user, nil
}

// unknownUserPassword stands in for the password of an unknown user, so
// that checking one costs the same HMAC as checking a known one.
var unknownUserPassword [32]byte

// printableUser quotes a user name from the wire for a log line, cut to
// 64 bytes.
func printableUser(u []byte) string {
	if len(u) > 64 {
		return fmt.Sprintf("%q…", strings.ToValidUTF8(string(u[:64]), "?"))
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(string(u), "?"))
}

// answer is the usrpwd extension of our OPEN syn for the nonce of the
// listener's INIT ack.
func (a *authConfig) answer(nonce uint64) []byte {
	body := wire.AppendUsrPwdOpen(nil, &wire.UsrPwdOpen{User: a.user, HMAC: usrpwdHMAC(nonce, a.password)})
	return wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdOpenSyn, Body: body})
}

// challenge reads the nonce of an INIT ack.
func challenge(auth []byte) (uint64, error) {
	exts, err := wire.DecodeAuthExts(auth)
	if err != nil {
		return 0, fmt.Errorf("auth extension of INIT ack: %w", err)
	}
	e, ok := wire.FindAuthExt(exts, wire.AuthUsrPwd)
	if !ok || e.Key != wire.UsrPwdInitAck {
		return 0, errors.New("the peer does not ask for credentials (no usrpwd nonce in its INIT ack); configure it with the same credentials")
	}
	return e.Value, nil
}

// acknowledged reports whether an OPEN ack confirms usrpwd.
func acknowledged(auth []byte) bool {
	exts, err := wire.DecodeAuthExts(auth)
	if err != nil {
		return false
	}
	e, ok := wire.FindAuthExt(exts, wire.AuthUsrPwd)
	return ok && e.Key == wire.UsrPwdOpenAck
}
