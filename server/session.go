package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	supabase "github.com/supabase-community/supabase-go"
)

// ErrSessionRevoked means Supabase Auth no longer accepts the token's session (signed out,
// revoked or deleted), though the token itself is still signed and unexpired.
var ErrSessionRevoked = errors.New("session is no longer valid")

// SessionChecker asks the issuer whether a user token's session is still live. A nil error means
// live; ErrSessionRevoked means refused; any other error means the answer could not be had.
type SessionChecker interface {
	CheckSession(ctx context.Context, token string) error
}

// SessionConfig configures [NewSupabaseSessions].
type SessionConfig struct {
	// SupabaseURL is the project's URL; Auth answers at SupabaseURL + /auth/v1. Required.
	SupabaseURL string
	// Key is the project's anon or publishable key, sent as apikey. Required.
	Key string
	// TTL is how long an answer is reused for the same token. Longer saves calls to Auth;
	// shorter notices a revocation sooner. Default 30s.
	TTL time.Duration
	// Timeout bounds one call to Auth. Default 5s.
	Timeout time.Duration
	// HTTPClient makes the calls (its Timeout is replaced by Timeout). Default: a new client.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// SupabaseSessions checks sessions with supabase.auth.getUser (what the original function
// called), through supabase-go's Auth client, and caches answers briefly per token.
type SupabaseSessions struct {
	cfg   SessionConfig
	http  http.Client
	mu    sync.Mutex
	cache map[[32]byte]sessionAnswer
}

type sessionAnswer struct {
	err     error
	expires time.Time
}

var _ SessionChecker = (*SupabaseSessions)(nil)

// NewSupabaseSessions returns a SessionChecker for cfg.
func NewSupabaseSessions(cfg SessionConfig) (*SupabaseSessions, error) {
	if cfg.SupabaseURL == "" || cfg.Key == "" {
		return nil, errors.New("session check: SupabaseURL and Key are required")
	}
	cfg.SupabaseURL = strings.TrimRight(cfg.SupabaseURL, "/")
	if err := checkHTTPURL(cfg.SupabaseURL); err != nil {
		return nil, fmt.Errorf("session check: supabase url: %w", err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := http.Client{}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	hc.Timeout = cfg.Timeout
	return &SupabaseSessions{cfg: cfg, http: hc, cache: map[[32]byte]sessionAnswer{}}, nil
}

// CheckSession implements SessionChecker.
func (s *SupabaseSessions) CheckSession(ctx context.Context, token string) error {
	key := sha256.Sum256([]byte(token))
	now := s.cfg.Now()
	s.mu.Lock()
	if a, ok := s.cache[key]; ok && now.Before(a.expires) {
		s.mu.Unlock()
		return a.err
	}
	s.mu.Unlock()

	err := s.ask(ctx, token)
	if err == nil || errors.Is(err, ErrSessionRevoked) {
		// Cache definite answers only: an outage must not stick for the TTL.
		s.mu.Lock()
		if len(s.cache) > 10000 {
			clear(s.cache) // bounded: tokens are short-lived anyway
		}
		s.cache[key] = sessionAnswer{err: err, expires: now.Add(s.cfg.TTL)}
		s.mu.Unlock()
	}
	return err
}

// ask calls GET /auth/v1/user with the token. supabase-go's client takes no context, so the call
// runs aside and ctx only stops the wait; the HTTP client's timeout ends the call itself.
func (s *SupabaseSessions) ask(ctx context.Context, token string) error {
	c, err := supabase.NewClient(s.cfg.SupabaseURL, s.cfg.Key, nil)
	if err != nil {
		return fmt.Errorf("session check: %w", err)
	}
	auth := c.Auth.WithToken(token).WithClient(s.http)
	done := make(chan error, 1)
	go func() {
		_, err := auth.GetUser()
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		// supabase-go reports the status only in the text: "response status code 401: …".
		msg := err.Error()
		for _, code := range []string{"code 401", "code 403", "code 404"} {
			if strings.Contains(msg, code) {
				return fmt.Errorf("%w: %s", ErrSessionRevoked, msg)
			}
		}
		return fmt.Errorf("session check: ask supabase auth: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("session check: %w", context.Cause(ctx))
	}
}
