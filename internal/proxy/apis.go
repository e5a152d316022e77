// Package proxy calls WeChat account APIs on a tenant's behalf: the table of
// proxied APIs, input validation, the permission-set check before the call,
// token injection with compare-and-refresh on token errors, and the page
// walker behind the streaming exports.
package proxy

import "github.com/wxgate/wxgate/internal/wechat"

// Kind says how a parameter is validated and encoded.
type Kind int

// Parameter kinds.
const (
	// KindOpenID is an openid: empty, or 1–64 characters of [A-Za-z0-9_-].
	KindOpenID Kind = iota + 1
	// KindPositiveInt is an integer ≥ 1, sent to WeChat as a JSON number.
	KindPositiveInt
	// KindCGIPath is an API path such as "/cgi-bin/user/get": a leading
	// slash, at most 128 characters of [A-Za-z0-9_/.-].
	KindCGIPath
)

// Param is one input of an API.
type Param struct {
	Name     string
	Kind     Kind
	Required bool
	// InPath: on the REST route the value is a path segment (":name"),
	// otherwise a query parameter.
	InPath bool
	// WeChatErrcode is what WeChat answers for an invalid value; the
	// compatible route answers it for values refused locally.
	WeChatErrcode int
}

// API is one proxied WeChat API. Everything else (REST route, compatible
// route, export route, permission check, metric labels, OpenAPI document)
// is derived from this declaration, so adding an API is adding an entry.
type API struct {
	// Name is WeChat's English name of the API; it is the metric and usage label.
	Name    string
	Summary string
	// Method and Path are WeChat's; the compatible route is the same under /wx/{appid}.
	Method string
	Path   string
	// RESTPath is the route under /v1 (gin syntax; "" for none); a paged
	// API's export route appends "/export".
	RESTPath string
	// CloudName is WeChat's cloud-call name of the API ("" for none):
	// POST /v1/openapi/{CloudName} with the JSON body plus "appid".
	CloudName string
	// RequiredSets: the account must have granted any one of these
	// permission sets; nil means any set at all will do.
	RequiredSets []int
	// DailyQuota: WeChat counts the API against the account's daily quota
	// (quota/get knows it by Path), so the gateway counts and refuses
	// locally when it is spent (docs/api.md, "WeChat's daily quota").
	DailyQuota bool
	// Params are the inputs, in the order they are encoded.
	Params []Param
	// Cursor names the paging parameter; the page answer carries the next
	// value under the same name, and an empty value or count 0 ends the walk.
	Cursor string
}

// nextOpenID is the cursor of both follower lists (docs/wechat.md, "Paging").
var nextOpenID = Param{Name: "next_openid", Kind: KindOpenID, WeChatErrcode: wechat.ErrInvalidOpenID}

// APIs is the table of proxied APIs (WeChat's getFans, getTagFans, getTags
// and getApiQuota pages, linked from docs/wechat.md, "Sources", give the
// permission sets and the cloud-call names).
var APIs = []*API{
	{
		Name:         "getFans",
		Summary:      "List the account's followers, 10000 openids a page.",
		Method:       "GET",
		Path:         "/cgi-bin/user/get",
		RESTPath:     "/authorizers/:appid/fans",
		CloudName:    "officialAccount.user.getList",
		RequiredSets: []int{2, 100},
		DailyQuota:   true,
		Params:       []Param{nextOpenID},
		Cursor:       "next_openid",
	},
	{
		Name:         "getTagFans",
		Summary:      "List the followers under a tag, 10000 openids a page.",
		Method:       "POST",
		Path:         "/cgi-bin/user/tag/get",
		RESTPath:     "/authorizers/:appid/tags/:tagid/fans",
		CloudName:    "officialAccount.tags.getUsers",
		RequiredSets: []int{2, 100},
		DailyQuota:   true,
		Params: []Param{
			{Name: "tagid", Kind: KindPositiveInt, Required: true, InPath: true, WeChatErrcode: wechat.ErrInvalidTagID},
			nextOpenID,
		},
		Cursor: "next_openid",
	},
	{
		Name:         "getTags",
		Summary:      "List the account's tags (id, name, count): the ids getTagFans takes.",
		Method:       "GET",
		Path:         "/cgi-bin/tags/get",
		RESTPath:     "/authorizers/:appid/tags",
		CloudName:    "officialAccount.tags.get",
		RequiredSets: []int{2, 100},
		DailyQuota:   true,
	},
	{
		Name:    "getApiQuota",
		Summary: "WeChat's daily quota of one API of the account (daily_limit, used, remain).",
		Method:  "POST",
		Path:    "/cgi-bin/openapi/quota/get",
		Params:  []Param{{Name: "cgi_path", Kind: KindCGIPath, Required: true, WeChatErrcode: wechat.ErrCGIPathMalformed}},
	},
}

// ByCloudName returns the API whose cloud-call name is name.
func ByCloudName(name string) (*API, bool) {
	for _, api := range APIs {
		if api.CloudName != "" && api.CloudName == name {
			return api, true
		}
	}
	return nil, false
}

// ByName returns the API named name.
func ByName(name string) (*API, bool) {
	for _, api := range APIs {
		if api.Name == name {
			return api, true
		}
	}
	return nil, false
}
