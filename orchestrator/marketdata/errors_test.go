package marketdata

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := utc("2026-01-02T15:04:05Z")
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"999999999", 24 * time.Hour}, // capped
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0}, // in the past
		{"soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, parseRetryAfter(tt.in, now))
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	t.Parallel()
	rl := &Error{Provider: "alpaca", Kind: RateLimited, Status: 429, Code: "http_429", Message: "rate limited: too many requests.", RetryAfter: 3 * time.Second}
	wrapped := fmt.Errorf("run slice: %w", rl)
	tests := []struct {
		name                        string
		err                         error
		retryable, permanent, limit bool
		after                       time.Duration
		text                        string
	}{
		{name: "rate limited, wrapped", err: wrapped, retryable: true, limit: true, after: 3 * time.Second,
			text: "run slice: alpaca: HTTP 429: rate limited: too many requests. (retry after 3s)"},
		{name: "permanent with code", err: &Error{Provider: "alpaca", Kind: Permanent, Status: 422, Code: "42210000", Message: "invalid timeframe"}, permanent: true,
			text: "alpaca: HTTP 422 (code 42210000): invalid timeframe"},
		{name: "retryable without status", err: &Error{Provider: "massive", Kind: Retryable, Code: CodeTimeout, Message: "request timed out"}, retryable: true,
			text: "massive: request timed out"},
		{name: "plain error", err: errors.New("boom"), text: "boom"},
		{name: "nil", err: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.retryable, IsRetryable(tt.err))
			require.Equal(t, tt.permanent, IsPermanent(tt.err))
			require.Equal(t, tt.limit, IsRateLimited(tt.err))
			d, ok := RetryAfter(tt.err)
			require.Equal(t, tt.after, d)
			require.Equal(t, tt.after > 0, ok)
			if tt.err != nil {
				require.Equal(t, tt.text, tt.err.Error())
			}
		})
	}
	cause := errors.New("cause")
	require.ErrorIs(t, &Error{Provider: "x", Kind: Retryable, Err: cause}, cause)
}

func TestSafeText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a b c", safeText(" a\nb\tc \x00"))
	long := safeText(strings.Repeat("é", 1000))
	require.Equal(t, 301, len([]rune(long)))
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	got := redactURL("https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/a/b?apiKey=secret&cursor=c")
	require.NotContains(t, got, "secret")
	require.Contains(t, got, "cursor=c")
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	est := time.FixedZone("EST", -5*3600)
	from, to := utc("2026-01-05T00:00:00Z"), utc("2026-01-07T00:00:00Z")
	in := []Bar{
		{TS: utc("2026-01-06T05:00:00Z"), Close: 1},
		{TS: time.Date(2026, 1, 5, 0, 0, 0, 0, est), Close: 2}, // 05:00Z, another zone
		{TS: utc("2026-01-06T05:00:00Z"), Close: 3},            // duplicate: the later one wins
		{TS: utc("2026-01-04T05:00:00Z"), Close: 4},            // before From
		{TS: to, Close: 5}, // at To: excluded
	}
	got := normalize(in, from, to)
	require.Equal(t, []Bar{{TS: utc("2026-01-05T05:00:00Z"), Close: 2}, {TS: utc("2026-01-06T05:00:00Z"), Close: 3}}, got)
	require.Equal(t, time.UTC, got[0].TS.Location())
}
