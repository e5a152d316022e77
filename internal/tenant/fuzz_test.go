package tenant_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// authFixture is a real tenant service over a store with the keys the fuzz
// target starts from: the valid ones, and near misses of every kind.
type authFixture struct {
	svc *tenant.Service
	// valid maps each key that must authenticate to its principal.
	valid map[string]tenant.Principal
	// bases are the starting points of mutations: valid keys first, then
	// keys that must be refused (revoked, expired, deleted tenant, forged,
	// wrong algorithm, mismatched claims), then "" for arbitrary strings.
	bases []string
}

// b64url is the alphabet of JWT segments.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// knownReasons are the only reasons a refusal may carry.
var knownReasons = []string{
	tenant.ReasonMissing, tenant.ReasonBadScheme, tenant.ReasonMalformed, tenant.ReasonBadAlgorithm,
	tenant.ReasonBadSignature, tenant.ReasonExpired, tenant.ReasonNotYetValid, tenant.ReasonWrongIssuer,
	tenant.ReasonWrongAudience, tenant.ReasonMissingClaim, tenant.ReasonUnknownKey, tenant.ReasonRevoked,
	tenant.ReasonUnknownTenant, tenant.ReasonClaimsMismatch, tenant.ReasonInvalid,
}

func newAuthFixture(tb testing.TB) *authFixture {
	tb.Helper()
	clock := storetest.NewClock()
	st := storetest.Open(tb, store.SQLite, clock.Now)
	ctx := context.Background()
	svc, err := tenant.New(ctx, tenant.Options{
		Store: st, ComponentAppID: component, MasterKey: storetest.Key(),
		DefaultRate: 1, DefaultBurst: 1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	fx := &authFixture{svc: svc, valid: map[string]tenant.Principal{}}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	acme, err := svc.Admin.CreateTenant(ctx, "", "acme")
	must(err)
	gone, err := svc.Admin.CreateTenant(ctx, "", "gone")
	must(err)
	issue := func(tenantID string, req tenant.KeyRequest) (store.Key, string) {
		tb.Helper()
		k, raw, err := svc.Admin.IssueKey(ctx, tenantID, req)
		must(err)
		return k, raw.Reveal()
	}
	open, openRaw := issue(acme.ID, tenant.KeyRequest{Name: "open"})
	restricted, restrictedRaw := issue(acme.ID, tenant.KeyRequest{Name: "restricted", AppIDs: []string{"wx00000000000000a1", "wx00000000000000a2"}})
	lasting, lastingRaw := issue(acme.ID, tenant.KeyRequest{Name: "lasting", TTL: 48 * time.Hour})
	revoked, revokedRaw := issue(acme.ID, tenant.KeyRequest{Name: "revoked"})
	must(svc.Admin.RevokeKey(ctx, revoked.KID))
	_, expiredRaw := issue(acme.ID, tenant.KeyRequest{Name: "expired", TTL: time.Hour})
	_, goneRaw := issue(gone.ID, tenant.KeyRequest{Name: "of a deleted tenant"})
	must(svc.Admin.DeleteTenant(ctx, gone.ID))
	clock.Advance(2 * time.Hour) // "expired" is now past its expiry and leeway; "lasting" is not
	fx.valid[openRaw] = tenant.Principal{TenantID: acme.ID, KID: open.KID}
	fx.valid[restrictedRaw] = tenant.Principal{TenantID: acme.ID, KID: restricted.KID, AppIDs: restricted.AppIDs}
	fx.valid[lastingRaw] = tenant.Principal{TenantID: acme.ID, KID: lasting.KID}

	signing, err := secret.DeriveKey(storetest.Key(), secret.PurposeTenantJWT)
	must(err)
	otherMaster := slices.Clone(storetest.Key())
	otherMaster[0] ^= 0xff
	otherSigning, err := secret.DeriveKey(otherMaster, secret.PurposeTenantJWT)
	must(err)
	claims := func(kid, sub string, appids []string) jwt.MapClaims {
		c := jwt.MapClaims{"iss": tenant.ClaimIssuer, "aud": []string{tenant.ClaimAudience}, "sub": sub, "jti": kid, "iat": clock.Now().Add(-time.Minute).Unix()}
		if appids != nil {
			c["appids"] = appids
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
		tb.Helper()
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		must(err)
		return s
	}
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(open.KID, acme.ID, nil))
	fx.bases = []string{
		openRaw, restrictedRaw, lastingRaw,
		revokedRaw, expiredRaw, goneRaw,
		sign(jwt.SigningMethodHS256, otherSigning, claims(open.KID, acme.ID, nil)), // forged: another master key
		sign(jwt.SigningMethodHS384, signing, claims(open.KID, acme.ID, nil)),      // right key, wrong algorithm
		none, // alg none
		sign(jwt.SigningMethodHS256, signing, claims("k_unknown", acme.ID, nil)),                                         // unknown kid
		sign(jwt.SigningMethodHS256, signing, claims(restricted.KID, acme.ID, nil)),                                      // restriction dropped
		sign(jwt.SigningMethodHS256, signing, claims(open.KID, gone.ID, nil)),                                            // another tenant
		sign(jwt.SigningMethodHS256, signing, jwt.MapClaims{"iss": tenant.ClaimIssuer, "sub": acme.ID, "jti": open.KID}), // no aud, no iat
		"",
	}
	for raw, want := range fx.valid {
		p, err := svc.Verifier.Authenticate(ctx, raw)
		if err != nil || p.TenantID != want.TenantID || p.KID != want.KID || !slices.Equal(p.AppIDs, want.AppIDs) {
			tb.Fatalf("issued key does not authenticate: %+v, %v", p, err)
		}
	}
	for _, raw := range fx.bases[3:] {
		if _, err := svc.Verifier.Authenticate(ctx, raw); err == nil {
			tb.Fatalf("near-miss base key authenticates: %.40s…", raw)
		}
	}
	return fx
}

// mutate derives a candidate key from base: the character fromEnd places
// from the end (1 = the last) has its base64url value XORed with flip, then
// cut characters from there are replaced by insert. fromEnd 0 or past the
// start leaves the key and appends insert at the end.
func mutate(base string, fromEnd uint16, flip, cut uint8, insert string) string {
	b := []byte(base)
	at := len(b)
	if int(fromEnd) >= 1 && int(fromEnd) <= len(b) {
		at = len(b) - int(fromEnd)
		if i := strings.IndexByte(b64url, b[at]); i >= 0 {
			b[at] = b64url[(i^int(flip))&63]
		}
	}
	end := min(at+int(cut), len(b))
	return string(b[:at]) + insert + string(b[end:])
}

// FuzzAuthenticate checks tenant key verification against arbitrary strings
// and mutations of real keys (flipped bits in any base64url character,
// spliced or truncated segments, alternative spellings) on a real directory
// over a store: Authenticate never panics, accepts exactly the keys issued
// in the setup (byte for byte) with their own principal, and refuses
// everything else as unauthenticated with the one fixed message and a known
// reason. Seeds: testdata/fuzz/FuzzAuthenticate (run by plain `go test`).
func FuzzAuthenticate(f *testing.F) {
	fx := newAuthFixture(f)
	f.Add(uint8(0), uint16(1), uint8(1), uint8(0), "")
	f.Fuzz(func(t *testing.T, which uint8, fromEnd uint16, flip, cut uint8, insert string) {
		candidate := mutate(fx.bases[int(which)%len(fx.bases)], fromEnd, flip, cut, insert)
		p, err := fx.svc.Verifier.Authenticate(context.Background(), candidate)
		want, isValid := fx.valid[candidate]
		if err == nil {
			if !isValid {
				t.Fatalf("accepted a key that was never issued: %q (principal %+v)", candidate, p)
			}
			if p.TenantID != want.TenantID || p.KID != want.KID || !slices.Equal(p.AppIDs, want.AppIDs) {
				t.Fatalf("principal %+v, want %+v", p, want)
			}
			return
		}
		if isValid {
			t.Fatalf("an issued key was refused: %v", err)
		}
		e := errs.As(err)
		if e == nil || e.Code != errs.Unauthenticated || e.Message != "invalid or missing credentials" || len(e.Details) != 0 {
			t.Fatalf("refusal is not the one unauthenticated answer: %#v", err)
		}
		if r := tenant.FailureReason(err); !slices.Contains(knownReasons, r) {
			t.Fatalf("unknown refusal reason %q", r)
		}
		if len(candidate) >= 8 && strings.Contains(err.Error(), candidate) {
			t.Fatalf("the refusal echoes the key: %v", err)
		}
	})
}
