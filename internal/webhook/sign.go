package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/wxgate/wxgate/internal/secret"
)

// SignatureHeader and EventIDHeader are the headers of every delivery.
const (
	SignatureHeader = "Wxgate-Signature"
	EventIDHeader   = "Wxgate-Event-Id"
)

// Sign is the Wxgate-Signature value for body sent at t:
// "t=UNIX_SECONDS,v1=HEX" with HEX = hex(HMAC-SHA256(secret, t + "." + body)),
// one v1 per secret (during a rotation, the new and the old one).
func Sign(secrets []secret.Value, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(ts)
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s.Reveal(), ts, body)))
	}
	return b.String()
}

func mac(key, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify is what a receiver does (README, "Webhooks"): it accepts header
// when one of its v1 values is the HMAC of body under key and its t is
// within tolerance of now.
func Verify(key string, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return false
	}
	want := mac(key, ts, body)
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
