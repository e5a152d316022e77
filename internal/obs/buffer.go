package obs

import (
	"io"
	"sync"
	"time"
)

// LineBuffer batches log lines on their way to w, so that a busy replica's
// access log costs one write system call per batch instead of one per
// request (as nginx's "access_log … buffer= flush="). Lines reach w when
// the buffer fills, every flush interval, on Flush (a logger made by
// NewLogger flushes after every warning or error) and on Close. Lines still
// buffered when the process is killed are lost: at most one interval's
// worth of informational lines.
type LineBuffer struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	err  error
	stop chan struct{}
	done chan struct{}
}

// lineBufferSize is how many bytes are buffered before a write.
const lineBufferSize = 64 << 10

// NewLineBuffer buffers writes to w and flushes them every interval until
// Close.
func NewLineBuffer(w io.Writer, every time.Duration) *LineBuffer {
	b := &LineBuffer{w: w, buf: make([]byte, 0, lineBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				_ = b.Flush()
			}
		}
	}()
	return b
}

// Write buffers p, writing the buffer out first when p does not fit. Each
// call is one log line (slog's handlers write a record at once), so lines
// are never split or interleaved. It answers the last write error, if any.
func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > cap(b.buf) {
		b.flushLocked()
		if len(p) > cap(b.buf) {
			_, err := b.w.Write(p)
			return len(p), err
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), b.err
}

// Flush writes the buffered lines out.
func (b *LineBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return b.err
}

func (b *LineBuffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	_, b.err = b.w.Write(b.buf)
	b.buf = b.buf[:0]
}

// Close stops the periodic flush and writes out what is buffered. Writes
// after Close go out at the next Flush.
func (b *LineBuffer) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	return b.Flush()
}
