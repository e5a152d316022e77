// Package configs embeds the documented example configuration, so that
// `wxgate serve --help` explains each setting from the same text operators
// read in the file.
package configs

import _ "embed"

// Example is configs/wxgate.example.yaml.
//
//go:embed wxgate.example.yaml
var Example []byte
