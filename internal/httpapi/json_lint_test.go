package httpapi_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAnswersAreNotHTMLEscaped keeps gin's HTML-escaping JSON renderers out
// of the API: they print & as \u0026, so a URL pasted from an answer breaks.
// Answers are written with PureJSON (or encoding/json with SetEscapeHTML
// false).
func TestAnswersAreNotHTMLEscaped(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	escaping := regexp.MustCompile(`\.(JSON|AbortWithStatusJSON|IndentedJSON|SecureJSON)\(`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if escaping.MatchString(line) {
				t.Errorf("%s:%d writes HTML-escaped JSON: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}
