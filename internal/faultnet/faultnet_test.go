package faultnet

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestCutRefusesAndHoldsThePort: while cut, connections are refused and no
// other server can take the port (parallel tests open listeners on free
// ports all the time); after Restore the same address forwards again.
func TestCutRefusesAndHoldsThePort(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("x"))
			_ = c.Close()
		}
	}()
	f, err := Start(up.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := f.Addr()

	t.Run("cut refuses", func(t *testing.T) {
		f.Cut()
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("dial %s while cut: got a connection, want refused", addr)
		}
	})
	t.Run("cut port cannot be taken", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("the port is held only on Linux")
		}
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			t.Fatalf("listen on %s while cut: got a listener, want address in use", addr)
		}
	})
	t.Run("restore forwards on the same address", func(t *testing.T) {
		if err := f.Restore(); err != nil {
			t.Fatal(err)
		}
		if f.Addr() != addr {
			t.Fatalf("address after restore: got %s want %s", f.Addr(), addr)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "x" {
			t.Fatalf("read through the forwarder: got %q, %v want \"x\"", b, err)
		}
	})
}
