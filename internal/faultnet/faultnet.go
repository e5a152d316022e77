// Package faultnet is a loopback TCP forwarder for fault tests: put it
// between wxgate and PostgreSQL (or WeChat) and cut the link, or bring it
// back on the same address, while the system runs.
package faultnet

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Forwarder accepts on a loopback address and forwards to a target.
type Forwarder struct {
	target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	held  io.Closer // while cut: the port, bound but not listening
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Start listens on a free loopback port and forwards every connection to target.
func Start(target string) (*Forwarder, error) {
	f := &Forwarder{target: target, conns: map[net.Conn]struct{}{}}
	if err := f.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return f, nil
}

// Addr is the forwarder's address ("127.0.0.1:port"); it stays the same across Cut and Restore.
func (f *Forwarder) Addr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr
}

func (f *Forwarder) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.ln, f.addr = ln, ln.Addr().String()
	f.mu.Unlock()
	f.wg.Add(1)
	go f.accept(ln)
	return nil
}

func (f *Forwarder) accept(ln net.Listener) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		f.mu.Lock()
		f.conns[c], f.conns[up] = struct{}{}, struct{}{}
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(c, up)
		go f.pipe(up, c)
	}
}

func (f *Forwarder) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	f.mu.Lock()
	delete(f.conns, dst)
	delete(f.conns, src)
	f.mu.Unlock()
}

// Cut closes the listener and every forwarded connection: the target looks
// down (connection refused). The port stays bound, without listening, so no
// other server on the machine can take it while the link is cut (tests run
// in parallel and open listeners on free ports all the time).
func (f *Forwarder) Cut() {
	f.mu.Lock()
	if f.ln != nil {
		_ = f.ln.Close()
		f.ln = nil
		f.held = hold(f.addr)
	}
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
}

// Restore listens again on the same address.
func (f *Forwarder) Restore() error {
	f.mu.Lock()
	up := f.ln != nil
	addr := f.addr
	f.mu.Unlock()
	if up {
		return errors.New("faultnet: not cut")
	}
	f.mu.Lock()
	if f.held != nil {
		_ = f.held.Close()
		f.held = nil
	}
	f.mu.Unlock()
	return f.listen(addr)
}

// Close cuts the link and waits for the forwarding goroutines.
func (f *Forwarder) Close() {
	f.Cut()
	f.wg.Wait()
}
