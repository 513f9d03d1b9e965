package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

var oneSlice = Slice{From: ts("2026-11-20T00:00:00Z"), To: ts("2026-11-21T00:00:00Z")}

func noJitter() RetryPolicy { return RetryPolicy{Rand: func() float64 { return 0 }} }

func TestFailRetryableBacksOff(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "R", market.H1, 100, 30)
	run := claimOne(t, pool, planNow, d, oneSlice)
	cause := &marketdata.Error{Provider: "alpaca", Kind: marketdata.Retryable, Status: 503, Code: "http_503", Message: "unavailable"}
	out, err := Fail(t.Context(), pool, planNow, run, cause, noJitter())
	require.NoError(t, err)
	require.Equal(t, Retried, out)
	r := runsOf(t, pool, d.ID)[0]
	require.Equal(t, "queued", r.Status)
	require.Equal(t, 1, r.Attempt, "the attempt is used")
	require.Equal(t, "http_503", *r.ErrorCode)
	require.Equal(t, planNow.Add(2500*time.Millisecond), r.NextAttemptAt, "half of the 5 s base delay, without jitter")
	require.Empty(t, claimAll(t, pool, planNow.Add(2499*time.Millisecond), "w1"), "not due before the backoff")

	_, err = Fail(t.Context(), pool, planNow, run, cause, noJitter())
	require.ErrorIs(t, err, ErrLeaseLost, "a run no longer leased is not touched")
}

func TestFailAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "MAX", market.H1, 100, 30)
	exec(t, pool, `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, attempt, next_attempt_at)
VALUES ($1, 'MAX', 'h1', 'fetch_intraday', $2, $3, 4, $4)`, d.ID, oneSlice.From, oneSlice.To, planNow)
	runs := claimAll(t, pool, planNow, "w1")
	require.Len(t, runs, 1)
	require.Equal(t, 5, runs[0].Attempt)
	out, err := Fail(t.Context(), pool, planNow, runs[0], errors.New("connection reset"), noJitter())
	require.NoError(t, err)
	require.Equal(t, Failed, out)
	r := runsOf(t, pool, d.ID)[0]
	require.Equal(t, "failed", r.Status)
	require.Equal(t, 5, r.Attempt)
	require.Equal(t, "internal", *r.ErrorCode)
	var msg string
	var finished bool
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT error_message, finished_at IS NOT NULL FROM job_runs WHERE id = $1`, r.ID).Scan(&msg, &finished))
	require.Equal(t, "connection reset", msg)
	require.True(t, finished)
	var enabled bool
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT enabled FROM job_definitions WHERE id = $1`, d.ID).Scan(&enabled))
	require.True(t, enabled, "a retryable failure does not disable the definition")
}

func TestFailRateLimitedKeepsTheAttempt(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "RL", market.H1, 100, 30)
	run := claimOne(t, pool, planNow, d, oneSlice)
	cause := &marketdata.Error{Provider: "massive", Kind: marketdata.RateLimited, Status: 429, Code: "http_429", Message: "too many", RetryAfter: 90 * time.Second}
	out, err := Fail(t.Context(), pool, planNow, run, cause, noJitter())
	require.NoError(t, err)
	require.Equal(t, Deferred, out)
	r := runsOf(t, pool, d.ID)[0]
	require.Equal(t, "queued", r.Status)
	require.Zero(t, r.Attempt, "a 429 does not use up an attempt")
	require.Equal(t, "http_429", *r.ErrorCode)
	require.Equal(t, planNow.Add(90*time.Second), r.NextAttemptAt, "Retry-After is honoured")
}

func TestFailPermanentDisablesTheDefinition(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "NOPE", market.H1, 100, 30)
	other := addDef(t, pool, "NOPE", market.H4, 100, 30)
	run := claimOne(t, pool, planNow, d, oneSlice)
	cause := &marketdata.Error{Provider: "alpaca", Kind: marketdata.Permanent, Status: 422, Code: "42210000", Message: "invalid symbol: NOPE"}
	out, err := Fail(t.Context(), pool, planNow, run, cause, noJitter())
	require.NoError(t, err)
	require.Equal(t, Disabled, out)
	r := runsOf(t, pool, d.ID)[0]
	require.Equal(t, "failed", r.Status)
	require.Equal(t, "42210000", *r.ErrorCode)
	var enabled bool
	var reason *string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT enabled, disabled_reason FROM job_definitions WHERE id = $1`, d.ID).Scan(&enabled, &reason))
	require.False(t, enabled)
	require.Contains(t, *reason, "invalid symbol: NOPE")
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT enabled FROM job_definitions WHERE id = $1`, other.ID).Scan(&enabled))
	require.True(t, enabled, "only the failing definition is disabled")
}

func TestHeartbeatAndReap(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "HB", market.H1, 100, 30)
	run := claimOne(t, pool, planNow, d, oneSlice)

	beat := planNow.Add(50 * time.Second)
	require.NoError(t, Heartbeat(t.Context(), pool, beat, run, 10*time.Minute))
	var lease time.Time
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT lease_expires_at FROM job_runs WHERE id = $1`, run.ID).Scan(&lease))
	require.Equal(t, beat.Add(10*time.Minute), lease.UTC(), "the heartbeat renews the lease")
	reaped, err := Reap(t.Context(), pool, beat.Add(9*time.Minute), 5)
	require.NoError(t, err)
	require.Empty(t, reaped, "a live lease is not reaped")

	// The worker dies: its lease lapses and the reaper takes the run back, attempt kept.
	dead := beat.Add(10*time.Minute + time.Second)
	reaped, err = Reap(t.Context(), pool, dead, 5)
	require.NoError(t, err)
	require.Equal(t, []string{run.ID}, reaped)
	r := runsOf(t, pool, d.ID)[0]
	require.Equal(t, "queued", r.Status)
	require.Equal(t, 1, r.Attempt)
	require.Equal(t, "lease_expired", *r.ErrorCode)
	require.Equal(t, dead, r.NextAttemptAt, "due at once")
	require.ErrorIs(t, Heartbeat(t.Context(), pool, dead, run, time.Minute), ErrLeaseLost)

	again := claimAll(t, pool, dead, "w2")
	require.Len(t, again, 1)
	require.Equal(t, 2, again[0].Attempt)
}

func TestReapFailsRunsOutOfAttempts(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "POISON", market.H1, 100, 30)
	exec(t, pool, `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, attempt, next_attempt_at)
VALUES ($1, 'POISON', 'h1', 'fetch_intraday', $2, $3, 4, $4)`, d.ID, oneSlice.From, oneSlice.To, planNow)
	require.Len(t, claimAll(t, pool, planNow, "w1"), 1)
	reaped, err := Reap(t.Context(), pool, planNow.Add(time.Minute+time.Second), 5) // claimAll leases for a minute
	require.NoError(t, err)
	require.Len(t, reaped, 1)
	r := runsOf(t, pool, d.ID)[0]
	require.Equal(t, "failed", r.Status)
	require.Equal(t, "lease_expired", *r.ErrorCode)
}

func TestFailOnShutdownRequeuesAtOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "STOP", market.H1, 100, 30)
	run := claimOne(t, pool, planNow, d, oneSlice)
	out, err := Fail(t.Context(), pool, planNow, run, errors.Join(errors.New("fetch"), contextCanceled()), noJitter())
	require.NoError(t, err)
	require.Equal(t, Deferred, out)
	require.Len(t, claimAll(t, pool, planNow, "w2"), 1, "due again at once")
}
