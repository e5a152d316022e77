package quota

import (
	"cmp"
	"slices"
)

// AccountQuota is one account's quota of one API as this replica knows it.
type AccountQuota struct {
	AppID string
	Status
}

// Known lists the quotas this replica knows a daily limit of, with today's
// use, by appid and API, without asking WeChat or the store: the operator
// console's quota page. A limit learned before today's Beijing midnight
// stays listed with a zero CheckedAt until it is learned again; an account
// this replica never served is not listed.
func (k *Keeper) Known() []AccountQuota {
	now := k.o.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rollLocked(now)
	out := make([]AccountQuota, 0, len(k.accounts))
	for key, a := range k.accounts {
		if a.limit <= 0 {
			continue
		}
		gw := k.counts[countKey{"", key.appid, key.api}]
		if gw == nil {
			gw = &counter{}
		}
		out = append(out, AccountQuota{AppID: key.appid, Status: k.statusLocked(key.appid, key.api, a, gw, now)})
	}
	slices.SortFunc(out, func(a, b AccountQuota) int { return cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.API, b.API)) })
	return out
}

// TenantCalls returns tenantID's calls of api on appid today, as far as
// this replica knows (the deployment's count at the last sync plus its own
// since): what the operator's cap on the binding is measured against.
func (k *Keeper) TenantCalls(tenantID, appid, api string) int64 {
	if tenantID == "" {
		return 0
	}
	now := k.o.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rollLocked(now)
	if c := k.counts[countKey{tenantID, appid, api}]; c != nil {
		return c.seen()
	}
	return 0
}
