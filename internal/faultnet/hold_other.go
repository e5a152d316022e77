//go:build !linux

package faultnet

import "io"

// hold cannot keep the port on this system: a cut port is merely closed.
func hold(string) io.Closer { return nil }
