package tenant

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
)

// The fixed claims of every tenant key.
const (
	// ClaimIssuer is the iss of every tenant key.
	ClaimIssuer = "wxgate"
	// ClaimAudience is the aud of every tenant key: the tenant and
	// compatible APIs. A token minted for any other audience is refused.
	ClaimAudience = "wxgate-tenant-api"
	// Leeway is the clock skew tolerated on exp, nbf and iat (replicas'
	// clocks differ a little; keys are not meant to be short-lived).
	Leeway = 5 * time.Second
	// MaxKeyLength bounds what the verifier will even try to parse.
	MaxKeyLength = 4096
)

// Reasons a key is refused. They label the auth-failure metric and the log
// line; they never reach the caller, who only ever sees "unauthenticated".
const (
	ReasonMissing        = "missing"
	ReasonBadScheme      = "bad_scheme"
	ReasonMalformed      = "malformed"
	ReasonBadAlgorithm   = "bad_algorithm"
	ReasonBadSignature   = "bad_signature"
	ReasonExpired        = "expired"
	ReasonNotYetValid    = "not_yet_valid"
	ReasonWrongIssuer    = "wrong_issuer"
	ReasonWrongAudience  = "wrong_audience"
	ReasonMissingClaim   = "missing_claim"
	ReasonUnknownKey     = "unknown_key"
	ReasonRevoked        = "revoked"
	ReasonUnknownTenant  = "unknown_tenant"
	ReasonClaimsMismatch = "claims_mismatch"
	ReasonInvalid        = "invalid"
)

// AuthFailure is the cause inside every unauthenticated error Authenticate
// returns: why the key was refused, for logs and metrics only. It never
// holds the key.
type AuthFailure struct{ Reason string }

// Error names the reason.
func (f *AuthFailure) Error() string { return "tenant key refused: " + f.Reason }

// Refuse returns the unauthenticated error for reason. Its message is the
// same whatever the reason, so a caller learns nothing about why.
func Refuse(reason string) error {
	return errs.Wrap(errs.Unauthenticated, "invalid or missing credentials", &AuthFailure{Reason: reason})
}

// FailureReason returns the reason inside an error from Authenticate or
// Refuse, or "" if err carries none.
func FailureReason(err error) string {
	var f *AuthFailure
	if errors.As(err, &f) {
		return f.Reason
	}
	return ""
}

// keyClaims are a tenant key's claims: the registered ones plus the appid
// restriction (absent when the key may call every account of its tenant).
type keyClaims struct {
	jwt.RegisteredClaims
	AppIDs []string `json:"appids,omitempty"`
}

// signingKey derives the HMAC key tenant keys are signed with from the
// master key. It is independent of the at-rest key.
func signingKey(master []byte) ([]byte, error) {
	return secret.DeriveKey(master, secret.PurposeTenantJWT)
}

// Issuer signs tenant keys (HS256 JWTs) from their stored metadata.
type Issuer struct {
	key []byte
}

// NewIssuer returns an issuer over the sub-key derived from master.
func NewIssuer(master []byte) (*Issuer, error) {
	key, err := signingKey(master)
	if err != nil {
		return nil, err
	}
	return &Issuer{key: key}, nil
}

// Sign mints the key for k: sub is its tenant, jti its kid, iat its
// creation time, exp its expiry (if any) and appids its restriction.
func (i *Issuer) Sign(k store.Key) (secret.Value, error) {
	c := keyClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:   ClaimIssuer,
			Audience: jwt.ClaimStrings{ClaimAudience},
			Subject:  k.TenantID,
			ID:       k.KID,
			IssuedAt: jwt.NewNumericDate(k.CreatedAt),
		},
	}
	if k.ExpiresAt != nil {
		c.ExpiresAt = jwt.NewNumericDate(*k.ExpiresAt)
	}
	if len(k.AppIDs) > 0 {
		c.AppIDs = k.AppIDs
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.key)
	if err != nil {
		return "", errs.Wrap(errs.Internal, "internal error", err)
	}
	return secret.Value(s), nil
}

// Verifier authenticates tenant keys: it checks the JWT (algorithm pinned
// to HS256, issuer, audience, iat/nbf/exp with Leeway, jti and sub present)
// and then the in-memory directory (kid known, not revoked, not expired, its
// tenant still there). A known key costs no store query; only a validly
// signed key the directory does not know yet makes it catch up with the
// store (Directory.lookup). Last use is recorded in memory and written in
// batches by LastUsed.
type Verifier struct {
	key    []byte
	parser *jwt.Parser
	dir    *Directory
	used   *LastUsed
	now    func() time.Time
	keyFn  jwt.Keyfunc

	// seen caches the claims of keys whose signature and claims were
	// verified, by SHA-256 of the key (the key itself is not kept). A key
	// is immutable, so its claims never go stale; its time window and the
	// directory checks are still evaluated on every request. Failures are
	// never cached.
	mu   sync.RWMutex
	seen map[[sha256.Size]byte]verifiedClaims
}

// maxSeen bounds the verified-claims cache; when full it starts over.
const maxSeen = 10_000

// verifiedClaims are the claims of a verified key that later requests
// need again. Zero times are absent claims.
type verifiedClaims struct {
	tenantID, kid string
	appids        []string
	iat, nbf, exp time.Time
}

// current reports whether the claims' time window includes now, with the
// parser's rules and Leeway.
func (c *verifiedClaims) current(now time.Time) bool {
	return (c.exp.IsZero() || now.Before(c.exp.Add(Leeway))) &&
		(c.nbf.IsZero() || !now.Before(c.nbf.Add(-Leeway))) &&
		!now.Before(c.iat.Add(-Leeway))
}

// NewVerifier returns a verifier over the sub-key derived from master. used
// may be nil (last use is then not recorded).
func NewVerifier(master []byte, dir *Directory, used *LastUsed, now func() time.Time) (*Verifier, error) {
	key, err := signingKey(master)
	if err != nil {
		return nil, err
	}
	v := &Verifier{key: key, dir: dir, used: used, now: now, seen: map[[sha256.Size]byte]verifiedClaims{}}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(ClaimIssuer),
		jwt.WithAudience(ClaimAudience),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
		// One key, one spelling: non-canonical base64 is refused, so a key
		// cannot be re-spelled into many cache entries.
		jwt.WithStrictDecoding(),
	)
	v.keyFn = v.keyFunc
	return v, nil
}

// errAlgorithm is what keyFunc answers for anything but HS256 (the parser
// already refuses other algorithms; this is the second lock on the door).
var errAlgorithm = errors.New("unexpected signing method")

func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, errAlgorithm
	}
	return v.key, nil
}

// Authenticate verifies raw and returns the key's principal. Every failure
// of the key is unauthenticated with the same message; FailureReason tells
// why. A validly signed key the directory does not know is looked up in the
// store before it is refused; store_unavailable when that lookup cannot
// reach the store, or when the directory is past its staleness limit.
func (v *Verifier) Authenticate(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, Refuse(ReasonMissing)
	}
	if len(raw) > MaxKeyLength || !compactJWS(raw) {
		return Principal{}, Refuse(ReasonMalformed)
	}
	now := v.now()
	var buf [MaxKeyLength]byte
	digest := sha256.Sum256(buf[:copy(buf[:], raw)])
	v.mu.RLock()
	c, hit := v.seen[digest]
	v.mu.RUnlock()
	switch {
	case hit && !c.current(now):
		if now.Before(c.iat.Add(-Leeway)) || !c.nbf.IsZero() && now.Before(c.nbf.Add(-Leeway)) {
			return Principal{}, Refuse(ReasonNotYetValid)
		}
		return Principal{}, Refuse(ReasonExpired)
	case !hit:
		var err error
		if c, err = v.parse(raw); err != nil {
			return Principal{}, err
		}
		v.mu.Lock()
		if len(v.seen) >= maxSeen {
			clear(v.seen)
		}
		v.seen[digest] = c
		v.mu.Unlock()
	}
	// Signature, issuer, audience and algorithm are checked: from here on
	// the key is one this deployment signed. A replica cut off from the
	// store too long trusts no snapshot.
	if err := v.dir.CheckFresh(); err != nil {
		return Principal{}, err
	}
	snap := v.dir.current()
	k, ok := snap.keys[c.kid]
	if !ok {
		// Issued through another replica a moment ago, or garbage: ask the
		// store (once; a miss is remembered) before refusing.
		found, err := v.dir.lookup(ctx, "k\x00"+c.kid, true, func(s *snapshot) bool { _, ok := s.keys[c.kid]; return ok })
		if err != nil {
			return Principal{}, err
		}
		if !found {
			return Principal{}, Refuse(ReasonUnknownKey)
		}
		snap = v.dir.current()
		k = snap.keys[c.kid]
	}
	switch {
	case k.revoked:
		return Principal{}, Refuse(ReasonRevoked)
	case k.tenantID != c.tenantID || !slices.Equal(k.appids, c.appids):
		return Principal{}, Refuse(ReasonClaimsMismatch)
	}
	tn, ok := snap.tenants[k.tenantID]
	if !ok {
		return Principal{}, Refuse(ReasonUnknownTenant)
	}
	if !k.expiresAt.IsZero() && now.After(k.expiresAt.Add(Leeway)) {
		return Principal{}, Refuse(ReasonExpired)
	}
	if v.used != nil {
		v.used.Mark(c.kid, now)
	}
	return Principal{TenantID: k.tenantID, ComponentAppID: tn.componentAppID, KID: c.kid, AppIDs: k.appids}, nil
}

// compactJWS reports whether raw is spelled as a compact JWS can be: three
// base64url segments and nothing else. The base64 decoder skips CR and LF,
// so without this a key would have many spellings.
func compactJWS(raw string) bool {
	dots := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '.':
			dots++
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// parse checks the JWT itself: algorithm, signature, issuer, audience, time
// window and the claims wxgate requires.
func (v *Verifier) parse(raw string) (verifiedClaims, error) {
	var c keyClaims
	if tok, err := v.parser.ParseWithClaims(raw, &c, v.keyFn); err != nil {
		if tok != nil && tok.Header != nil && !errors.Is(err, jwt.ErrTokenMalformed) && tok.Header["alg"] != jwt.SigningMethodHS256.Alg() {
			return verifiedClaims{}, Refuse(ReasonBadAlgorithm)
		}
		return verifiedClaims{}, Refuse(jwtReason(err))
	}
	if c.ID == "" || c.Subject == "" || c.IssuedAt == nil {
		return verifiedClaims{}, Refuse(ReasonMissingClaim)
	}
	out := verifiedClaims{tenantID: c.Subject, kid: c.ID, appids: c.AppIDs, iat: c.IssuedAt.Time}
	if c.NotBefore != nil {
		out.nbf = c.NotBefore.Time
	}
	if c.ExpiresAt != nil {
		out.exp = c.ExpiresAt.Time
	}
	return out, nil
}

// jwtReason maps a parser error to a bounded reason.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, errAlgorithm):
		return ReasonBadAlgorithm
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An algorithm the library does not know ("none" without the unsafe
		// marker, made-up names).
		return ReasonBadAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonWrongAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonMissingClaim
	}
	return ReasonInvalid
}
