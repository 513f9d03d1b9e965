package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		attempt int
		rand    float64
		want    time.Duration
	}{
		{"first, no jitter", 1, 0, 2500 * time.Millisecond},
		{"first, full jitter", 1, 0.999999999, 5 * time.Second},
		{"second doubles", 2, 0, 5 * time.Second},
		{"third", 3, 0.5, 15 * time.Second},
		{"capped", 20, 0, 5 * time.Minute},
		{"capped, jittered", 20, 0.5, 7*time.Minute + 30*time.Second},
		{"huge attempt does not overflow", 500, 0, 5 * time.Minute},
		{"zero attempt counts as first", 0, 0, 2500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := RetryPolicy{Rand: func() float64 { return tt.rand }}
			require.InDelta(t, float64(tt.want), float64(p.Backoff(tt.attempt)), float64(time.Millisecond))
		})
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Rand: func() float64 { return 0 }}
	retryable := &marketdata.Error{Provider: "alpaca", Kind: marketdata.Retryable, Status: 503, Code: "http_503", Message: "unavailable"}
	limited := &marketdata.Error{Provider: "alpaca", Kind: marketdata.RateLimited, Status: 429, Code: "http_429", Message: "slow down", RetryAfter: 42 * time.Second}
	limitedNoHint := &marketdata.Error{Provider: "alpaca", Kind: marketdata.RateLimited, Status: 429, Code: "http_429", Message: "slow down"}
	permanent := &marketdata.Error{Provider: "alpaca", Kind: marketdata.Permanent, Status: 422, Code: "42210000", Message: "invalid symbol"}
	tests := []struct {
		name    string
		attempt int
		cause   error
		outcome Outcome
		status  string
		refund  int
		delay   time.Duration
		code    string
	}{
		{"retryable, first try", 1, retryable, Retried, "queued", 0, 2500 * time.Millisecond, "http_503"},
		{"retryable, wrapped", 2, fmt.Errorf("fetch: %w", retryable), Retried, "queued", 0, 5 * time.Second, "http_503"},
		{"retryable, last attempt", 5, retryable, Failed, "failed", 0, 0, "http_503"},
		{"unclassified error is retryable", 1, errors.New("boom"), Retried, "queued", 0, 2500 * time.Millisecond, "internal"},
		{"fetch timeout is retryable", 1, context.DeadlineExceeded, Retried, "queued", 0, 2500 * time.Millisecond, "internal"},
		{"rate limited honours Retry-After", 5, limited, Deferred, "queued", 1, 42 * time.Second, "http_429"},
		{"rate limited without hint backs off", 3, limitedNoHint, Deferred, "queued", 1, 2500 * time.Millisecond, "http_429"},
		{"permanent disables", 1, permanent, Disabled, "failed", 0, 0, "42210000"},
		{"shutdown gives the attempt back", 3, fmt.Errorf("fetch: %w", context.Canceled), Deferred, "queued", 1, 0, "interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := p.decide(Run{Attempt: tt.attempt}, tt.cause)
			require.Equal(t, tt.outcome, d.outcome)
			require.Equal(t, tt.status, d.status)
			require.Equal(t, tt.refund, d.refund)
			require.Equal(t, tt.delay, d.delay)
			require.Equal(t, tt.code, d.code)
			require.Equal(t, tt.outcome == Disabled, d.disableWhy != "")
		})
	}
}
