package console

import (
	"cmp"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
)

// The console serves every third-party platform of the deployment: the
// accounts and quota pages show one platform at a time, picked with
// ?platform= (the default platform when absent); a tenant's pages act on
// the tenant's own platform; the overview shows the health of each.
// Links and redirects name the platform only when it is not the default,
// so a deployment of one platform keeps the URLs it always had.

var errPlatformNotFound = errs.E(errs.NotFound, "no such platform")

// platformRef names a platform on a page.
type platformRef struct {
	AppID   string
	Default bool
}

// platformPick is what a page with a platform picker shows: the platform
// picked, every platform (the picker shows when there are several), the
// query that keeps the platform in the page's links, and the page the
// picker links to.
type platformPick struct {
	Platform  platformRef
	Platforms []platformRef
	// PQ is "?platform=<appid>" for a platform other than the default, ""
	// for the default one: it follows a path in links (after a query,
	// templates write &platform= themselves, as html/template escapes an &
	// given in a query).
	PQ         string
	PickerPath string
}

// Several reports whether the deployment has more than one platform.
func (p platformPick) Several() bool { return len(p.Platforms) > 1 }

// platformParam is the platform a request names, in its query or form.
func platformParam(g *gin.Context) string {
	if v := g.Query("platform"); v != "" {
		return v
	}
	if g.Request.Method == "POST" {
		return g.PostForm("platform")
	}
	return ""
}

// platformByAppID returns a running platform; "" is the default one.
func (c *Console) platformByAppID(appid string) (PlatformView, error) {
	pf, ok := c.o.Platforms.Get(cmp.Or(appid, c.o.Platforms.DefaultAppID()))
	if !ok {
		return PlatformView{}, errPlatformNotFound
	}
	return pf, nil
}

// pickedPlatform is the platform the request names, else the default one.
func (c *Console) pickedPlatform(g *gin.Context) (PlatformView, error) {
	return c.platformByAppID(platformParam(g))
}

// tenantPlatform is the platform tenant t belongs to.
func (c *Console) tenantPlatform(t store.Tenant) (PlatformView, error) {
	return c.platformByAppID(t.ComponentAppID)
}

// accountPlatform is the platform of an account's page: the one the
// request names, else the first platform (the default first) the account
// authorized. An account authorized to two platforms has a page on each.
func (c *Console) accountPlatform(g *gin.Context, appid string) (PlatformView, store.Authorizer, error) {
	if named := platformParam(g); named != "" {
		pf, err := c.platformByAppID(named)
		if err != nil {
			return PlatformView{}, store.Authorizer{}, err
		}
		a, ok := pf.Authorizers.Get(appid)
		if !ok {
			return pf, store.Authorizer{}, errAccountNotFound
		}
		return pf, a, nil
	}
	for _, pf := range c.o.Platforms.List() {
		if a, ok := pf.Authorizers.Get(appid); ok {
			return pf, a, nil
		}
	}
	pf, err := c.platformByAppID("")
	if err != nil {
		return PlatformView{}, store.Authorizer{}, err
	}
	return pf, store.Authorizer{}, errAccountNotFound
}

// pick fills a page's platform picker for pf, linking to path.
func (c *Console) pick(pf PlatformView, path string) platformPick {
	p := platformPick{Platform: platformRef{AppID: pf.AppID, Default: pf.Default}, PickerPath: path}
	if q := platformQuery(pf); q != "" {
		p.PQ = "?" + q
	}
	p.Platforms = c.platformRefs()
	return p
}

// platformRefs lists every platform, the default first.
func (c *Console) platformRefs() []platformRef {
	var out []platformRef
	for _, o := range c.o.Platforms.List() {
		out = append(out, platformRef{AppID: o.AppID, Default: o.Default})
	}
	return out
}

// platformQuery is "platform=<appid>" for a platform other than the
// default, "" for the default one.
func platformQuery(pf PlatformView) string {
	if pf.Default || pf.AppID == "" {
		return ""
	}
	return url.Values{"platform": {pf.AppID}}.Encode()
}
