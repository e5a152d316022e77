package wxcrypt

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecryptAndParse checks that hostile Encrypt values and event bodies
// never panic Decrypt, ParseEnvelope or ParseEvent, that every failure is one
// of the package's sentinel errors, and that whatever decrypts re-encrypts to
// the same message. Seeds live in testdata/fuzz/FuzzDecryptAndParse and run
// with every `go test`.
func FuzzDecryptAndParse(f *testing.F) {
	c, err := New(vecToken, vecKey, vecAppID)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vecEncrypt, []byte("<xml><AppId><![CDATA[wx2c2769f8efd9abc2]]></AppId><Encrypt><![CDATA[abc]]></Encrypt></xml>"))
	f.Fuzz(func(t *testing.T, encrypt string, raw []byte) {
		msg, err := c.Decrypt(encrypt)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAppIDMismatch) {
				t.Fatalf("Decrypt error is not a sentinel: %v", err)
			}
		} else {
			if _, err := ParseEvent(msg); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEvent error is not ErrMalformed: %v", err)
			}
			again, err := c.EncryptWithRandom(make([]byte, RandomSize), msg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := c.Decrypt(again)
			if err != nil || !bytes.Equal(back, msg) {
				t.Fatalf("round trip of a decrypted message: %q, %v", back, err)
			}
		}
		if _, err := ParseEvent(raw); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseEvent(raw) error is not ErrMalformed: %v", err)
		}
		if env, err := ParseEnvelope(raw); err == nil {
			_, _ = c.Decrypt(env.Encrypt)
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseEnvelope error is not ErrMalformed: %v", err)
		}
	})
}
