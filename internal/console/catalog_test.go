package console

import (
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"testing"

	"github.com/wxgate/wxgate/internal/errs"
)

// The two catalogs must name the same messages, and every message a
// template or the code asks for must exist, or a page would show a key.
func TestCatalogsHaveTheSameKeys(t *testing.T) {
	cat, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range slices.Sorted(maps.Keys(cat[langEN])) {
		if _, ok := cat[langZH][k]; !ok {
			t.Errorf("zh lacks %q", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cat[langZH])) {
		if _, ok := cat[langEN][k]; !ok {
			t.Errorf("en lacks %q", k)
		}
	}
}

var literalKey = regexp.MustCompile(`\.T "([a-z0-9_.]+)"`)

func TestEveryMessageUsedExists(t *testing.T) {
	cat, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	need := map[string]string{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		b, _ := templateFS.ReadFile(n)
		for _, m := range literalKey.FindAllStringSubmatch(string(b), -1) {
			need[m[1]] = n
		}
	}
	// Keys the code and the templates compute.
	for _, it := range navItems {
		need[it.Key] = "nav"
		need[it.ID+".title"] = "page title"
	}
	for _, k := range []string{"signin.title", "problem.title", "done.title", "key.title", "tenant.title", "account.title"} {
		need[k] = "page title"
	}
	for _, s := range accountStatuses {
		need["status."+s] = "status"
	}
	for _, s := range deliveryStatuses {
		need["delivery."+s] = "delivery status"
	}
	for _, s := range []string{"ok", "backlog", "failing"} {
		need["webhooks.state_"+s] = "webhook state"
	}
	for _, h := range []string{"ok", "warn", "bad"} {
		need["health.ticket."+h], need["health.token."+h] = "health", "health"
	}
	for r := range usageRanges {
		need["usage.range_"+r] = "usage range"
	}
	for _, k := range permissionSetKeys {
		need[k] = "permission set"
	}
	need["quota.clear_month_used"] = "clear_quota refusal"
	for _, k := range []string{"platform", "platform.default", "platform.pick", "platform.shown", "platform.of_account", "platform.also_on",
		"tenants.platform_hint", "overview.platforms", "overview.platforms_count", "overview.totals_platforms"} {
		need[k] = "several platforms"
	}
	for _, k := range errSignInMessage {
		need[k] = "sign-in"
	}
	for _, code := range []errs.Code{errs.InvalidArgument, errs.Unauthenticated, errs.Forbidden, errs.PermissionSetMissing,
		errs.AuthorizerUnauthorized, errs.NotFound, errs.MethodNotAllowed, errs.Conflict, errs.RateLimited, errs.UpstreamError,
		errs.UpstreamUnavailable, errs.UpstreamTimeout, errs.ComponentNotReady, errs.Internal} {
		need["error."+string(code)] = "error code"
	}
	for _, f := range []string{"tenant_created", "tenant_renamed", "limits_saved", "tenant_deleted", "key_revoked", "bound",
		"unbound", "token_refreshed", "signed_out", "link_made", "approved", "refused", "return_hosts_saved", "redelivered", "quota_cleared", "cap_saved", "cap_cleared"} {
		need["flash."+f] = "flash"
	}
	for _, k := range slices.Sorted(maps.Keys(need)) {
		if _, ok := cat[langEN][k]; !ok {
			t.Errorf("%s asks for %q, which no catalog has", need[k], k)
		}
	}
}
