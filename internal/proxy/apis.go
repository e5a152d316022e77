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
	// RESTPath is the route under /v1 (gin syntax); its export form appends "/export".
	RESTPath string
	// RequiredSets: the account must have granted any one of these permission sets.
	RequiredSets []int
	// Params are the inputs, in the order they are encoded.
	Params []Param
	// Cursor names the paging parameter; the page answer carries the next
	// value under the same name, and an empty value or count 0 ends the walk.
	Cursor string
}

// nextOpenID is the cursor of both follower lists (docs/wechat.md, "Paging").
var nextOpenID = Param{Name: "next_openid", Kind: KindOpenID, WeChatErrcode: wechat.ErrInvalidOpenID}

// APIs is the table of proxied APIs (WeChat's getFans and getTagFans pages, linked from docs/wechat.md, "Sources").
var APIs = []*API{
	{
		Name:         "getFans",
		Summary:      "List the account's followers, 10000 openids a page.",
		Method:       "GET",
		Path:         "/cgi-bin/user/get",
		RESTPath:     "/authorizers/:appid/fans",
		RequiredSets: []int{2, 100},
		Params:       []Param{nextOpenID},
		Cursor:       "next_openid",
	},
	{
		Name:         "getTagFans",
		Summary:      "List the followers under a tag, 10000 openids a page.",
		Method:       "POST",
		Path:         "/cgi-bin/user/tag/get",
		RESTPath:     "/authorizers/:appid/tags/:tagid/fans",
		RequiredSets: []int{2, 100},
		Params: []Param{
			{Name: "tagid", Kind: KindPositiveInt, Required: true, InPath: true, WeChatErrcode: wechat.ErrInvalidTagID},
			nextOpenID,
		},
		Cursor: "next_openid",
	},
}
