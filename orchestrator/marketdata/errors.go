package marketdata

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind says what a caller should do about a failed request.
type Kind int

// Error kinds.
const (
	// Retryable failures are transient: network errors, timeouts, 5xx, 408, truncated or
	// malformed bodies. Retry with backoff.
	Retryable Kind = iota + 1
	// Permanent failures will fail again unchanged: bad request (400/404/422: unknown symbol,
	// bad timeframe), bad keys or a plan that does not cover the data (401/403).
	Permanent
	// RateLimited is HTTP 429. Wait RetryAfter (when the provider said) and try again; it is not
	// the request's fault, so it should not use up an attempt.
	RateLimited
)

// String is the metric label value: retryable, permanent or rate_limited.
func (k Kind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case RateLimited:
		return "rate_limited"
	}
	return "unknown"
}

// Codes set by this package. Errors from a provider's HTTP answer carry the provider's own code
// when it sends one (Alpaca's 8-digit codes), else "http_<status>".
const (
	CodeNetwork              = "network"
	CodeTimeout              = "timeout"
	CodeMalformed            = "malformed_response"
	CodeInvalidRequest       = "invalid_request"
	CodeUnsupportedTimeframe = "unsupported_timeframe"
	CodePagination           = "pagination"
	CodeInjected             = "injected"
	CodeLimiter              = "limiter" // an injected Limiter failed (not the context ending)
)

// Error is a classified provider failure. Error() is safe to store in job_runs.error_message
// and to show to operators: it never contains credentials (URLs are stripped of apiKey) and
// provider texts are cut to a few hundred printable characters.
type Error struct {
	Provider   string        // "alpaca", "massive", "synthetic"
	Kind       Kind          // what to do about it
	Status     int           // HTTP status; 0 when no answer was received
	Code       string        // provider code or one of the Code… constants
	Message    string        // human-readable, safe to store
	RetryAfter time.Duration // the provider's Retry-After; 0 when absent
	Err        error         // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Code != "" && e.Code != httpCode(e.Status) {
			fmt.Fprintf(&b, " (code %s)", e.Code)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Kind == RateLimited && e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func httpCode(status int) string { return "http_" + strconv.Itoa(status) }

// IsRetryable reports whether err is a provider failure worth retrying: Retryable or
// RateLimited. Context cancellation is not retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Kind == Retryable || e.Kind == RateLimited)
}

// IsPermanent reports whether err is a provider failure that retrying cannot fix.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Permanent
}

// IsRateLimited reports whether err is an HTTP 429 from the provider.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == RateLimited
}

// RetryAfter returns the wait the provider asked for (Retry-After in seconds or as an HTTP date)
// and true; false when err carries none.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// parseRateLimitReset reads an X-RateLimit-Reset header holding a Unix time in seconds.
func parseRateLimitReset(v string, now time.Time) time.Duration {
	s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || s <= 0 {
		return 0
	}
	if d := time.Unix(s, 0).Sub(now); d > 0 && d <= 24*time.Hour {
		return d
	}
	return 0
}

// safeText makes a provider-supplied text safe to store: printable runes only, one line,
// at most 300 characters.
func safeText(s string) string {
	const max = 300
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}

// interrupted wraps the error of a context that ended during a call: a deadline (the caller's
// fetch timeout) is a retryable timeout, counted like any provider failure; a cancellation
// (shutdown) stays a plain wrapped context.Canceled, not the provider's fault.
func interrupted(provider, during string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Provider: provider, Kind: Retryable, Code: CodeTimeout,
			Message: "timed out during " + during, Err: err}
	}
	return fmt.Errorf("%s: %s: %w", provider, during, err)
}
