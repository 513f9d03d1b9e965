package marketdata

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// bucket is the default Limiter: an in-process token bucket (golang.org/x/time/rate) that can
// also be paused, so a provider behaves the same whether or not a shared Limiter is injected.
type bucket struct {
	provider string
	lim      *rate.Limiter
	now      func() time.Time // the provider's clock, the one Pause's until is computed on

	mu     sync.Mutex
	paused time.Time // no request before this instant
}

var (
	_ Limiter = (*bucket)(nil)
	_ Pauser  = (*bucket)(nil)
)

// newBucket allows perMinute requests a minute with the given burst.
func newBucket(provider string, perMinute float64, burst int, now func() time.Time) *bucket {
	return &bucket{provider: provider, lim: rate.NewLimiter(rate.Limit(perMinute/60), burst), now: now}
}

// Pause holds every request back until until; an earlier until than one already set changes
// nothing.
func (b *bucket) Pause(_ context.Context, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until.After(b.paused) {
		b.paused = until
	}
}

func (b *bucket) pausedUntil() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.paused
}

// Wait sits out a pause, then takes a token. The pause is slept once per Pause that extends it,
// not until the clock passes it, so a clock that does not move (a test's) cannot hang it.
func (b *bucket) Wait(ctx context.Context) error {
	for {
		until := b.pausedUntil()
		d := until.Sub(b.now())
		if d <= 0 {
			break
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		if !b.pausedUntil().After(until) {
			break
		}
	}
	r := b.lim.Reserve()
	if !r.OK() {
		return &Error{Provider: b.provider, Kind: Permanent, Code: CodeInvalidRequest, Message: "rate limiter refuses every request (burst 0)"}
	}
	if err := sleep(ctx, r.Delay()); err != nil {
		r.Cancel() // give the token back
		return err
	}
	return nil
}

// sleep waits d, or returns the context's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
