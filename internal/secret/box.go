package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MasterKeySize is the length in bytes of WXGATE_SECRET_KEY once decoded.
const MasterKeySize = 32

// Purposes of the sub-keys derived from the master key. Each purpose gets an
// independent key, so a key leaked from one use never opens another.
const (
	PurposeAtRest    = "wxgate/at-rest/v1"
	PurposeTenantJWT = "wxgate/tenant-jwt/v1"
)

// ErrDecrypt is returned when a ciphertext was tampered with, is malformed,
// or was sealed with a key this box does not hold.
var ErrDecrypt = errors.New("secret: cannot decrypt value")

var errNoKey = errors.New("secret: no key configured")

// DeriveKey derives the 32-byte sub-key for purpose from the master key with
// HKDF-SHA256.
func DeriveKey(master []byte, purpose string) ([]byte, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("secret: master key must be %d bytes, got %d", MasterKeySize, len(master))
	}
	key, err := hkdf.Key(sha256.New, master, nil, purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("secret: derive %s: %w", purpose, err)
	}
	return key, nil
}

// Box seals and opens values with AES-256-GCM. Every ciphertext names the
// key that sealed it ("wxg1.<kid>.<base64url>"), so a box holding the old
// and the new key can open both while sealing with the new one: that is how
// the at-rest key is rotated.
type Box struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// String never prints key material.
func (b *Box) String() string { return "secret.Box{kid:" + b.primary + "}" }

// NewBox builds a box that seals with the first master key and opens with
// any of them. Each master key is turned into its at-rest sub-key first.
func NewBox(masters ...[]byte) (*Box, error) {
	if len(masters) == 0 {
		return nil, errors.New("secret: NewBox needs at least one key")
	}
	b := &Box{aeads: make(map[string]cipher.AEAD, len(masters))}
	for i, m := range masters {
		sub, err := DeriveKey(m, PurposeAtRest)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sub)
		if err != nil {
			return nil, fmt.Errorf("secret: aes: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secret: gcm: %w", err)
		}
		kid := keyID(sub)
		b.aeads[kid] = aead
		if i == 0 {
			b.primary = kid
		}
	}
	return b, nil
}

// keyID names a sub-key without revealing it: the first 4 bytes of its
// SHA-256, in hex.
func keyID(sub []byte) string {
	sum := sha256.Sum256(sub)
	return hex.EncodeToString(sum[:4])
}

const sealedPrefix = "wxg1"

// Seal encrypts plaintext bound to aad (for example "authorizer/wx123/access"),
// so a ciphertext copied to another row or column does not open. An empty
// plaintext seals to the empty string.
func (b *Box) Seal(plaintext Value, aad string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	if b == nil {
		return "", errNoKey
	}
	aead := b.aeads[b.primary]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret: nonce: %w", err)
	}
	ct := aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad))
	return sealedPrefix + "." + b.primary + "." + base64.RawURLEncoding.EncodeToString(ct), nil
}

// Open decrypts a value sealed by Seal with the same aad. The empty string
// opens to the empty secret. Tampering, a wrong aad or an unknown key all
// give ErrDecrypt.
func (b *Box) Open(sealed, aad string) (Value, error) {
	if sealed == "" {
		return "", nil
	}
	if b == nil {
		return "", errNoKey
	}
	parts := strings.SplitN(sealed, ".", 3)
	if len(parts) != 3 || parts[0] != sealedPrefix {
		return "", fmt.Errorf("%w: malformed", ErrDecrypt)
	}
	aead, ok := b.aeads[parts[1]]
	if !ok {
		return "", fmt.Errorf("%w: unknown key id %s", ErrDecrypt, parts[1])
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[2]) // one spelling per ciphertext
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: malformed", ErrDecrypt)
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return "", fmt.Errorf("%w: authentication failed", ErrDecrypt)
	}
	return Value(pt), nil
}
