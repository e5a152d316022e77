// Package wxcrypt implements WeChat's message crypto (WXBizMsgCrypt) for a
// third-party platform ("component"): the SHA-1 signatures, the AES-256-CBC
// encryption of event bodies, the outer XML envelope and the platform events
// pushed to the authorization event URL (docs/wechat.md, "Events" and "Message crypto").
//
// It is used on both sides of the wire: by the gateway to open the events
// WeChat pushes, and by the simulator to seal them exactly as WeChat does.
package wxcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// ErrSignature reports that a msg_signature does not match the message.
var ErrSignature = errors.New("wxcrypt: signature mismatch")

// ErrAppIDMismatch reports that a message decrypted correctly but carries
// another appid than the Crypter's.
var ErrAppIDMismatch = errors.New("wxcrypt: appid mismatch")

// ErrMalformed reports a message that cannot be decoded or decrypted: bad
// base64, a ciphertext that is not a whole number of blocks, bad padding, a
// bad length prefix, or XML that cannot be parsed. The more specific errors
// below all match ErrMalformed with errors.Is.
var ErrMalformed = errors.New("wxcrypt: malformed message")

// ErrBadBase64 reports an Encrypt value that is not valid standard base64.
// It matches ErrMalformed.
var ErrBadBase64 = fmt.Errorf("%w: bad base64", ErrMalformed)

// ErrBlockSize reports a ciphertext that is empty or not a whole number of
// AES blocks. It matches ErrMalformed.
var ErrBlockSize = fmt.Errorf("%w: ciphertext is not a whole number of blocks", ErrMalformed)

// ErrBadPadding reports a PKCS#7 padding outside 1..32 or inconsistent pad
// bytes. It matches ErrMalformed.
var ErrBadPadding = fmt.Errorf("%w: bad padding", ErrMalformed)

// ErrBadLength reports a plaintext too short for its header or whose length
// prefix points past its end. It matches ErrMalformed.
var ErrBadLength = fmt.Errorf("%w: bad length", ErrMalformed)

const (
	// RandomSize is the number of random bytes that start every plaintext.
	RandomSize = 16
	// KeyLength is the length of an EncodingAESKey in characters.
	KeyLength = 43
	// padBlock is the PKCS#7 block size WeChat pads to (not AES's 16).
	padBlock = 32
	// headerSize is the random prefix plus the 4-byte length.
	headerSize = RandomSize + 4
)

// Crypter encrypts, decrypts and signs WeChat platform messages for one
// component (one Token, EncodingAESKey and appid). It is safe for concurrent
// use. Its String, GoString and LogValue never reveal the token or the key.
type Crypter struct {
	token string
	key   []byte // 32 bytes
	appid string
	block cipher.Block
}

// New returns a Crypter for the given message Token, 43-character
// EncodingAESKey and appid (the component appid for platform events).
func New(token, encodingAESKey, appid string) (*Crypter, error) {
	if token == "" {
		return nil, errors.New("wxcrypt: token is empty")
	}
	if appid == "" {
		return nil, errors.New("wxcrypt: appid is empty")
	}
	if len(encodingAESKey) != KeyLength {
		return nil, fmt.Errorf("wxcrypt: EncodingAESKey must be %d characters, got %d", KeyLength, len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		return nil, fmt.Errorf("wxcrypt: EncodingAESKey is not base64: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("wxcrypt: EncodingAESKey decodes to %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("wxcrypt: %w", err)
	}
	return &Crypter{token: token, key: key, appid: appid, block: block}, nil
}

// AppID returns the appid the Crypter writes into and expects in messages.
func (c *Crypter) AppID() string { return c.appid }

// String describes the Crypter without its secrets.
func (c *Crypter) String() string {
	if c == nil {
		return "wxcrypt.Crypter(nil)"
	}
	return "wxcrypt.Crypter{appid: " + c.appid + ", token: [redacted], key: [redacted]}"
}

// GoString is like String, so that %#v does not reveal the secrets either.
func (c *Crypter) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the secrets.
func (c *Crypter) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("nil")
	}
	return slog.GroupValue(slog.String("appid", c.appid), slog.String("token", "[redacted]"), slog.String("key", "[redacted]"))
}

// Signature returns hex(sha1(join(sort(parts)))), WeChat's signature scheme:
// msg_signature is Signature(token, timestamp, nonce, encrypt) and the URL
// signature is Signature(token, timestamp, nonce).
func Signature(parts ...string) string {
	sorted := append([]string(nil), parts...)
	sort.Strings(sorted)
	h := sha1.New()
	for _, p := range sorted {
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Sign returns the msg_signature of an Encrypt value.
func (c *Crypter) Sign(timestamp, nonce, encrypt string) string {
	return Signature(c.token, timestamp, nonce, encrypt)
}

// SignURL returns the URL signature (over token, timestamp and nonce only)
// that WeChat adds next to msg_signature.
func (c *Crypter) SignURL(timestamp, nonce string) string {
	return Signature(c.token, timestamp, nonce)
}

// Verify reports, in constant time, whether msgSignature is the signature of
// encrypt with this Crypter's token, the timestamp and the nonce.
func (c *Crypter) Verify(msgSignature, timestamp, nonce, encrypt string) bool {
	want := c.Sign(timestamp, nonce, encrypt)
	return subtle.ConstantTimeCompare([]byte(want), []byte(msgSignature)) == 1
}

// Encrypt encrypts msg with 16 random bytes from crypto/rand and returns the
// base64 Encrypt value.
func (c *Crypter) Encrypt(msg []byte) (string, error) {
	random := make([]byte, RandomSize)
	if _, err := rand.Read(random); err != nil {
		return "", fmt.Errorf("wxcrypt: read random: %w", err)
	}
	return c.EncryptWithRandom(random, msg)
}

// EncryptWithRandom encrypts msg with the given 16 random bytes; it exists
// for test vectors. Use Encrypt otherwise.
func (c *Crypter) EncryptWithRandom(random, msg []byte) (string, error) {
	if len(random) != RandomSize {
		return "", fmt.Errorf("wxcrypt: random must be %d bytes, got %d", RandomSize, len(random))
	}
	if uint64(len(msg)) > 1<<31 {
		return "", fmt.Errorf("wxcrypt: message of %d bytes is too long", len(msg))
	}
	n := headerSize + len(msg) + len(c.appid)
	pad := padBlock - n%padBlock // 1..32
	plain := make([]byte, n+pad)
	copy(plain, random)
	binary.BigEndian.PutUint32(plain[RandomSize:headerSize], uint32(len(msg)))
	copy(plain[headerSize:], msg)
	copy(plain[headerSize+len(msg):], c.appid)
	for i := n; i < len(plain); i++ {
		plain[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(plain, plain)
	return base64.StdEncoding.EncodeToString(plain), nil
}

// Decrypt decrypts an Encrypt value and returns the message. It never panics
// on hostile input: it checks the base64 (ErrBadBase64), the block size
// (ErrBlockSize), the padding (ErrBadPadding) and the length prefix
// (ErrBadLength), all matching ErrMalformed, and answers ErrAppIDMismatch when
// the trailing appid is not the Crypter's.
func (c *Crypter) Decrypt(encrypt string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encrypt))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBase64, err)
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w (%d bytes)", ErrBlockSize, len(data))
	}
	cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(data, data)
	pad := int(data[len(data)-1])
	if pad < 1 || pad > padBlock || pad > len(data) {
		return nil, fmt.Errorf("%w (pad byte %d)", ErrBadPadding, pad)
	}
	for _, b := range data[len(data)-pad:] {
		if int(b) != pad {
			return nil, ErrBadPadding
		}
	}
	content := data[:len(data)-pad]
	if len(content) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrBadLength, len(content))
	}
	msgLen := uint64(binary.BigEndian.Uint32(content[RandomSize:headerSize]))
	if msgLen > uint64(len(content)-headerSize) {
		return nil, fmt.Errorf("%w: length prefix %d exceeds the %d bytes left", ErrBadLength, msgLen, len(content)-headerSize)
	}
	msg := content[headerSize : headerSize+int(msgLen)]
	if got := content[headerSize+int(msgLen):]; string(got) != c.appid {
		return nil, fmt.Errorf("%w: got %q", ErrAppIDMismatch, truncate(got, 64))
	}
	out := make([]byte, len(msg))
	copy(out, msg)
	return out, nil
}

// Open parses the outer XML body of a pushed message, verifies msgSignature
// and decrypts the Encrypt value: the whole receiving side in one call. It
// answers ErrMalformed (unparsable body), ErrSignature, or any error of
// Decrypt.
func (c *Crypter) Open(body []byte, msgSignature, timestamp, nonce string) ([]byte, error) {
	env, err := ParseEnvelope(body)
	if err != nil {
		return nil, err
	}
	if !c.Verify(msgSignature, timestamp, nonce, env.Encrypt) {
		return nil, ErrSignature
	}
	return c.Decrypt(env.Encrypt)
}

// SealEvent encrypts a plaintext event XML and returns the outer body
// <xml><AppId><![CDATA[appid]]></AppId><Encrypt><![CDATA[…]]></Encrypt></xml>
// and its msg_signature, exactly as WeChat pushes platform events.
func (c *Crypter) SealEvent(plain []byte, timestamp, nonce string) (body []byte, msgSignature string, err error) {
	enc, err := c.Encrypt(plain)
	if err != nil {
		return nil, "", err
	}
	var b strings.Builder
	b.Grow(len(enc) + len(c.appid) + 80)
	b.WriteString("<xml><AppId>")
	writeCDATA(&b, c.appid)
	b.WriteString("</AppId><Encrypt>")
	writeCDATA(&b, enc)
	b.WriteString("</Encrypt></xml>")
	return []byte(b.String()), c.Sign(timestamp, nonce, enc), nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// SealMessage encrypts a plaintext account message and returns the outer
// body <xml><ToUserName><![CDATA[gh_…]]></ToUserName><Encrypt><![CDATA[…]]></Encrypt></xml>
// and its msg_signature, exactly as WeChat pushes a follower's message or an
// account event to the message and event receive URL (docs/wechat.md,
// "Messages and events for authorized accounts"). The plaintext's trailing
// appid is the Crypter's: the component's.
func (c *Crypter) SealMessage(plain []byte, toUserName, timestamp, nonce string) (body []byte, msgSignature string, err error) {
	enc, err := c.Encrypt(plain)
	if err != nil {
		return nil, "", err
	}
	var b strings.Builder
	b.Grow(len(enc) + len(toUserName) + 80)
	b.WriteString("<xml><ToUserName>")
	writeCDATA(&b, toUserName)
	b.WriteString("</ToUserName><Encrypt>")
	writeCDATA(&b, enc)
	b.WriteString("</Encrypt></xml>")
	return []byte(b.String()), c.Sign(timestamp, nonce, enc), nil
}

// SealReply encrypts a passive reply's plaintext and returns the reply
// envelope WeChat expects in the answer to a pushed message:
// <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>, signed over the
// reply's own timestamp and nonce.
func (c *Crypter) SealReply(plain []byte, timestamp, nonce string) ([]byte, error) {
	enc, err := c.Encrypt(plain)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.Grow(len(enc) + len(nonce) + 160)
	b.WriteString("<xml><Encrypt>")
	writeCDATA(&b, enc)
	b.WriteString("</Encrypt><MsgSignature>")
	writeCDATA(&b, c.Sign(timestamp, nonce, enc))
	b.WriteString("</MsgSignature><TimeStamp>")
	b.WriteString(timestamp)
	b.WriteString("</TimeStamp><Nonce>")
	writeCDATA(&b, nonce)
	b.WriteString("</Nonce></xml>")
	return []byte(b.String()), nil
}

// OpenReply verifies and decrypts a passive reply envelope (SealReply's
// output): the side of WeChat receiving a platform's reply. It answers
// ErrMalformed for a body that is not such an envelope, ErrSignature when
// MsgSignature does not match its TimeStamp, Nonce and Encrypt, or any
// error of Decrypt.
func (c *Crypter) OpenReply(body []byte) ([]byte, error) {
	var x struct {
		XMLName      xml.Name `xml:"xml"`
		Encrypt      string   `xml:"Encrypt"`
		MsgSignature string   `xml:"MsgSignature"`
		TimeStamp    string   `xml:"TimeStamp"`
		Nonce        string   `xml:"Nonce"`
	}
	if err := xml.Unmarshal(body, &x); err != nil {
		return nil, fmt.Errorf("%w: reply: %w", ErrMalformed, err)
	}
	enc := strings.TrimSpace(x.Encrypt)
	if enc == "" || x.TimeStamp == "" || x.Nonce == "" {
		return nil, fmt.Errorf("%w: reply lacks Encrypt, TimeStamp or Nonce", ErrMalformed)
	}
	if !c.Verify(strings.TrimSpace(x.MsgSignature), strings.TrimSpace(x.TimeStamp), strings.TrimSpace(x.Nonce), enc) {
		return nil, ErrSignature
	}
	return c.Decrypt(enc)
}
