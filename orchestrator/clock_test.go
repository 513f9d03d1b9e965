package orchestrator

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// TestOneClock runs a definition's whole life cycle (plan, queue gauges, claim, heartbeat,
// reap, write, milestones, the open slice's refresh, a retry, the slice closing, a permanent
// failure, a re-enable, a lease lost for good) with the clock injected at awkward instants, in
// the past and in the future of the wall clock. Every time a statement stamps is checked
// against the injected clock, and every rule that compares times must give what the Go
// statement of the grid predicts. A statement that used the database's now() instead would
// stamp the wall clock and fail here on any date. The database session runs in New York time,
// so a statement that counted days in the session's time zone would fail on the DST days.
func TestOneClock(t *testing.T) {
	t.Parallel()
	sizes := SliceSizesFor(10000) // the production grid of Alpaca and the synthetic provider
	boundary := Slices(sizes[market.H1], planNow, planNow.Add(time.Second))[0].To
	tests := []struct {
		name string
		at   time.Time
	}{
		{"US DST starts", ts("2026-03-08T07:00:00Z")}, // 02:00 EST is 03:00 EDT
		{"US DST ends", ts("2026-11-01T06:00:00Z")},   // 02:00 EDT is 01:00 EST
		{"month end", ts("2026-04-30T23:59:30Z")},
		{"leap day", ts("2028-02-29T12:00:00Z")},
		{"new year's eve", ts("2026-12-31T23:59:30Z")},
		{"just before a slice boundary", boundary.Add(-time.Second)},
		{"just after a slice boundary", boundary.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lifecycle(t, sizes, tt.at)
		})
	}
}

// lifecycle is TestOneClock at t0. The clock moves only when the test says so: each step
// names its instant as t0 plus an offset.
func lifecycle(t *testing.T, sizes SliceSizes, t0 time.Time) {
	ctx := t.Context()
	pool := newYorkDB(t)
	const days = 500 // two or three h1 slices of 416 days
	size := sizes[market.H1]
	d := addDef(t, pool, "CLOCK", market.H1, 300, days)
	// The request, stamped on the same clock by whoever made it (the replicator, in production).
	exec(t, pool, `UPDATE job_definitions SET requested_at = $2 WHERE id = $1`, d.ID, t0.Add(-time.Minute))
	clock := t0
	o, err := New(Config{Pool: pool, Provider: &fakeProvider{}, SliceSizes: sizes, Now: func() time.Time { return clock }})
	require.NoError(t, err)
	at := func(offset time.Duration) time.Time { return t0.Add(offset) }
	// plan runs the tick's planning pass at now.
	plan := func(now time.Time) EnqueueResult {
		t.Helper()
		res, err := Enqueue(ctx, pool, now, sizes)
		require.NoError(t, err)
		return res
	}
	// newestRun is the run of the newest slice.
	newestRun := func() runTimes {
		t.Helper()
		all := timesOf(t, pool, d.ID)
		return all[len(all)-1]
	}

	// Plan: every slice of the window, due at the clock.
	want := Window(size, days, t0)
	res, err := Enqueue(ctx, pool, t0, sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Inserted: len(want)}, res)
	for i, r := range timesOf(t, pool, d.ID) {
		require.Equal(t, want[i], r.Slice)
		require.Equal(t, t0, r.Next, "due at the clock")
		require.Equal(t, t0, r.Created)
		require.Equal(t, maxTime(want[i].From, t0.AddDate(0, 0, -days)), r.WindowFrom, "the window starts %d days of 24 hours back", days)
	}

	// The queue gauges read the queue on the clock.
	clock = at(30 * time.Second)
	next, ok := o.sampleQueue(ctx)
	require.True(t, ok)
	require.Nil(t, next, "nothing is delayed")
	require.Equal(t, float64(len(want)), testutil.ToFloat64(o.metrics.queueDepth))
	require.InDelta(t, 30, testutil.ToFloat64(o.metrics.oldestQueued), 1e-6, "queued 30 s ago on the clock")

	// Claim: stamped on the clock, leased from it; the pickup wait is the clock's.
	claimedAt := at(time.Minute)
	claimed, err := Claim(ctx, pool, claimedAt, "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, claimed, len(want))
	for _, r := range timesOf(t, pool, d.ID) {
		require.Equal(t, "running", r.Status)
		require.Equal(t, []time.Time{claimedAt, claimedAt, claimedAt.Add(time.Minute)}, []time.Time{*r.Started, *r.Heartbeat, *r.Lease})
	}
	for _, r := range claimed {
		require.Equal(t, time.Minute, r.Waited)
	}

	// Heartbeats move the leases; the reaper reads them on the clock.
	reaped, err := Reap(ctx, pool, at(time.Minute+59*time.Second), 5)
	require.NoError(t, err)
	require.Empty(t, reaped, "the leases run to t0+2m")
	for _, r := range claimed {
		require.NoError(t, Heartbeat(ctx, pool, at(time.Minute+50*time.Second), r, time.Minute))
	}
	reaped, err = Reap(ctx, pool, at(2*time.Minute+40*time.Second), 5)
	require.NoError(t, err)
	require.Empty(t, reaped, "renewed to t0+2m50s")
	for _, r := range timesOf(t, pool, d.ID) {
		require.Equal(t, []time.Time{at(time.Minute + 50*time.Second), at(2*time.Minute + 50*time.Second)}, []time.Time{*r.Heartbeat, *r.Lease})
	}

	// Write with no fetch time of its own: covered up to the claim. The first bars and the
	// whole window are reached on the clock, three minutes after the request.
	wrote := at(2 * time.Minute)
	var ms []Milestones
	for _, r := range claimed {
		n, err := Write(ctx, pool, wrote, r, Fetched{Provider: "synthetic", Bars: []marketdata.Bar{{TS: r.Fetch.From, Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 10}}})
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		m, err := RecordMilestones(ctx, pool, wrote, r, n)
		require.NoError(t, err)
		ms = append(ms, m)
	}
	require.Equal(t, Milestones{FirstBars: 3 * time.Minute, ReachedFirstBars: true}, ms[0])
	require.Equal(t, Milestones{Covered: 3 * time.Minute, ReachedCovered: true}, ms[len(ms)-1])
	for _, r := range timesOf(t, pool, d.ID) {
		require.Equal(t, "success", r.Status)
		require.Equal(t, wrote, *r.Finished)
	}
	cov := coverageTimes(t, pool, d)
	newest := want[len(want)-1]
	require.Equal(t, []time.Time{t0.AddDate(0, 0, -days), minTime(newest.To, claimedAt), wrote}, []time.Time{cov.From, cov.To, cov.LastSuccess},
		"covered from the window's start to the claim, or to the end of a slice that closed before it")
	require.Equal(t, 1, cov.Stretches)
	require.Equal(t, []time.Time{wrote}, cov.Fetched, "every bar stamped with the write's instant")

	// Three minutes on, the slice open then (tail) is the only work: a slice that was open at
	// the claim is covered only up to it and refreshed by the tick's pass, once its fetch is
	// old enough; one that opened since (just before a boundary) is new, and the pass woken by
	// a change plans it.
	planned := at(3 * time.Minute)
	window := Window(size, days, planned)
	tail := window[len(window)-1]
	claimedOpen := tail == newest
	res, err = EnqueueChanges(ctx, pool, planned, sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res, "no definition changed")
	res, err = EnqueueAll(ctx, pool, planned, sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Inserted: len(window) - len(want)}, res, "only a slice that opened since t0")
	refreshed, err := Refresh(ctx, pool, planned, map[market.Timeframe]RefreshAfter{market.H1: {Stock: claimedAt, Crypto: claimedAt}})
	require.NoError(t, err)
	require.Empty(t, refreshed, "no bar closed after the fetch started, on the clock")
	res = plan(planned)
	if claimedOpen {
		require.Equal(t, EnqueueResult{Refreshed: 1}, res, "the slice claimed while open, and nothing else")
	} else {
		require.Equal(t, EnqueueResult{}, res, "every slice claimed after it closed is covered whole")
	}
	var queued []runTimes
	for _, r := range timesOf(t, pool, d.ID) {
		if r.Status == "queued" {
			queued = append(queued, r)
		}
	}
	require.Len(t, queued, 1)
	require.Equal(t, tail, queued[0].Slice)
	require.Equal(t, planned, queued[0].Next)

	// A refresh fetches from one bar before the covered end. It fails (retryable) and is due
	// again after the backoff, on the clock.
	again, err := Claim(ctx, pool, planned, "w1", time.Minute, 100)
	require.NoError(t, err)
	refresh := only(t, again, tail)
	if claimedOpen {
		require.Equal(t, Slice{From: maxTime(claimedAt.Add(-time.Hour), tail.From), To: tail.To}, refresh.Fetch, "from a bar before the claim, within the slice")
	} else {
		require.Equal(t, tail, refresh.Fetch, "a new slice is fetched whole")
	}
	failedAt := at(3*time.Minute + 10*time.Second)
	out, err := Fail(ctx, pool, failedAt, refresh, &marketdata.Error{Provider: "synthetic", Kind: marketdata.Retryable, Code: "http_503", Message: "unavailable"}, noJitter())
	require.NoError(t, err)
	require.Equal(t, Retried, out)
	require.Equal(t, failedAt.Add(2500*time.Millisecond), newestRun().Next, "half the 5 s base delay, without jitter")
	none, err := Claim(ctx, pool, failedAt.Add(2499*time.Millisecond), "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Empty(t, withSlice(none, tail), "not due before the backoff")
	again, err = Claim(ctx, pool, failedAt.Add(2500*time.Millisecond), "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, again, 1)
	retry := only(t, again, tail)
	require.Equal(t, 2, retry.Attempt)
	_, err = Write(ctx, pool, at(4*time.Minute), retry, Fetched{Provider: "synthetic"})
	require.NoError(t, err)

	// Well after the open slice closed: the new open slice, and the closed one's tail once.
	later := tail.To.Add(time.Hour)
	res = plan(later)
	require.Equal(t, EnqueueResult{Inserted: 1, Refreshed: 1}, res, "the new open slice and the tail of %v", tail)
	final, err := Claim(ctx, pool, later, "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, final, 2)
	open, closed := final[0], final[1] // newest first
	require.True(t, open.Slice.Open(later) && !closed.Slice.Open(later))
	_, err = Write(ctx, pool, later.Add(time.Minute), closed, Fetched{Provider: "synthetic"})
	require.NoError(t, err)

	// A permanent error fails the open slice and disables the definition; the run stays failed
	// until the definition changes, whoever's clock stamped that change.
	out, err = Fail(ctx, pool, later.Add(time.Minute), open, &marketdata.Error{Provider: "synthetic", Kind: marketdata.Permanent, Code: "http_404", Message: "unknown symbol"}, noJitter())
	require.NoError(t, err)
	require.Equal(t, Disabled, out)
	require.Equal(t, later.Add(time.Minute), *newestRun().Finished)
	exec(t, pool, `UPDATE job_definitions SET enabled = true, disabled_reason = NULL, requested_at = $2,
		first_bars_at = NULL, covered_at = NULL WHERE id = $1`, d.ID, later.Add(2*time.Minute)) // a new request, as tracking makes it
	res = plan(later.Add(3 * time.Minute))
	require.Equal(t, EnqueueResult{Requeued: 1}, res, "the failed run of the re-enabled definition")

	// It fails again, for good, after the new request: the window is not covered, and the
	// planner leaves it failed until the next change.
	final, err = Claim(ctx, pool, later.Add(3*time.Minute), "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, final, 1)
	out, err = Fail(ctx, pool, later.Add(4*time.Minute), final[0], &marketdata.Error{Provider: "synthetic", Kind: marketdata.Retryable, Code: "http_503", Message: "down"}, RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	require.Equal(t, Failed, out)
	m, err := RecordMilestones(ctx, pool, later.Add(4*time.Minute), closed, 1)
	require.NoError(t, err)
	require.Equal(t, Milestones{FirstBars: 2 * time.Minute, ReachedFirstBars: true}, m, "first bars of the new request, but a run failed since it")
	res = plan(later.Add(5 * time.Minute))
	require.Equal(t, EnqueueResult{}, res, "failed since the last change: left alone")
	exec(t, pool, `UPDATE job_definitions SET priority = 301 WHERE id = $1`, d.ID)
	res = plan(later.Add(6 * time.Minute))
	require.Equal(t, EnqueueResult{Requeued: 1}, res, "a change after the failure queues it again")

	// Its worker dies: the reaper queues the run again, due at once; the next worker dies with
	// the run's last attempt, and the reaper fails it, on the clock both times.
	final, err = Claim(ctx, pool, later.Add(6*time.Minute), "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, final, 1)
	reapedAt := later.Add(7*time.Minute + time.Second)
	reaped, err = Reap(ctx, pool, reapedAt, 2)
	require.NoError(t, err)
	require.Equal(t, []string{final[0].ID}, reaped)
	require.Equal(t, []any{"queued", reapedAt}, []any{newestRun().Status, newestRun().Next})
	final, err = Claim(ctx, pool, reapedAt, "w1", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, final, 1)
	require.Equal(t, 2, final[0].Attempt)
	reapedAt = reapedAt.Add(time.Minute + time.Second)
	reaped, err = Reap(ctx, pool, reapedAt, 2)
	require.NoError(t, err)
	require.Equal(t, []string{final[0].ID}, reaped)
	require.Equal(t, []any{"failed", reapedAt}, []any{newestRun().Status, *newestRun().Finished})
	res = plan(reapedAt.Add(time.Minute))
	require.Equal(t, EnqueueResult{}, res, "failed at the definition's current revision")
}

// newYorkDB is a fresh test database whose sessions run in America/New_York.
func newYorkDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.DB(t)
	exec(t, pool, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET TimeZone = %L', current_database(), 'America/New_York'); END $$`)
	pool.Reset() // the connections open now keep their TimeZone
	var tz string
	require.NoError(t, pool.QueryRow(t.Context(), `SHOW TimeZone`).Scan(&tz))
	require.Equal(t, "America/New_York", tz)
	return pool
}

// runTimes are the times a job_runs row carries, in slice order.
type runTimes struct {
	Slice                     Slice
	Status                    string
	Next, Created, WindowFrom time.Time
	Started, Heartbeat, Lease *time.Time
	Finished                  *time.Time
}

func timesOf(t *testing.T, pool *pgxpool.Pool, defID string) []runTimes {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT slice_from, slice_to, status, next_attempt_at, created_at, coalesce(window_from, slice_from),
       started_at, heartbeat_at, lease_expires_at, finished_at
FROM job_runs WHERE job_def_id = $1 ORDER BY slice_from`, defID)
	require.NoError(t, err)
	defer rows.Close()
	var out []runTimes
	for rows.Next() {
		var r runTimes
		require.NoError(t, rows.Scan(&r.Slice.From, &r.Slice.To, &r.Status, &r.Next, &r.Created, &r.WindowFrom,
			&r.Started, &r.Heartbeat, &r.Lease, &r.Finished))
		r.Slice.From, r.Slice.To, r.Next, r.Created, r.WindowFrom = r.Slice.From.UTC(), r.Slice.To.UTC(), r.Next.UTC(), r.Created.UTC(), r.WindowFrom.UTC()
		for _, p := range []*time.Time{r.Started, r.Heartbeat, r.Lease, r.Finished} {
			if p != nil {
				*p = p.UTC()
			}
		}
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// coverageTimesRow is what coverage_status and the bars say about d.
type coverageTimesRow struct {
	From, To, LastSuccess time.Time
	Stretches             int
	Fetched               []time.Time // the distinct fetched_at of d's bars
}

func coverageTimes(t *testing.T, pool *pgxpool.Pool, d def) coverageTimesRow {
	t.Helper()
	var c coverageTimesRow
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT lower(c.covered), upper(c.covered), c.last_success_at, (SELECT count(*) FROM unnest(c.covered)),
       (SELECT array_agg(DISTINCT b.fetched_at) FROM ohlc_bars_v2 b WHERE b.symbol_id = $3::uuid AND b.timeframe = c.timeframe)
FROM coverage_status c WHERE c.symbol = $1 AND c.timeframe = $2`, d.Symbol, string(d.Timeframe), d.SymbolID).
		Scan(&c.From, &c.To, &c.LastSuccess, &c.Stretches, &c.Fetched))
	c.From, c.To, c.LastSuccess = c.From.UTC(), c.To.UTC(), c.LastSuccess.UTC()
	for i := range c.Fetched {
		c.Fetched[i] = c.Fetched[i].UTC()
	}
	return c
}

// only returns the one run of s among runs.
func only(t *testing.T, runs []Run, s Slice) Run {
	t.Helper()
	got := withSlice(runs, s)
	require.Len(t, got, 1, "one run of %v among %d", s, len(runs))
	return got[0]
}

func withSlice(runs []Run, s Slice) []Run {
	var out []Run
	for _, r := range runs {
		if r.Slice == s {
			out = append(out, r)
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
