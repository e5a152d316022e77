package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// Every form that posts carries the session's CSRF token (the sign-in
// form its own pairing token): a form without it would be refused with
// 403 every time it is used.
func TestEveryPostFormCarriesItsToken(t *testing.T) {
	form := regexp.MustCompile(`(?s)<form[^>]*method="post"[^>]*>(.*?)</form>`)
	names, _ := fs.Glob(templateFS, "templates/*.html")
	forms := 0
	for _, n := range names {
		b, _ := templateFS.ReadFile(n)
		for _, m := range form.FindAllStringSubmatch(string(b), -1) {
			forms++
			if !strings.Contains(m[1], `name="csrf" value="{{`) && !strings.Contains(m[1], `name="form" value="{{`) {
				t.Errorf("%s: a form without its token: %.120s", n, m[0])
			}
		}
	}
	if forms < 20 {
		t.Fatalf("found %d post forms; the pattern no longer matches the templates", forms)
	}
}
