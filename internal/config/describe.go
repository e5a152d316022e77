package config

import (
	"bufio"
	"bytes"
	"strings"
)

// Setting is one environment variable as `wxgate serve --help` lists it.
type Setting struct {
	Env, Default, Doc string
	Required          bool
}

// Describe lists every setting in declaration order, with its default,
// whether serve requires it, and the explanation from the example
// configuration file (the comment block that starts with the variable's name).
func Describe(example []byte) []Setting {
	docs := exampleDocs(example)
	out := make([]Setting, len(keys))
	for i, k := range keys {
		out[i] = Setting{Env: k.env, Default: k.def, Doc: docs[k.env], Required: k.need&NeedGateway != 0}
	}
	return out
}

// exampleDocs reads "# WXGATE_X (required): text" blocks: the text after the
// colon plus the comment lines that follow, up to the next non-comment line
// or the next variable.
func exampleDocs(example []byte) map[string]string {
	docs := map[string]string{}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(example))
	for sc.Scan() {
		line, isComment := strings.CutPrefix(strings.TrimSpace(sc.Text()), "#")
		if !isComment {
			cur = ""
			continue
		}
		line = strings.TrimSpace(line)
		if name, rest, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(name, "WXGATE_") {
			name, _, _ = strings.Cut(name, " ")
			cur = name
			docs[cur] = strings.TrimSpace(rest)
			continue
		}
		if cur != "" && !strings.HasPrefix(line, cur) && !isYAMLKey(line) {
			docs[cur] += " " + line
		}
	}
	return docs
}

// isYAMLKey reports whether a comment line is a commented-out "key: value".
func isYAMLKey(line string) bool {
	k, _, ok := strings.Cut(line, ":")
	return ok && k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyz_") == ""
}
