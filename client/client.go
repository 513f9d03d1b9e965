// Package client calls the sync-user-symbols function the way the app does: a JSON POST to
// <url>/functions/v1/sync-user-symbols with the project's key as bearer. It works against this
// service and against a hosted Supabase project alike. Go programs that want typed RPCs instead
// can use the generated Connect client in gen/symbolsync/v1/symbolsyncv1connect.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultURL is the API of `backfill dev` (and of `supabase start`).
const DefaultURL = "http://127.0.0.1:54321"

// Config configures [New].
type Config struct {
	// URL is the project's API URL. Default DefaultURL.
	URL string
	// Key is the project's anon or publishable key (or a service key). Required.
	Key string
	// AccessToken is a signed-in user's access token; when set the interest is the user's,
	// otherwise anonymous. Default: none.
	AccessToken string
	// HTTPClient sends the requests. Default: a client with a 30s timeout.
	HTTPClient *http.Client
}

// Client calls sync-user-symbols.
type Client struct {
	endpoint string
	cfg      Config
	http     *http.Client
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Key == "" {
		return nil, errors.New("client: Key is required (the project's anon or publishable key)")
	}
	cfg.URL = strings.TrimRight(cmp.Or(cfg.URL, DefaultURL), "/")
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("client: URL %q must start with http:// or https://", cfg.URL)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{endpoint: cfg.URL + "/functions/v1/sync-user-symbols", cfg: cfg, http: hc}, nil
}

// SyncResult is the function's answer to a sync.
type SyncResult struct {
	Success          bool   `json:"success"`
	SymbolsTracked   int    `json:"symbols_tracked"`
	SymbolsRequested int    `json:"symbols_requested"`
	Timeframes       int    `json:"timeframes"`
	JobsUpdated      int    `json:"jobs_updated"`
	Priority         int    `json:"priority"`
	Source           string `json:"source"`
}

// UntrackResult is the function's answer to an untrack.
type UntrackResult struct {
	Success          bool   `json:"success"`
	SymbolsUntracked int    `json:"symbols_untracked"`
	SymbolsRequested int    `json:"symbols_requested"`
	Source           string `json:"source"`
}

// Error is a non-200 answer. Message is the function's {"error": …} or the gateway's
// {"message": …}.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("sync-user-symbols: %d %s", e.Status, e.Message) }

type request struct {
	Symbols    []string `json:"symbols"`
	Source     string   `json:"source"`
	Timeframes []string `json:"timeframes,omitempty"`
}

// Sync tracks symbols from source (watchlist, chart_view or recent_search) for the given
// timeframes (none: the server's default m15, h1, h4).
func (c *Client) Sync(ctx context.Context, symbols []string, source string, timeframes []string) (SyncResult, error) {
	var res SyncResult
	err := c.call(ctx, http.MethodPost, request{Symbols: symbols, Source: source, Timeframes: timeframes}, &res)
	return res, err
}

// Untrack stops tracking symbols from source.
func (c *Client) Untrack(ctx context.Context, symbols []string, source string) (UntrackResult, error) {
	var res UntrackResult
	err := c.call(ctx, http.MethodDelete, request{Symbols: symbols, Source: source}, &res)
	return res, err
}

func (c *Client) call(ctx context.Context, method string, body request, out any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	// As supabase-js: the key goes in apikey; the bearer is the user's token, else the key —
	// except new sb_ keys, which are never sent as a bearer.
	req.Header.Set("apikey", c.cfg.Key)
	switch {
	case c.cfg.AccessToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken)
	case !strings.HasPrefix(c.cfg.Key, "sb_"):
		req.Header.Set("Authorization", "Bearer "+c.cfg.Key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", c.endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		msg := cmp.Or(e.Error, e.Message, strings.TrimSpace(string(raw)), http.StatusText(resp.StatusCode))
		return &Error{Status: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", c.endpoint, err)
	}
	return nil
}
