package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"

	"golang.org/x/text/language"
)

// The console's languages: English and Simplified Chinese. The message
// catalogs are i18n/<lang>.json, one key per message, the same keys in
// each (TestCatalogsHaveTheSameKeys).
const (
	langEN = "en"
	langZH = "zh"
)

//go:embed i18n/*.json
var catalogFS embed.FS

// catalogs maps a language to its messages.
type catalogs map[string]map[string]string

func loadCatalogs() (catalogs, error) {
	out := catalogs{}
	for _, lang := range []string{langEN, langZH} {
		raw, err := catalogFS.ReadFile("i18n/" + lang + ".json")
		if err != nil {
			return nil, fmt.Errorf("console: catalog %s: %w", lang, err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("console: catalog %s: %w", lang, err)
		}
		out[lang] = m
	}
	return out, nil
}

// text returns the message key in lang, formatted with args; a missing key
// shows as itself (the catalog tests keep that from happening).
func (c catalogs) text(lang, key string, args ...any) string {
	msg, ok := c[lang][key]
	if !ok {
		if msg, ok = c[langEN][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(msg, args...)
	}
	return msg
}

var langMatcher = language.NewMatcher([]language.Tag{language.English, language.SimplifiedChinese})

// pickLang chooses the language: the one the operator switched to (a
// cookie), else the best match of Accept-Language, else English.
func pickLang(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil && (ck.Value == langEN || ck.Value == langZH) {
		return ck.Value
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return langEN
	}
	_, i, conf := langMatcher.Match(tags...)
	if i == 1 && conf != language.No {
		return langZH
	}
	return langEN
}
