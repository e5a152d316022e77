package wechat

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// Component API names (their path below /cgi-bin/component/ and their
// metric label).
const (
	APIComponentToken     = "api_component_token"
	APICreatePreAuthCode  = "api_create_preauthcode"
	APIQueryAuth          = "api_query_auth"
	APIAuthorizerToken    = "api_authorizer_token"
	APIGetAuthorizerInfo  = "api_get_authorizer_info"
	APIGetAuthorizerList  = "api_get_authorizer_list"
	componentPathPrefix   = "/cgi-bin/component/"
	maxAuthorizerListPage = 500
)

// ComponentToken is an answer of api_component_token.
type ComponentToken struct {
	Token     secret.Value
	ExpiresIn time.Duration
}

// PreAuthCode is an answer of api_create_preauthcode.
type PreAuthCode struct {
	Code      secret.Value
	ExpiresIn time.Duration
}

// Authorization is an answer of api_query_auth: the account's tokens and
// the permission sets it granted.
type Authorization struct {
	AppID          string
	AccessToken    secret.Value
	RefreshToken   secret.Value
	ExpiresIn      time.Duration
	PermissionSets []int
}

// AuthorizerToken is an answer of api_authorizer_token.
type AuthorizerToken struct {
	AccessToken  secret.Value
	RefreshToken secret.Value
	ExpiresIn    time.Duration
}

// AuthorizerInfo is the part of api_get_authorizer_info the gateway keeps.
// PermissionSets is nil when WeChat sent no authorization_info.
type AuthorizerInfo struct {
	NickName       string
	PermissionSets []int
	// Authorized is false when WeChat sent no authorization_info (the
	// account no longer authorizes the platform).
	Authorized bool
}

// ListedAuthorizer is one entry of api_get_authorizer_list.
type ListedAuthorizer struct {
	AppID        string
	RefreshToken secret.Value // may be empty
	AuthTime     time.Time
}

// AuthorizerList is one page of api_get_authorizer_list.
type AuthorizerList struct {
	Total int
	List  []ListedAuthorizer
}

type funcInfoJSON struct {
	FuncscopeCategory struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

func setsOf(fi []funcInfoJSON) []int {
	out := make([]int, 0, len(fi))
	for _, f := range fi {
		if f.FuncscopeCategory.ID != 0 {
			out = append(out, f.FuncscopeCategory.ID)
		}
	}
	return out
}

// component posts a component API call and decodes its success answer into
// out. An errcode answer becomes AsError's *errs.Error.
func (c *Client) component(ctx context.Context, api string, token secret.Value, in map[string]any, out any) error {
	in["component_appid"] = c.opts.ComponentAppID
	body, err := json.Marshal(in)
	if err != nil {
		return errs.Wrap(errs.Internal, "internal error", fmt.Errorf("wechat: encode %s: %w", api, err))
	}
	resp, err := c.Call(ctx, Request{API: api, Method: "POST", Path: componentPathPrefix + api, Body: body, ComponentToken: token})
	if err != nil {
		return err
	}
	if resp.Errcode != 0 {
		return AsError(resp.Errcode, resp.Errmsg)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return errs.Wrap(errs.UpstreamError, "WeChat answered a body the gateway cannot read", fmt.Errorf("wechat: decode %s: %w", api, err))
	}
	return nil
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// GetComponentToken exchanges the newest component_verify_ticket for a
// component_access_token (api_component_token).
func (c *Client) GetComponentToken(ctx context.Context, ticket secret.Value) (ComponentToken, error) {
	var out struct {
		Token     string `json:"component_access_token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	err := c.component(ctx, APIComponentToken, "", map[string]any{
		"component_appsecret":     c.opts.ComponentSecret.Reveal(),
		"component_verify_ticket": ticket.Reveal(),
	}, &out)
	if err != nil {
		return ComponentToken{}, err
	}
	if out.Token == "" || out.ExpiresIn <= 0 {
		return ComponentToken{}, errs.E(errs.UpstreamError, "WeChat answered api_component_token without a token")
	}
	return ComponentToken{Token: secret.Value(out.Token), ExpiresIn: seconds(out.ExpiresIn)}, nil
}

// CreatePreAuthCode gets a pre_auth_code (api_create_preauthcode).
func (c *Client) CreatePreAuthCode(ctx context.Context, componentToken secret.Value) (PreAuthCode, error) {
	var out struct {
		Code      string `json:"pre_auth_code"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := c.component(ctx, APICreatePreAuthCode, componentToken, map[string]any{}, &out); err != nil {
		return PreAuthCode{}, err
	}
	if out.Code == "" {
		return PreAuthCode{}, errs.E(errs.UpstreamError, "WeChat answered api_create_preauthcode without a code")
	}
	if out.ExpiresIn <= 0 {
		out.ExpiresIn = 600
	}
	return PreAuthCode{Code: secret.Value(out.Code), ExpiresIn: seconds(out.ExpiresIn)}, nil
}

// QueryAuth exchanges a one-time authorization code for the account's
// tokens and granted sets (api_query_auth). A code used twice answers
// 61009 (upstream_error).
func (c *Client) QueryAuth(ctx context.Context, componentToken, authCode secret.Value) (Authorization, error) {
	var out struct {
		Info struct {
			AppID        string         `json:"authorizer_appid"`
			AccessToken  string         `json:"authorizer_access_token"`
			ExpiresIn    int64          `json:"expires_in"`
			RefreshToken string         `json:"authorizer_refresh_token"`
			FuncInfo     []funcInfoJSON `json:"func_info"`
		} `json:"authorization_info"`
	}
	if err := c.component(ctx, APIQueryAuth, componentToken, map[string]any{"authorization_code": authCode.Reveal()}, &out); err != nil {
		return Authorization{}, err
	}
	if out.Info.AppID == "" || out.Info.AccessToken == "" {
		return Authorization{}, errs.E(errs.UpstreamError, "WeChat answered api_query_auth without authorization_info")
	}
	return Authorization{
		AppID: out.Info.AppID, AccessToken: secret.Value(out.Info.AccessToken), RefreshToken: secret.Value(out.Info.RefreshToken),
		ExpiresIn: seconds(out.Info.ExpiresIn), PermissionSets: setsOf(out.Info.FuncInfo),
	}, nil
}

// RefreshAuthorizerToken gets a new access token for an account from its
// refresh token (api_authorizer_token). 61023 means the refresh token is
// no longer valid.
func (c *Client) RefreshAuthorizerToken(ctx context.Context, componentToken secret.Value, appid string, refreshToken secret.Value) (AuthorizerToken, error) {
	var out struct {
		AccessToken  string `json:"authorizer_access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	err := c.component(ctx, APIAuthorizerToken, componentToken, map[string]any{
		"authorizer_appid": appid, "authorizer_refresh_token": refreshToken.Reveal(),
	}, &out)
	if err != nil {
		return AuthorizerToken{}, err
	}
	if out.AccessToken == "" || out.ExpiresIn <= 0 {
		return AuthorizerToken{}, errs.E(errs.UpstreamError, "WeChat answered api_authorizer_token without a token")
	}
	t := AuthorizerToken{AccessToken: secret.Value(out.AccessToken), RefreshToken: secret.Value(out.RefreshToken), ExpiresIn: seconds(out.ExpiresIn)}
	if t.RefreshToken.IsZero() {
		t.RefreshToken = refreshToken
	}
	return t, nil
}

// GetAuthorizerInfo reads an account's nick name and granted sets
// (api_get_authorizer_info).
func (c *Client) GetAuthorizerInfo(ctx context.Context, componentToken secret.Value, appid string) (AuthorizerInfo, error) {
	var out struct {
		Info struct {
			NickName string `json:"nick_name"`
		} `json:"authorizer_info"`
		Auth *struct {
			FuncInfo []funcInfoJSON `json:"func_info"`
		} `json:"authorization_info"`
	}
	if err := c.component(ctx, APIGetAuthorizerInfo, componentToken, map[string]any{"authorizer_appid": appid}, &out); err != nil {
		return AuthorizerInfo{}, err
	}
	info := AuthorizerInfo{NickName: out.Info.NickName}
	if out.Auth != nil {
		info.Authorized = true
		info.PermissionSets = setsOf(out.Auth.FuncInfo)
	}
	return info, nil
}

// GetAuthorizerList reads one page of the accounts that authorized the
// platform (api_get_authorizer_list); count is capped at 500.
func (c *Client) GetAuthorizerList(ctx context.Context, componentToken secret.Value, offset, count int) (AuthorizerList, error) {
	if count <= 0 || count > maxAuthorizerListPage {
		count = maxAuthorizerListPage
	}
	var out struct {
		Total int `json:"total_count"`
		List  []struct {
			AppID        string `json:"authorizer_appid"`
			RefreshToken string `json:"refresh_token"`
			AuthTime     int64  `json:"auth_time"`
		} `json:"list"`
	}
	if err := c.component(ctx, APIGetAuthorizerList, componentToken, map[string]any{"offset": offset, "count": count}, &out); err != nil {
		return AuthorizerList{}, err
	}
	l := AuthorizerList{Total: out.Total, List: make([]ListedAuthorizer, 0, len(out.List))}
	for _, a := range out.List {
		la := ListedAuthorizer{AppID: a.AppID, RefreshToken: secret.Value(a.RefreshToken)}
		if a.AuthTime > 0 {
			la.AuthTime = time.Unix(a.AuthTime, 0).UTC()
		}
		l.List = append(l.List, la)
	}
	return l, nil
}

// FindRefreshToken pages through api_get_authorizer_list for appid and
// returns the refresh token WeChat holds for it ("" when the account is not
// listed: it does not authorize the platform).
func (c *Client) FindRefreshToken(ctx context.Context, componentToken secret.Value, appid string) (secret.Value, error) {
	for offset := 0; ; {
		page, err := c.GetAuthorizerList(ctx, componentToken, offset, maxAuthorizerListPage)
		if err != nil {
			return "", err
		}
		for _, l := range page.List {
			if l.AppID == appid {
				return l.RefreshToken, nil
			}
		}
		offset += len(page.List)
		if len(page.List) == 0 || offset >= page.Total {
			return "", nil
		}
	}
}
