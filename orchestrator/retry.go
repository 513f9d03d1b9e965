package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

// RetryPolicy says how failed runs are retried.
type RetryPolicy struct {
	// MaxAttempts is how many claims a run may use before a retryable failure fails it.
	// Default 5. Rate-limited tries and shutdowns do not use one up.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt; it doubles per attempt. Default 5s.
	BaseDelay time.Duration
	// MaxDelay caps the backoff. Default 10m.
	MaxDelay time.Duration
	// Rand returns a number in [0, 1) for the jitter. Default math/rand/v2.Float64.
	Rand func() float64
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 5 * time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Minute
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Backoff returns the wait before the next try after the attempt-th failed one (1-based):
// BaseDelay·2^(attempt−1), capped at MaxDelay, of which the upper half is jittered ("equal
// jitter"), so retries of runs that failed together spread out but never come back early.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.MaxDelay
	if attempt < 1 {
		attempt = 1
	}
	if attempt-1 < 32 {
		if e := p.BaseDelay << (attempt - 1); e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + time.Duration(p.Rand()*float64(d-half))
}

// Outcome is what Fail did with a run.
type Outcome string

// Outcomes of Fail.
const (
	Retried  Outcome = "retried"  // queued again after a backoff, attempt used
	Deferred Outcome = "deferred" // queued again, attempt not used (rate limit, shutdown)
	Failed   Outcome = "failed"   // failed for good
	Disabled Outcome = "disabled" // failed for good and its definition disabled
)

// decision is how a failure is recorded; decide is its pure part.
type decision struct {
	outcome    Outcome
	status     string
	refund     int // attempts given back: 1 when this try does not count
	delay      time.Duration
	code, msg  string
	disableWhy string
}

func (p RetryPolicy) decide(run Run, cause error) decision {
	p = p.withDefaults()
	d := decision{code: "internal", msg: truncate(cause.Error(), 1000)}
	var pe *marketdata.Error
	if errors.As(cause, &pe) && pe.Code != "" {
		d.code = pe.Code
	}
	switch {
	case pe == nil && errors.Is(cause, context.Canceled):
		// Shutdown: not the run's fault. (A fetch timeout, DeadlineExceeded, is retryable.)
		d.outcome, d.status, d.refund, d.code = Deferred, "queued", 1, "interrupted"
	case marketdata.IsPermanent(cause):
		d.outcome, d.status = Disabled, "failed"
		d.disableWhy = truncate("permanent provider error: "+cause.Error(), 500)
	case marketdata.IsRateLimited(cause):
		d.outcome, d.status, d.refund = Deferred, "queued", 1
		if wait, ok := marketdata.RetryAfter(cause); ok {
			d.delay = wait
		} else {
			d.delay = p.Backoff(1)
		}
	case run.Attempt >= p.MaxAttempts:
		d.outcome, d.status = Failed, "failed"
	default:
		d.outcome, d.status, d.delay = Retried, "queued", p.Backoff(run.Attempt)
	}
	return d
}

// Fail records that run's fetch or write failed with cause (sql/fail.sql):
//   - permanent provider errors fail the run at once and disable its definition with the
//     reason (disabled_reason);
//   - rate limits (429) queue it again after the provider's Retry-After, without using up an
//     attempt;
//   - a cancelled context (shutdown) queues it again at once, without using up an attempt;
//   - anything else is retryable: queued again after a jittered exponential backoff, until the
//     run has used MaxAttempts, then failed.
//
// error_code is the provider's code (or "internal"), error_message the error text; delays
// count from now, which also stamps finished_at (a zero now is the database clock). It returns
// ErrLeaseLost, recording nothing, when the run is no longer leased to run.Owner at
// run.Attempt.
func Fail(ctx context.Context, db DB, now time.Time, run Run, cause error, p RetryPolicy) (Outcome, error) {
	d := p.decide(run, cause)
	var disable *string
	if d.disableWhy != "" {
		disable = &d.disableWhy
	}
	var n int
	if err := db.QueryRow(ctx, failSQL, run.ID, run.Owner, run.Attempt, d.status, d.refund,
		d.delay.Seconds(), d.code, d.msg, disable, at(now)).Scan(&n); err != nil {
		return "", fmt.Errorf("record failure of run %s: %w", run.ID, err)
	}
	if n == 0 {
		return "", fmt.Errorf("record failure of run %s: %w", run.ID, ErrLeaseLost)
	}
	return d.outcome, nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
