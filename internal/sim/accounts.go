package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// AccountSpec describes a simulated Official Account.
type AccountSpec struct {
	// AppID is the account's appid (required, unique).
	AppID string `json:"appid" yaml:"appid"`
	// NickName is shown on the authorization page and by
	// api_get_authorizer_info (default "Simulated <appid>").
	NickName string `json:"nick_name,omitempty" yaml:"nick_name,omitempty"`
	// UserName is the account's original id, gh_… (default: derived
	// from the appid). It is the ToUserName of its followers' messages.
	UserName string `json:"user_name,omitempty" yaml:"user_name,omitempty"`
	// Followers is the number of followers, 0..MaxFollowers. They cost no memory.
	Followers int `json:"followers" yaml:"followers"`
	// Tags are the account's user tags.
	Tags []TagSpec `json:"tags,omitempty" yaml:"tags,omitempty"`
	// PermissionSets are the permission set ids the account grants when it
	// authorizes the platform. nil means the default {1, 2}; an empty,
	// non-nil list grants nothing (user APIs then answer 61007).
	PermissionSets []int `json:"permission_sets" yaml:"permission_sets"`
	// LacksAPI marks an account that lacks the user APIs itself (e.g. not
	// verified): user/get and user/tag/get answer 48001.
	LacksAPI bool `json:"lacks_api,omitempty" yaml:"lacks_api,omitempty"`
	// DailyQuota overrides Options.DailyQuota for this account (0 = the
	// simulator's; -1 = unlimited).
	DailyQuota int `json:"daily_quota,omitempty" yaml:"daily_quota,omitempty"`
}

// TagSpec describes a user tag: the followers with index in [From, To) are
// its members.
type TagSpec struct {
	// ID is the tag id used by user/tag/get's tagid.
	ID int `json:"id" yaml:"id"`
	// Name is the tag's name (default "tag<ID>").
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// From is the index of the first member follower.
	From int `json:"from" yaml:"from"`
	// To is one past the index of the last member follower (≤ Followers).
	To int `json:"to" yaml:"to"`
}

// AccountInfo is the state of a simulated account, as reported by Account,
// Accounts and GET /sim/accounts, seen from one platform: PermissionSets,
// Authorized and AuthTime are the account's authorization of that platform
// (the primary one unless asked otherwise).
type AccountInfo struct {
	AccountSpec
	// Authorized reports whether the account currently authorizes the platform.
	Authorized bool `json:"authorized"`
	// AuthTime is when it first authorized (zero if never, or since unauthorized).
	AuthTime time.Time `json:"auth_time,omitzero"`
	// QuotaUsed counts today's calls per cgi path.
	QuotaUsed map[string]int `json:"quota_used,omitempty"`
	// ClearsUsed counts this month's successful clear_quota calls.
	ClearsUsed int `json:"clears_used,omitempty"`
}

// account is the mutable state of a simulated account, guarded by Simulator.mu
// (codec is immutable). It is WeChat's, shared by every platform; its
// authorization of each platform is that platform's grant.
type account struct {
	spec      AccountSpec
	codec     *openidCodec
	tags      map[int]TagSpec
	quotaDay  int64
	quotaUsed map[string]int
	// clearMonth is the Beijing month (year*12+month) clearsUsed counts in.
	clearMonth int64
	clearsUsed int
}

func defaultPermissionSets() []int { return []int{1, 2} }

// userName is the account's original id (gh_…).
func (a *account) userName() string {
	if a.spec.UserName != "" {
		return a.spec.UserName
	}
	return "gh_" + string(a.codec.prefix[1:]) + "sim"
}

// validate checks and normalizes a spec (defaults filled in, slices copied).
// wellFormedAppID is the shape of every appid WeChat issues: "wx" and 16
// letters or digits.
func wellFormedAppID(s string) bool {
	if len(s) != 18 || !strings.HasPrefix(s, "wx") {
		return false
	}
	return strings.IndexFunc(s[2:], func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0
}

func (spec AccountSpec) normalized() (AccountSpec, error) {
	var problems []string
	if spec.AppID == "" {
		problems = append(problems, "appid is required")
	} else if !wellFormedAppID(spec.AppID) {
		problems = append(problems, fmt.Sprintf("appid %q is malformed: WeChat's appids are \"wx\" followed by 16 letters or digits", spec.AppID))
	}
	if spec.Followers < 0 || spec.Followers > MaxFollowers {
		problems = append(problems, fmt.Sprintf("followers %d is outside 0..%d", spec.Followers, MaxFollowers))
	}
	if spec.DailyQuota < -1 {
		problems = append(problems, fmt.Sprintf("daily_quota %d must be -1 (unlimited), 0 (default) or positive", spec.DailyQuota))
	}
	if spec.PermissionSets == nil {
		spec.PermissionSets = defaultPermissionSets()
	} else {
		spec.PermissionSets = slices.Clone(spec.PermissionSets)
	}
	for _, id := range spec.PermissionSets {
		if id <= 0 {
			problems = append(problems, fmt.Sprintf("permission set id %d must be positive", id))
		}
	}
	spec.Tags = slices.Clone(spec.Tags)
	seen := make(map[int]bool, len(spec.Tags))
	for i, t := range spec.Tags {
		if t.ID < 0 || seen[t.ID] {
			problems = append(problems, fmt.Sprintf("tag id %d must be unique and not negative", t.ID))
		}
		seen[t.ID] = true
		if t.From < 0 || t.From > t.To || t.To > spec.Followers {
			problems = append(problems, fmt.Sprintf("tag %d range [%d,%d) must be within [0,%d)", t.ID, t.From, t.To, spec.Followers))
		}
		if t.Name == "" {
			spec.Tags[i].Name = fmt.Sprintf("tag%d", t.ID)
		}
	}
	if spec.NickName == "" {
		spec.NickName = "Simulated " + spec.AppID
	}
	if len(problems) > 0 {
		return AccountSpec{}, fmt.Errorf("%w: account %q: %s", ErrInvalid, spec.AppID, strings.Join(problems, "; "))
	}
	return spec, nil
}

// CreateAccount adds a simulated account. It answers ErrInvalid for a bad
// spec and ErrAccountExists if the appid is taken.
func (s *Simulator) CreateAccount(spec AccountSpec) error {
	spec, err := spec.normalized()
	if err != nil {
		return err
	}
	a := &account{spec: spec, codec: newOpenIDCodec(spec.AppID), tags: make(map[int]TagSpec, len(spec.Tags)), quotaUsed: make(map[string]int)}
	for _, t := range spec.Tags {
		a.tags[t.ID] = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[spec.AppID]; ok {
		return fmt.Errorf("%w: %s", ErrAccountExists, spec.AppID)
	}
	s.accounts[spec.AppID] = a
	s.order = append(s.order, a)
	return nil
}

// SetFollowers changes an account's follower count (WeChat's total may
// change between pages). Tags keep their ranges, clipped to the followers.
func (s *Simulator) SetFollowers(appid string, followers int) error {
	if followers < 0 || followers > MaxFollowers {
		return fmt.Errorf("%w: followers %d is outside 0..%d", ErrInvalid, followers, MaxFollowers)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.accountLocked(appid)
	if err != nil {
		return err
	}
	a.spec.Followers = followers
	return nil
}

// ResetQuota sets the account's daily quota usage back to zero (like
// WeChat's clear_quota).
func (s *Simulator) ResetQuota(appid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.accountLocked(appid)
	if err != nil {
		return err
	}
	clear(a.quotaUsed)
	return nil
}

// Account returns the state of one account, seen from the primary platform.
func (s *Simulator) Account(appid string) (AccountInfo, error) { return s.primary.Account(appid) }

// Accounts returns the state of every account, in creation order, seen
// from the primary platform.
func (s *Simulator) Accounts() []AccountInfo { return s.primary.Accounts() }

// Account returns the state of one account, seen from this platform.
func (p *Platform) Account(appid string) (AccountInfo, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	a, err := p.s.accountLocked(appid)
	if err != nil {
		return AccountInfo{}, err
	}
	return p.infoLocked(a), nil
}

// Accounts returns the state of every account, in creation order, seen
// from this platform.
func (p *Platform) Accounts() []AccountInfo {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	out := make([]AccountInfo, 0, len(p.s.order))
	for _, a := range p.s.order {
		out = append(out, p.infoLocked(a))
	}
	return out
}

func (p *Platform) infoLocked(a *account) AccountInfo {
	now := p.s.now()
	spec := a.spec
	spec.Tags = slices.Clone(spec.Tags)
	spec.PermissionSets = slices.Clone(p.setsLocked(a))
	info := AccountInfo{AccountSpec: spec}
	if g := p.authorizedLocked(a.spec.AppID); g != nil {
		info.Authorized, info.AuthTime = true, g.authTime
	}
	if a.clearMonth == quotaMonth(now) {
		info.ClearsUsed = a.clearsUsed
	}
	if a.quotaDay == quotaDay(now) && len(a.quotaUsed) > 0 {
		info.QuotaUsed = make(map[string]int, len(a.quotaUsed))
		for k, v := range a.quotaUsed {
			info.QuotaUsed[k] = v
		}
	}
	return info
}

func (s *Simulator) accountLocked(appid string) (*account, error) {
	a, ok := s.accounts[appid]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAccount, appid)
	}
	return a, nil
}

// beijing is WeChat's quota day: quotas reset at midnight UTC+8.
const beijingOffset = 8 * 3600

func quotaDay(t time.Time) int64 {
	sec := t.Unix() + beijingOffset
	if sec < 0 {
		return (sec+1)/86400 - 1
	}
	return sec / 86400
}

// quotaLimit answers the account's daily limit for a cgi path (-1 = unlimited).
func (s *Simulator) quotaLimit(a *account) int {
	if a.spec.DailyQuota != 0 {
		return a.spec.DailyQuota
	}
	return s.opts.DailyQuota
}

// quotaUsedLocked rolls the usage over at the day boundary and answers today's use.
func (a *account) quotaUsedLocked(cgiPath string, now time.Time) int {
	if d := quotaDay(now); d != a.quotaDay {
		a.quotaDay = d
		clear(a.quotaUsed)
	}
	return a.quotaUsed[cgiPath]
}

// spendQuotaLocked spends one call of the account's quota for cgiPath,
// answering false (45009) when today's quota is spent.
func (s *Simulator) spendQuotaLocked(a *account, cgiPath string, now time.Time) bool {
	used := a.quotaUsedLocked(cgiPath, now)
	if limit := s.quotaLimit(a); limit >= 0 && used >= limit {
		return false
	}
	a.quotaUsed[cgiPath] = used + 1
	return true
}

// seedFile is the object form of a seed file.
type seedFile struct {
	Accounts []AccountSpec `json:"accounts" yaml:"accounts"`
}

// LoadSeed reads accounts to preload from a YAML or JSON file (JSON if the
// name ends in .json). The file is either a list of accounts or an object
// {"accounts": [...]}; unknown keys are errors. Every spec is validated.
func LoadSeed(path string) ([]AccountSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: load seed: %w", err)
	}
	specs, err := parseSeed(data, strings.EqualFold(filepath.Ext(path), ".json"))
	if err != nil {
		return nil, fmt.Errorf("sim: load seed %s: %w", path, err)
	}
	seen := make(map[string]bool, len(specs))
	var problems []error
	for i, spec := range specs {
		if _, err := spec.normalized(); err != nil {
			problems = append(problems, fmt.Errorf("account #%d: %w", i+1, err))
		}
		if seen[spec.AppID] {
			problems = append(problems, fmt.Errorf("account #%d: %w: %s appears twice", i+1, ErrInvalid, spec.AppID))
		}
		seen[spec.AppID] = true
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("sim: load seed %s: %w", path, errors.Join(problems...))
	}
	return specs, nil
}

func parseSeed(data []byte, isJSON bool) ([]AccountSpec, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if trimmed[0] == '[' {
			var specs []AccountSpec
			if err := dec.Decode(&specs); err != nil {
				return nil, err
			}
			return specs, nil
		}
		var f seedFile
		if err := dec.Decode(&f); err != nil {
			return nil, err
		}
		return f.Accounts, nil
	}
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if len(node.Content) > 0 && node.Content[0].Kind == yaml.SequenceNode {
		var specs []AccountSpec
		if err := dec.Decode(&specs); err != nil {
			return nil, err
		}
		return specs, nil
	}
	var f seedFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	return f.Accounts, nil
}
