package faultnet

import (
	"io"
	"net/netip"
	"syscall"
)

// hold binds a socket to addr without listening on it: connections to addr
// are refused, as when nothing listens, but no other socket can bind it
// (no SO_REUSEADDR), neither by name nor as a free port. It returns nil if
// the port cannot be held.
func hold(addr string) io.Closer {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		_ = syscall.Close(fd)
		return nil
	}
	return heldPort(fd)
}

type heldPort int

func (h heldPort) Close() error { return syscall.Close(int(h)) }
