package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// PushTicket pushes a component_verify_ticket to the primary platform
// (see Platform.PushTicket).
func (s *Simulator) PushTicket(ctx context.Context) (string, error) { return s.primary.PushTicket(ctx) }

// PushTicket mints a fresh component_verify_ticket of this platform, makes
// it acceptable to its api_component_token for TicketLifetime, and pushes it
// synchronously to its EventURL (with retries). It returns the ticket, and
// an error wrapping ErrPush if the push was not answered "success" (the
// ticket stays valid anyway). Without an EventURL nothing is pushed.
func (p *Platform) PushTicket(ctx context.Context) (string, error) {
	ticket := newTicket()
	s := p.s
	now := s.now()
	s.mu.Lock()
	p.tickets[ticket] = now
	p.ticketOrder = append(p.ticketOrder, ticket)
	if len(p.ticketOrder) > maxTicketsKept {
		delete(p.tickets, p.ticketOrder[0])
		p.ticketOrder = append(p.ticketOrder[:0], p.ticketOrder[1:]...)
	}
	s.mu.Unlock()
	return ticket, p.push(ctx, wxcrypt.Event{
		AppID:                 p.appid,
		CreateTime:            now.Unix(),
		InfoType:              wxcrypt.InfoTypeVerifyTicket,
		ComponentVerifyTicket: ticket,
	})
}

// push delivers an event to the platform's EventURL, retrying PushRetries
// times after PushRetryDelay when it is not answered exactly "success" with
// HTTP 200.
func (p *Platform) push(ctx context.Context, ev wxcrypt.Event) error {
	if p.eventURL == nil {
		return nil
	}
	s := p.s
	plain := wxcrypt.EncodeEvent(ev)
	var last error
	for attempt := 0; attempt <= s.opts.PushRetries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(s.opts.PushRetryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				s.recordPush(p, ev.InfoType, func(c *PushCounts) { c.Failed++ })
				return fmt.Errorf("sim: push %s event: %w: %w (last attempt: %w)", ev.InfoType, ErrPush, ctx.Err(), last)
			case <-t.C:
			}
		}
		s.recordPush(p, ev.InfoType, func(c *PushCounts) { c.Attempts++ })
		if last = p.pushOnce(ctx, plain); last == nil {
			s.recordPush(p, ev.InfoType, func(c *PushCounts) { c.Delivered++ })
			s.log.Info("sim: pushed event", "component_appid", p.appid, "info_type", ev.InfoType, "authorizer_appid", ev.AuthorizerAppid, "attempt", attempt+1)
			return nil
		}
		s.log.Warn("sim: event push not answered success", "component_appid", p.appid, "info_type", ev.InfoType, "attempt", attempt+1, "err", last)
	}
	s.recordPush(p, ev.InfoType, func(c *PushCounts) { c.Failed++ })
	return fmt.Errorf("sim: push %s event after %d attempts: %w: %w", ev.InfoType, s.opts.PushRetries+1, ErrPush, last)
}

// pushOnce makes one signed, encrypted POST of an event, as WeChat does:
// EventURL?signature=&timestamp=&nonce=&encrypt_type=aes&msg_signature=.
func (p *Platform) pushOnce(ctx context.Context, plain []byte) error {
	timestamp := strconv.FormatInt(p.s.now().Unix(), 10)
	nonce := newNonce()
	body, msgSig, err := p.crypter.SealEvent(plain, timestamp, nonce)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	u := *p.eventURL
	q := u.Query()
	q.Set("signature", p.crypter.SignURL(timestamp, nonce))
	q.Set("timestamp", timestamp)
	q.Set("nonce", nonce)
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", msgSig)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "Mozilla/4.0 (wxgate-sim)")
	resp, err := p.s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || string(answer) != "success" {
		return fmt.Errorf("answered HTTP %d %q, want 200 \"success\"", resp.StatusCode, truncate(answer, 64))
	}
	return nil
}

// newNonce returns a random decimal nonce like WeChat's.
func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:])%9_000_000_000+1_000_000_000, 10)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
