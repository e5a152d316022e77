package sim

import "time"

// maxTokensPerOwner bounds the tokens remembered per owner; the oldest (long
// superseded) are forgotten first and then answer 40001 like any unknown token.
const maxTokensPerOwner = 64

type tokenEntry struct {
	owner      string
	issued     time.Time
	expires    time.Time // natural expiry: 42001 from then on
	superseded bool      // a newer token was issued at some point
	until      time.Time // when superseded: 40001 from then on (if before expires)
	invalid    bool      // invalidated or killed: 40001
}

// tokenSet holds the access tokens of one kind (component or authorizer),
// with WeChat's semantics: a refresh leaves the previous token valid for the
// overlap, never past its own expiry. Callers hold Simulator.mu.
type tokenSet struct {
	byToken map[string]*tokenEntry
	byOwner map[string][]string // issue order, newest last
}

func newTokenSet() tokenSet {
	return tokenSet{byToken: make(map[string]*tokenEntry), byOwner: make(map[string][]string)}
}

// issue records a new token for owner and starts the overlap of the others.
func (ts *tokenSet) issue(owner, token string, now time.Time, lifetime, overlap time.Duration) {
	list := ts.byOwner[owner]
	for _, t := range list {
		e := ts.byToken[t]
		if !e.superseded {
			e.superseded = true
			e.until = now.Add(overlap)
		}
	}
	if len(list) >= maxTokensPerOwner {
		delete(ts.byToken, list[0])
		list = append(list[:0], list[1:]...)
	}
	ts.byToken[token] = &tokenEntry{owner: owner, issued: now, expires: now.Add(lifetime)}
	ts.byOwner[owner] = append(list, token)
}

// check answers the owner of a token and 0, or the errcode WeChat gives for
// it: 40001 unknown, invalidated or superseded past the overlap; 42001 expired.
func (ts *tokenSet) check(token string, now time.Time) (string, int) {
	e, ok := ts.byToken[token]
	if !ok || e.invalid {
		return "", errInvalidCredential
	}
	if e.superseded && !now.Before(e.until) && e.until.Before(e.expires) {
		return e.owner, errInvalidCredential
	}
	if !now.Before(e.expires) {
		return e.owner, errExpired
	}
	return e.owner, 0
}

// owner answers who a token was issued to, whatever its state ("" if unknown).
func (ts *tokenSet) owner(token string) string {
	if e, ok := ts.byToken[token]; ok {
		return e.owner
	}
	return ""
}

// current answers the newest token of owner ("" if none).
func (ts *tokenSet) current(owner string) string {
	list := ts.byOwner[owner]
	if len(list) == 0 {
		return ""
	}
	return list[len(list)-1]
}

// expireCurrent makes the newest token of owner answer 42001 from now on.
func (ts *tokenSet) expireCurrent(owner string, now time.Time) bool {
	t := ts.current(owner)
	if t == "" {
		return false
	}
	ts.byToken[t].expires = now
	return true
}

// invalidateAll makes every token of owner answer 40001.
func (ts *tokenSet) invalidateAll(owner string) bool {
	list := ts.byOwner[owner]
	for _, t := range list {
		ts.byToken[t].invalid = true
	}
	return len(list) > 0
}

// currentAge is how long ago owner's current token was issued (false if none).
func (ts *tokenSet) currentAge(owner string, now time.Time) (time.Duration, bool) {
	t := ts.current(owner)
	if t == "" {
		return 0, false
	}
	return now.Sub(ts.byToken[t].issued), true
}
