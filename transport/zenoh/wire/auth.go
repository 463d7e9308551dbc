package wire

// The Auth extension of INIT and OPEN (id 0x3, zbuf) carries one inner
// extension chain, one extension per authentication method. Of those we
// implement usrpwd (inner id 0x2), as eclipse-zenoh 1.x does:
//
//	dialer                                   listener
//	INIT syn  Auth{usrpwd: unit}       ──►   wants credentials?
//	                                   ◄──   INIT ack  Auth{usrpwd: z64 nonce}
//	OPEN syn  Auth{usrpwd: zbuf        ──►   look up user, compare HMAC
//	            user  (z-bytes)
//	            hmac  (z-bytes)}
//	                                   ◄──   OPEN ack  Auth{usrpwd: unit}
//
// hmac is HMAC-SHA3-256 keyed with the nonce (8 bytes, little-endian) over
// the password. A listener that refuses closes the link with CLOSE
// reason generic, as eclipse-zenoh does.

// Inner extension ids of the Auth extension.
const (
	AuthPubKey = 0x1
	AuthUsrPwd = 0x2
)

// Keys (id | encoding) of the usrpwd extension in each handshake message.
const (
	UsrPwdInitSyn = AuthUsrPwd | ExtEncUnit
	UsrPwdInitAck = AuthUsrPwd | ExtEncZ64
	UsrPwdOpenSyn = AuthUsrPwd | ExtEncZBuf
	UsrPwdOpenAck = AuthUsrPwd | ExtEncUnit
)

// extAuth is the key of the Auth extension in INIT and OPEN.
const extAuth = 0x03 | ExtEncZBuf

// maxAuthExts bounds the inner extensions of one Auth extension.
const maxAuthExts = 16

// AppendAuthExts encodes exts as the body of an Auth extension: a chain
// in which each extension but the last has the more bit set.
func AppendAuthExts(b []byte, exts ...Ext) []byte {
	for i, e := range exts {
		more := i < len(exts)-1
		switch e.Key & extEncMask {
		case ExtEncZ64:
			b = appendExtZ64(b, e.Key, e.Value, more)
		case ExtEncZBuf:
			b = appendExtZBuf(b, e.Key, e.Body, more)
		default:
			k := e.Key
			if more {
				k |= ExtMore
			}
			b = append(b, k)
		}
	}
	return b
}

// DecodeAuthExts decodes the body of an Auth extension. An empty body is
// an empty chain; bytes after the last extension are ignored, as
// eclipse-zenoh does. Zbuf bodies alias body.
func DecodeAuthExts(body []byte) ([]Ext, error) {
	r := NewReader(body)
	var out []Ext
	for more := r.Len() > 0; more && r.err == nil; {
		if len(out) == maxAuthExts {
			r.Failf("Auth extension: more than %d methods", maxAuthExts)
			break
		}
		var e Ext
		e, more = readExt(r, "Auth")
		out = append(out, e)
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// FindAuthExt returns the extension of the method id, if present.
func FindAuthExt(exts []Ext, id byte) (Ext, bool) {
	for _, e := range exts {
		if e.Key&ExtIDMask == id {
			return e, true
		}
	}
	return Ext{}, false
}

// UsrPwdOpen is the body of the usrpwd extension of OPEN syn.
type UsrPwdOpen struct {
	User []byte
	HMAC []byte
}

// maxUsrPwdField bounds the user and the HMAC of an OPEN syn.
const maxUsrPwdField = 4096

// AppendUsrPwdOpen encodes m: the user, then the HMAC, each as z-bytes.
func AppendUsrPwdOpen(b []byte, m *UsrPwdOpen) []byte {
	b = AppendSlice(b, m.User)
	return AppendSlice(b, m.HMAC)
}

// DecodeUsrPwdOpen decodes the body of the usrpwd extension of OPEN syn.
// The fields alias body; bytes after the HMAC are ignored, as
// eclipse-zenoh does.
func DecodeUsrPwdOpen(body []byte) (*UsrPwdOpen, error) {
	r := NewReader(body)
	m := &UsrPwdOpen{User: r.Slice(maxUsrPwdField, "usrpwd user"), HMAC: r.Slice(maxUsrPwdField, "usrpwd hmac")}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}
