package secret_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/secret"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, secret.MasterKeySize) }

func TestValueRedactsEverywhere(t *testing.T) {
	v := secret.Value("super-secret-token")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", v)
	j, _ := json.Marshal(map[string]any{"t": v})
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", v), "%s": fmt.Sprintf("%s", v), "%#v": fmt.Sprintf("%#v", v),
		"struct": fmt.Sprintf("%+v", struct{ T secret.Value }{v}), "slog": logs.String(), "json": string(j),
	} {
		if strings.Contains(s, "super-secret") {
			t.Errorf("%s leaks the secret: %s", name, s)
		}
	}
	if v.Reveal() != "super-secret-token" {
		t.Fatal("Reveal lost the value")
	}
}

func TestBoxRoundTripTamperAndWrongKey(t *testing.T) {
	b, err := secret.NewBox(key(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := b.Seal("refreshtoken@@@abc", "authorizer/wx1/refresh")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "refreshtoken") || !strings.HasPrefix(sealed, "wxg1.") {
		t.Fatalf("sealed form %q", sealed)
	}
	again, _ := b.Seal("refreshtoken@@@abc", "authorizer/wx1/refresh")
	if again == sealed {
		t.Fatal("two seals of one value are identical: the nonce is not random")
	}
	got, err := b.Open(sealed, "authorizer/wx1/refresh")
	if err != nil || got != "refreshtoken@@@abc" {
		t.Fatalf("Open = %q, %v", got.Reveal(), err)
	}
	// Every single-character change of the payload is detected.
	payload := strings.LastIndex(sealed, ".") + 1
	for i := payload; i < len(sealed); i++ {
		c := byte('A')
		if sealed[i] == 'A' {
			c = 'B'
		}
		tampered := sealed[:i] + string(c) + sealed[i+1:]
		if _, err := b.Open(tampered, "authorizer/wx1/refresh"); !errors.Is(err, secret.ErrDecrypt) {
			t.Fatalf("tampered byte %d opened: %v", i, err)
		}
	}
	cases := map[string]string{
		"other row (aad)": "authorizer/wx2/refresh",
	}
	for name, aad := range cases {
		if _, err := b.Open(sealed, aad); !errors.Is(err, secret.ErrDecrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range []string{"garbage", "wxg1.x", "wxg1.deadbeef.!!!", "wxg1." + strings.Split(sealed, ".")[1] + ".AAAA"} {
		if _, err := b.Open(bad, "authorizer/wx1/refresh"); !errors.Is(err, secret.ErrDecrypt) {
			t.Errorf("Open(%q) = %v, want ErrDecrypt", bad, err)
		}
	}
	other, _ := secret.NewBox(key(2))
	if _, err := other.Open(sealed, "authorizer/wx1/refresh"); !errors.Is(err, secret.ErrDecrypt) {
		t.Fatalf("wrong key opened: %v", err)
	}
	// Rotation: a box with the new key first and the old second opens old ciphertexts.
	rotated, _ := secret.NewBox(key(2), key(1))
	if got, err := rotated.Open(sealed, "authorizer/wx1/refresh"); err != nil || got != "refreshtoken@@@abc" {
		t.Fatalf("rotated box: %v", err)
	}
	if empty, _ := b.Seal("", "x"); empty != "" {
		t.Fatal("empty value should seal to empty")
	}
}

func TestDeriveKeySeparatesPurposes(t *testing.T) {
	a, _ := secret.DeriveKey(key(7), secret.PurposeAtRest)
	j, _ := secret.DeriveKey(key(7), secret.PurposeTenantJWT)
	if bytes.Equal(a, j) || len(a) != 32 {
		t.Fatal("sub-keys must differ per purpose and be 32 bytes")
	}
	if _, err := secret.DeriveKey([]byte("short"), secret.PurposeAtRest); err == nil {
		t.Fatal("short master key accepted")
	}
}
