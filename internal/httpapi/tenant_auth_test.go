package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// forgeJWT builds a token by hand: any header, any claims, signed with
// HMAC-SHA256 under key whatever the header says (nil key: no signature).
func forgeJWT(t testing.TB, header, claims map[string]any, key []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	if key == nil {
		return signing + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// respell changes the last character of an unpadded base64url segment of
// 32 bytes so that it decodes to the same bytes with non-zero spare bits.
func respell(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[i|1])
}

// realJWTKey is the sub-key the gateway signs tenant keys with.
func realJWTKey(t testing.TB) []byte {
	k, err := secret.DeriveKey(storetest.Key(), secret.PurposeTenantJWT)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// with returns a copy of m with the changes applied (a nil value deletes).
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// attackCase is one way of presenting a bad credential.
type attackCase struct {
	name string
	// header is the Authorization header for /v1 ("" for none).
	header string
	// token is the access_token for the compatible surface; compatSkip
	// marks cases that only make sense as a header.
	token      string
	compatSkip bool
	// reason is the label the failure must be counted under.
	reason string
}

// attackFixture is a replica with two tenants, a good key, a revoked key and
// a key whose tenant was deleted, and the table of attacks on it.
type attackFixture struct {
	*tenantFixture
	tenantA, tenantB string
	goodKey          string
	cases            []attackCase
}

func newAttackFixture(t *testing.T, dialect store.Dialect) *attackFixture {
	f := &attackFixture{tenantFixture: newTenantFixture(t, dialect)}
	f.tenantA = f.createTenant("acme")
	f.tenantB = f.createTenant("globex")
	kidA, keyA := f.issueKey(f.tenantA, nil)
	f.goodKey = keyA
	kidR, keyR := f.issueKey(f.tenantA, map[string]any{"name": "to revoke"})
	if w := f.admin(http.MethodDelete, "/admin/keys/"+kidR, nil); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	tenantC := f.createTenant("initech")
	_, keyC := f.issueKey(tenantC, nil)
	if w := f.admin(http.MethodDelete, "/admin/tenants/"+tenantC, nil); w.Code != http.StatusNoContent {
		t.Fatalf("delete tenant: %d %s", w.Code, w.Body)
	}
	kidX, _ := f.issueKey(f.tenantA, map[string]any{"appids": []string{"wxaaaaaaaaaaaaaaa1"}})

	now := f.clock.Now()
	key := realJWTKey(t)
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}
	good := map[string]any{"iss": tenant.ClaimIssuer, "aud": []string{tenant.ClaimAudience}, "sub": f.tenantA, "jti": kidA, "iat": now.Unix()}
	parts := strings.Split(keyA, ".")
	tampered := with(good, "sub", f.tenantB)
	tamperedPayload, _ := json.Marshal(tampered)

	bearer := func(tok string) string { return "Bearer " + tok }
	tok := func(name, token, reason string) attackCase {
		return attackCase{name: name, header: bearer(token), token: token, reason: reason}
	}
	f.cases = []attackCase{
		{name: "no credential", reason: tenant.ReasonMissing},
		{name: "empty bearer", header: "Bearer ", compatSkip: true, reason: tenant.ReasonMissing},
		{name: "basic scheme", header: "Basic " + keyA, compatSkip: true, reason: tenant.ReasonBadScheme},
		{name: "token scheme", header: "Token " + keyA, compatSkip: true, reason: tenant.ReasonBadScheme},
		{name: "raw key without scheme", header: keyA, compatSkip: true, reason: tenant.ReasonBadScheme},
		tok("garbage", "not-a-jwt", tenant.ReasonMalformed),
		tok("three garbage segments", "aaa.bbb.ccc", tenant.ReasonMalformed),
		tok("oversized", strings.Repeat("a", tenant.MaxKeyLength+1), tenant.ReasonMalformed),
		tok("alg none", forgeJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, good, nil), tenant.ReasonBadAlgorithm),
		tok("alg None with a signature", forgeJWT(t, map[string]any{"alg": "None"}, good, key), tenant.ReasonBadAlgorithm),
		tok("HS256 with another secret", forgeJWT(t, hs256, good, []byte("another secret, 32 bytes long!!")), tenant.ReasonBadSignature),
		tok("RS256 header, HMAC signature", forgeJWT(t, map[string]any{"alg": "RS256", "typ": "JWT"}, good, key), tenant.ReasonBadAlgorithm),
		tok("ES256 header, HMAC signature", forgeJWT(t, map[string]any{"alg": "ES256", "typ": "JWT"}, good, key), tenant.ReasonBadAlgorithm),
		tok("HS512 header, HS256 signature", forgeJWT(t, map[string]any{"alg": "HS512", "typ": "JWT"}, good, key), tenant.ReasonBadAlgorithm),
		tok("tampered payload (tenant changed)", parts[0]+"."+base64.RawURLEncoding.EncodeToString(tamperedPayload)+"."+parts[2], tenant.ReasonBadSignature),
		tok("signature stripped", parts[0]+"."+parts[1]+".", tenant.ReasonBadSignature),
		tok("signature re-spelled (non-canonical base64)", parts[0]+"."+parts[1]+"."+respell(parts[2]), tenant.ReasonMalformed),
		tok("padded signature", keyA+"=", tenant.ReasonMalformed),
		tok("line break inside the key", keyA[:20]+"\r\n"+keyA[20:], tenant.ReasonMalformed),
		tok("expired", forgeJWT(t, hs256, with(good, "iat", now.Add(-2*time.Hour).Unix(), "exp", now.Add(-time.Hour).Unix()), key), tenant.ReasonExpired),
		tok("issued in the future", forgeJWT(t, hs256, with(good, "iat", now.Add(time.Hour).Unix()), key), tenant.ReasonNotYetValid),
		tok("not valid before the future", forgeJWT(t, hs256, with(good, "nbf", now.Add(time.Hour).Unix()), key), tenant.ReasonNotYetValid),
		tok("wrong iss", forgeJWT(t, hs256, with(good, "iss", "someone-else"), key), tenant.ReasonWrongIssuer),
		tok("missing iss", forgeJWT(t, hs256, with(good, "iss", nil), key), tenant.ReasonMissingClaim),
		tok("wrong aud", forgeJWT(t, hs256, with(good, "aud", "wxgate-admin"), key), tenant.ReasonWrongAudience),
		tok("missing aud", forgeJWT(t, hs256, with(good, "aud", nil), key), tenant.ReasonMissingClaim),
		tok("missing jti", forgeJWT(t, hs256, with(good, "jti", nil), key), tenant.ReasonMissingClaim),
		tok("missing sub", forgeJWT(t, hs256, with(good, "sub", nil), key), tenant.ReasonMissingClaim),
		tok("missing iat", forgeJWT(t, hs256, with(good, "iat", nil), key), tenant.ReasonMissingClaim),
		tok("unknown kid", forgeJWT(t, hs256, with(good, "jti", "k_doesnotexist"), key), tenant.ReasonUnknownKey),
		tok("revoked kid", keyR, tenant.ReasonRevoked),
		tok("kid of a deleted tenant", keyC, tenant.ReasonUnknownKey),
		tok("kid of another tenant", forgeJWT(t, hs256, with(good, "sub", f.tenantB), key), tenant.ReasonClaimsMismatch),
		tok("restriction removed from the claims", forgeJWT(t, hs256, with(good, "jti", kidX), key), tenant.ReasonClaimsMismatch),
	}
	return f
}

// unauthenticatedBody is the one answer to every refused key on /v1.
const unauthenticatedBody = `{"error":{"code":"unauthenticated","message":"invalid or missing credentials"}}`

func TestTenantKeyAttacks(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newAttackFixture(t, dialect)
			if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", f.goodKey); w.Code != http.StatusOK ||
				!strings.Contains(w.Body.String(), f.tenantA) {
				t.Fatalf("good key: %d %s", w.Code, w.Body)
			}
			for _, tc := range f.cases {
				t.Run(tc.name, func(t *testing.T) {
					before := f.probes.Load()
					metric := f.authFailures(surfaceREST, tc.reason)
					// The probe and a real tenant route answer alike.
					for _, path := range []string{"/v1/_probe/whoami", "/v1/authorizers"} {
						w := f.do(http.MethodGet, path, nil, "Authorization", tc.header)
						if w.Code != http.StatusUnauthorized || strings.TrimSpace(w.Body.String()) != unauthenticatedBody {
							t.Errorf("%s: %d %s", path, w.Code, w.Body)
						}
						if w.Header().Get("WWW-Authenticate") == "" {
							t.Errorf("%s: no WWW-Authenticate challenge", path)
						}
					}
					if f.probes.Load() != before {
						t.Error("a refused request reached the handler")
					}
					if got := f.authFailures(surfaceREST, tc.reason) - metric; got != 2 {
						t.Errorf("auth failures with reason %q grew by %v, want 2", tc.reason, got)
					}
				})
			}
		})
	}
}

func TestTenantKeyAttacksOnCompatibleSurface(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newAttackFixture(t, dialect)
			f.authorize("wxaaaaaaaaaaaaaaa1", f.tenantA)
			if w := f.do(http.MethodGet, "/wx/wxaaaaaaaaaaaaaaa1/_probe?access_token="+url.QueryEscape(f.goodKey), nil); w.Code != http.StatusOK ||
				!strings.Contains(w.Body.String(), `"appid"`) {
				t.Fatalf("good key: %d %s", w.Code, w.Body)
			}
			const missing = `{"errcode":41001,"errmsg":"access_token missing"}`
			const invalid = `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`
			for _, tc := range f.cases {
				t.Run(tc.name, func(t *testing.T) {
					want := invalid
					path := "/wx/wxaaaaaaaaaaaaaaa1/_probe"
					switch {
					case tc.compatSkip:
						// The key in a header (or nowhere) is a missing access_token.
						want = missing
					case tc.reason == tenant.ReasonMissing:
						want = missing
					default:
						path += "?next_openid=&access_token=" + url.QueryEscape(tc.token)
					}
					before := f.probes.Load()
					w := f.do(http.MethodGet, path, nil, "Authorization", tc.header)
					if w.Code != http.StatusOK || w.Body.String() != want {
						t.Errorf("%d %s, want 200 %s", w.Code, w.Body, want)
					}
					if ct := w.Header().Get("Content-Type"); ct != wechatContentType {
						t.Errorf("Content-Type %q", ct)
					}
					if f.probes.Load() != before {
						t.Error("a refused request reached the handler")
					}
				})
			}
			if f.authFailures(surfaceCompat, tenant.ReasonMissing) == 0 || f.authFailures(surfaceCompat, tenant.ReasonRevoked) == 0 {
				t.Error("compatible-surface failures are not counted")
			}
		})
	}
}

func TestKeyExpiresWithItsTTL(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect)
			tn := f.createTenant("acme")
			_, key := f.issueKey(tn, map[string]any{"ttl_seconds": 60})
			if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", key); w.Code != http.StatusOK {
				t.Fatalf("fresh key: %d %s", w.Code, w.Body)
			}
			f.clock.Advance(60*time.Second + tenant.Leeway + time.Second)
			if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", key); w.Code != http.StatusUnauthorized {
				t.Fatalf("expired key: %d %s", w.Code, w.Body)
			}
			if f.authFailures(surfaceREST, tenant.ReasonExpired) != 1 {
				t.Error("expiry not counted as such")
			}
		})
	}
}

func TestPrincipalCarriesTheRestriction(t *testing.T) {
	f := newTenantFixture(t, store.SQLite)
	tn := f.createTenant("acme")
	kid, key := f.issueKey(tn, map[string]any{"appids": []string{"wxaaaaaaaaaaaaaaa2", "wxaaaaaaaaaaaaaaa1", "wxaaaaaaaaaaaaaaa2"}})
	w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", key)
	got := decodeAs[struct {
		TenantID string   `json:"tenant_id"`
		KID      string   `json:"kid"`
		AppIDs   []string `json:"appids"`
	}](t, w)
	if got.TenantID != tn || got.KID != kid || strings.Join(got.AppIDs, ",") != "wxaaaaaaaaaaaaaaa1,wxaaaaaaaaaaaaaaa2" {
		t.Fatalf("principal = %+v", got)
	}
}

func TestAuthenticatedRequestsCostNoStoreQuery(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect)
			tn := f.createTenant("acme")
			f.authorize("wxaaaaaaaaaaaaaaa1", tn)
			_, key := f.issueKey(tn, nil)
			_, restricted := f.issueKey(tn, map[string]any{"appids": []string{"wxaaaaaaaaaaaaaaa1"}})
			var queries atomicCounter
			f.store.OnQuery(queries.inc)
			paths := []struct{ path, key string }{
				{"/v1/_probe/whoami", key},
				{"/v1/_probe/authorizers/wxaaaaaaaaaaaaaaa1", key},
				{"/v1/_probe/authorizers/wxaaaaaaaaaaaaaaa1", restricted},
			}
			send := func() {
				for _, p := range paths {
					f.tenantCall(http.MethodGet, p.path, p.key)
				}
				f.do(http.MethodGet, "/wx/wxaaaaaaaaaaaaaaa1/_probe?access_token="+url.QueryEscape(key), nil)
			}
			send() // warm-up
			queries.reset()
			for range 50 {
				send()
			}
			if n := queries.load(); n != 0 {
				t.Fatalf("%d store queries for 200 authenticated requests, want 0", n)
			}
			// An appid bound to nobody is looked up (it may have been bound
			// through another replica a moment ago): one revision read at
			// most per request, coalesced and spaced under load.
			queries.reset()
			for range 20 {
				f.tenantCall(http.MethodGet, "/v1/_probe/authorizers/wxffffffffffffffff", key)
			}
			if n := queries.load(); n > 20 {
				t.Fatalf("%d store queries for 20 requests naming an unbound account, want at most one each", n)
			}
			// Last use is recorded in memory and written later, in one batch.
			if len(f.svc.LastUsed.Pending()) != 2 {
				t.Fatalf("pending last-use marks = %v", f.svc.LastUsed.Pending())
			}
		})
	}
}

func TestAdminTokenRefusals(t *testing.T) {
	f := newTenantFixture(t, store.SQLite)
	for _, tc := range []struct{ name, header string }{
		{"missing", ""},
		{"wrong", "Bearer " + strings.Repeat("x", len(tfAdminToken))},
		{"prefix of the right one", "Bearer " + tfAdminToken[:len(tfAdminToken)-1]},
		{"right one plus a byte", "Bearer " + tfAdminToken + "x"},
		{"wrong scheme", "Basic " + tfAdminToken},
		{"a tenant key", "Bearer " + forgeJWT(t, map[string]any{"alg": "HS256"}, map[string]any{}, realJWTKey(t))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(http.MethodGet, "/admin/tenants", nil, "Authorization", tc.header)
			if w.Code != http.StatusUnauthorized || strings.TrimSpace(w.Body.String()) != unauthenticatedBody {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
	if w := f.admin(http.MethodGet, "/admin/tenants", nil); w.Code != http.StatusOK {
		t.Fatalf("right token: %d %s", w.Code, w.Body)
	}
	if w := f.do(http.MethodGet, "/admin/tenants", nil, "Authorization", "bearer "+tfAdminToken); w.Code != http.StatusOK {
		t.Fatalf("lower-case scheme: %d %s", w.Code, w.Body)
	}
	if f.authFailures(surfaceAdmin, tenant.ReasonInvalid) != 4 {
		t.Errorf("admin failures counted: %v", f.authFailures(surfaceAdmin, tenant.ReasonInvalid))
	}
}
