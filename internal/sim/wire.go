package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// WeChat errcodes the simulator answers (docs/wechat.md, "Error codes", plus the few WeChat
// codes for malformed calls that page does not list).
const (
	errSystem            = -1
	errInvalidCredential = 40001
	errInvalidOpenID     = 40003
	errInvalidAppID      = 40013
	errInvalidURL        = 40066
	errInvalidArgs       = 40097
	errInvalidSecret     = 40125
	errTokenMissing      = 41001
	errAppIDMissing      = 41002
	errSecretMissing     = 41004
	errExpired           = 42001
	errRequirePOST       = 43002
	errDailyQuota        = 45009
	errInvalidTag        = 45159
	errDataFormat        = 47001
	errAPIUnauthorized   = 48001
	errNotAuthorizedBy   = 61003
	errTicketExpired     = 61005
	errTicketInvalid     = 61006
	errAPINotGranted     = 61007
	errCodeInvalid       = 61009
	errCodeExpired       = 61010
	errRefreshInvalid    = 61023
	errCGIPathNotFound   = 76021
	errCGIPathMalformed  = 76003
	errAPIForbidden      = 48006
)

// Errmsg returns WeChat's errmsg for an errcode, exactly as docs/wechat.md, "Error codes"
// spells it (without the " rid: …" suffix the simulator appends).
func Errmsg(code int) string {
	switch code {
	case 0:
		return "ok"
	case errSystem:
		return "system error"
	case errInvalidCredential:
		return "invalid credential, access_token is invalid or not latest"
	case errInvalidOpenID:
		return "invalid openid"
	case errInvalidAppID:
		return "invalid appid"
	case 40014:
		return "invalid access_token"
	case errInvalidURL:
		return "invalid url"
	case errInvalidArgs:
		return "invalid args"
	case errInvalidSecret:
		return "invalid appsecret"
	case errTokenMissing:
		return "access_token missing"
	case errAppIDMissing:
		return "appid missing"
	case errSecretMissing:
		return "appsecret missing"
	case errExpired:
		return "access_token expired"
	case errRequirePOST:
		return "require POST method"
	case errDailyQuota:
		return "reach max api daily quota limit"
	case 45011:
		return "api minute-quota reach limit, must slower, retry next minute"
	case errInvalidTag:
		return "invalid tag id"
	case errDataFormat:
		return "data format error"
	case errAPIUnauthorized:
		return "api unauthorized"
	case errNotAuthorizedBy:
		return "component is not authorized by this account"
	case 61004:
		return "access clientip is not registered"
	case errTicketExpired:
		return "component ticket is expired"
	case errTicketInvalid:
		return "component ticket is invalid"
	case errAPINotGranted:
		return "api is unauthorized to component"
	case errCodeInvalid:
		return "code is invalid"
	case errCodeExpired:
		return "code is expired"
	case errRefreshInvalid:
		return "refresh_token is invalid"
	case errCGIPathNotFound:
		return "cgi_path not found, please check"
	case errCGIPathMalformed:
		return "invalid cgi_path"
	case errAPIForbidden:
		return "api forbidden for irregularities, view detail on mp.weixin.qq.com"
	default:
		return "system error"
	}
}

// jsonContentType is WeChat's exact Content-Type (docs/wechat.md, "Wire format").
const jsonContentType = "application/json; encoding=utf-8"

// writeRaw writes a WeChat JSON body with status 200 and WeChat's headers.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// marshal encodes v as compact JSON without a trailing newline and without
// HTML escaping, like WeChat.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("sim: encode json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// errBody renders {"errcode":N,"errmsg":"… rid: …"}. The rid is derived from
// the clock and a sequence number, never from request data or secrets.
func (s *Simulator) errBody(code int) []byte {
	seq := s.ridSeq.Add(1)
	b := make([]byte, 0, 128)
	b = append(b, `{"errcode":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"errmsg":`...)
	msg := fmt.Sprintf("%s rid: %08x-%08x-%08x", Errmsg(code), uint32(s.now().Unix()), uint32(seq), uint32(seq*2654435761))
	q, _ := json.Marshal(msg)
	b = append(b, q...)
	return append(b, '}')
}

// fail answers a WeChat error and counts it (for p too when the call was
// made with p's credentials).
func (s *Simulator) fail(w http.ResponseWriter, p *Platform, ep, appid string, code int) {
	s.record(p, ep, appid, code)
	writeRaw(w, http.StatusOK, s.errBody(code))
}

// ok answers a WeChat success body and counts it.
func (s *Simulator) ok(w http.ResponseWriter, p *Platform, ep, appid string, v any) {
	body, err := marshal(v)
	if err != nil {
		s.log.Error("sim: encode answer", "endpoint", ep, "err", err)
		s.fail(w, p, ep, appid, errSystem)
		return
	}
	s.record(p, ep, appid, 0)
	writeRaw(w, http.StatusOK, body)
}
