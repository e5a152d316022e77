package sim

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"slices"
)

// OpenIDLength is the length of every simulated openid.
const OpenIDLength = 28

// openidCodec turns a follower index into an openid and back. An openid is
// "o" + 5 characters shared by the account (like WeChat's) + 22 base64url
// characters of AES-128(key(appid), index ‖ 8 zero bytes). Decoding checks
// the prefix, the canonical base64 and the zero tag, so openids of another
// account or made-up strings are rejected. It is immutable once built.
type openidCodec struct {
	prefix [6]byte
	block  cipher.Block
}

// strictB64 rejects non-canonical encodings, so one index has exactly one openid.
var strictB64 = base64.RawURLEncoding.Strict()

func newOpenIDCodec(appid string) *openidCodec {
	sum := sha256.Sum256([]byte("wxgate-sim/openid/" + appid))
	block, err := aes.NewCipher(sum[:16])
	if err != nil {
		panic("sim: aes.NewCipher(16 bytes): " + err.Error()) // impossible: the key is 16 bytes
	}
	c := &openidCodec{block: block}
	c.prefix[0] = 'o'
	var p [24]byte
	base64.RawURLEncoding.Encode(p[:], sum[16:32])
	copy(c.prefix[1:], p[:5])
	return c
}

// appendOpenID appends the 28-byte openid of index to dst. It allocates
// nothing when dst has room: the AES block is built in dst's spare capacity
// (a stack array would escape through the cipher.Block interface).
func (c *openidCodec) appendOpenID(dst []byte, index uint64) []byte {
	n := len(dst)
	dst = slices.Grow(dst, OpenIDLength+16)[:n+OpenIDLength+16]
	blk := dst[n+OpenIDLength:]
	binary.BigEndian.PutUint64(blk[:8], index)
	clear(blk[8:])
	c.block.Encrypt(blk, blk)
	copy(dst[n:], c.prefix[:])
	base64.RawURLEncoding.Encode(dst[n+len(c.prefix):n+OpenIDLength], blk)
	return dst[:n+OpenIDLength]
}

// index decodes an openid of this account back to its index.
func (c *openidCodec) index(openid string) (uint64, bool) {
	if len(openid) != OpenIDLength || openid[:6] != string(c.prefix[:]) {
		return 0, false
	}
	var blk [16]byte
	if n, err := strictB64.Decode(blk[:], []byte(openid[6:])); err != nil || n != 16 {
		return 0, false
	}
	c.block.Decrypt(blk[:], blk[:])
	if binary.BigEndian.Uint64(blk[8:]) != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint64(blk[:8]), true
}

// OpenID returns the openid of the follower at index (0-based) of the account
// appid: 28 characters of [A-Za-z0-9_-] starting with "o", the same in every
// simulator and every run. Followers are listed in index order.
func OpenID(appid string, index int) string {
	return string(newOpenIDCodec(appid).appendOpenID(make([]byte, 0, OpenIDLength), uint64(index)))
}

// OpenIDIndex decodes an openid of the account appid back to its follower
// index; ok is false for anything that is not such an openid. It does not
// check that the account has that many followers.
func OpenIDIndex(appid, openid string) (index int, ok bool) {
	i, ok := newOpenIDCodec(appid).index(openid)
	if !ok || i > MaxFollowers {
		return 0, false
	}
	return int(i), true
}
