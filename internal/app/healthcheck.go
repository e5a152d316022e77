package app

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// runHealthcheck probes a URL and fails unless it answers 200: the
// container health check (the runtime image has no curl).
func runHealthcheck(ctx context.Context, args []string, _ Env, stdio IO) error {
	fs := newFlags("healthcheck", "Exit 0 if URL answers 200 within the timeout (for container health checks).", stdio)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "`URL` to probe")
	timeout := fs.Duration("timeout", 2*time.Second, "probe timeout")
	if done, err := parse(fs, args); done {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	return nil
}
