package orchestrator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// fakeProvider returns one bar per slice (at its start) and counts calls per slice; fail
// decides an injected error per call (call counts the calls with the same start).
type fakeProvider struct {
	mu     sync.Mutex
	calls  map[string]int
	starts map[string]int
	fail   func(req marketdata.Request, call int) error
}

func (f *fakeProvider) Name() string { return "synthetic" }

func (f *fakeProvider) Bars(ctx context.Context, req marketdata.Request) ([]marketdata.Bar, error) {
	// calls is keyed by the end: a closed slice's fetch may start at the window's start, never
	// elsewhere. An open slice's request ends at its claim, so each attempt has its own end:
	// fail counts the calls by the start instead, which stays put across retries.
	key := fmt.Sprintf("%s/%s/%s", req.Symbol, req.Timeframe, req.To.Format(time.RFC3339))
	start := fmt.Sprintf("%s/%s/%s", req.Symbol, req.Timeframe, req.From.Format(time.RFC3339Nano))
	f.mu.Lock()
	if f.calls == nil {
		f.calls, f.starts = map[string]int{}, map[string]int{}
	}
	f.calls[key]++
	f.starts[start]++
	n := f.starts[start]
	f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(req, n); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fake provider: %w", err)
	}
	return []marketdata.Bar{{TS: req.From, Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 10}}, nil
}

func (f *fakeProvider) callsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	pool := &pgxpool.Pool{}
	p := &fakeProvider{}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Pool: pool, Provider: p}, true},
		{"no pool", Config{Provider: p}, false},
		{"no provider", Config{Pool: pool}, false},
		{"negative concurrency", Config{Pool: pool, Provider: p, Concurrency: -1}, false},
		{"negative tick", Config{Pool: pool, Provider: p, Tick: -time.Second}, false},
		{"negative poll", Config{Pool: pool, Provider: p, Poll: -time.Second}, false},
		{"negative write concurrency", Config{Pool: pool, Provider: p, WriteConcurrency: -1}, false},
		{"negative attempts", Config{Pool: pool, Provider: p, MaxAttempts: -1}, false},
		{"bad slice sizes", Config{Pool: pool, Provider: p, SliceSizes: SliceSizes{market.H1: time.Hour}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := New(tt.cfg)
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, 5, o.cfg.Concurrency)
				require.Equal(t, 4, o.cfg.WriteConcurrency)
				require.Equal(t, time.Second, o.cfg.Poll)
				require.Equal(t, DefaultSliceSizes(), o.cfg.SliceSizes, "a provider without a page limit gets the 1,000-bar grid")
				require.Equal(t, 60*time.Second, o.cfg.Tick)
				require.Equal(t, 5, o.cfg.Retry.MaxAttempts)
				require.NoError(t, o.Stop(t.Context()), "Stop before Start is a no-op")
			} else {
				require.Error(t, err)
			}
		})
	}
}

// done is one recorded run outcome.
type done struct {
	run     Run
	outcome Outcome
}

// startOrchestrator starts o with the test hook reporting to events (and planning passes to
// plans, when not nil), and stops it when the test ends.
func startOrchestrator(t *testing.T, cfg Config, events chan<- done, plans chan<- struct{}) *Orchestrator {
	t.Helper()
	o, err := New(cfg)
	require.NoError(t, err)
	o.afterRun = func(r Run, out Outcome) { events <- done{r, out} }
	if plans != nil {
		o.afterPlan = func() { plans <- struct{}{} }
	}
	require.NoError(t, o.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, o.Stop(ctx))
		require.NoError(t, o.Stop(ctx), "Stop is idempotent")
	})
	return o
}

// waitIdle consumes outcomes until no run is queued or running, then stops the orchestrators
// (which waits for every outcome to be reported) and takes the outcomes still buffered.
func waitIdle(t *testing.T, pool *pgxpool.Pool, events <-chan done, os ...*Orchestrator) []done {
	t.Helper()
	var got []done
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e := <-events:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("runs still pending after %d outcomes", len(got))
		}
		var pending int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM job_runs WHERE status IN ('queued', 'running')`).Scan(&pending))
		if pending == 0 {
			for _, o := range os {
				require.NoError(t, o.Stop(t.Context()))
			}
			for {
				select {
				case e := <-events:
					got = append(got, e)
				default:
					return got
				}
			}
		}
	}
}

func TestOrchestratorBackfillsWhenNotified(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	reg := prometheus.NewPedanticRegistry()
	events := make(chan done, 100)
	plans := make(chan struct{}, 10)
	now := runningClock(midSlice(DefaultSliceSizes()[market.M15]))
	o := startOrchestrator(t, Config{Pool: pool, Provider: &fakeProvider{}, Tick: time.Hour, Concurrency: 1, Registerer: reg, Now: now}, events, plans)
	<-plans // the pass at start, with nothing to do

	// The definition arrives with the replicator's notification.
	before := now()
	d := addDef(t, pool, "AAPL", market.M15, 300, 21)
	exec(t, pool, `SELECT pg_notify($1, '')`, replicator.NotifyChannel)
	got := waitIdle(t, pool, events, o)

	after := now()
	want := Window(DefaultSliceSizes()[market.M15], 21, after)
	require.Len(t, got, len(want))
	for _, e := range got {
		require.Equal(t, Succeeded, e.outcome)
	}
	require.Equal(t, want[len(want)-1].To, got[0].run.Slice.To, "newest slice first (one worker, so completion order is claim order)")
	for _, r := range runsOf(t, pool, d.ID) {
		require.Equal(t, "success", r.Status)
		require.Equal(t, 1, r.Attempt)
	}
	require.Equal(t, len(want), countBars(t, pool, d))
	c := coverageOf(t, pool, d)
	require.True(t, want[0].From.Before(*c.From), "the oldest slice is fetched from the window's start, not its own")
	require.False(t, c.From.Before(before.AddDate(0, 0, -21)), "covered from the window's start %s", *c.From)
	require.False(t, c.From.After(after.AddDate(0, 0, -21)), "covered from the window's start %s", c.From)
	require.EqualValues(t, len(want), testutil.ToFloat64(o.metrics.completed.WithLabelValues("m15", "success")))
	require.EqualValues(t, len(want), testutil.ToFloat64(o.metrics.barsWritten.WithLabelValues("m15")))
	require.EqualValues(t, len(want), testutil.ToFloat64(o.metrics.claimed))
	require.GreaterOrEqual(t, testutil.ToFloat64(o.metrics.ticks), 2.0, "planned at start and on the notification")
	samples := func(name string) uint64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "timeframe" && l.GetValue() == "m15" {
						return m.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		return 0
	}
	require.EqualValues(t, len(want), samples("backfill_orchestrator_pickup_latency_seconds"), "one pickup per claim")
	require.EqualValues(t, len(want), samples("backfill_orchestrator_write_duration_seconds"), "one write per success")
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

func TestOrchestratorRetriesWhenDue(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addDef(t, pool, "FLAKY", market.H1, 100, 5)
	p := &fakeProvider{fail: func(req marketdata.Request, call int) error {
		if call == 1 {
			return &marketdata.Error{Provider: "synthetic", Kind: marketdata.Retryable, Code: marketdata.CodeInjected, Message: "injected"}
		}
		return nil
	}}
	events := make(chan done, 100)
	// A 5-day window in the middle of a 41-day slice: one run, whatever the date.
	o := startOrchestrator(t, Config{Pool: pool, Provider: p, Tick: time.Hour, Now: runningClock(midSlice(DefaultSliceSizes()[market.H1])),
		Retry: RetryPolicy{BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}}, events, nil)
	got := waitIdle(t, pool, events, o)
	outcomes := map[Outcome]int{}
	for _, e := range got {
		outcomes[e.outcome]++
	}
	require.Equal(t, map[Outcome]int{Retried: 1, Succeeded: 1}, outcomes, "the retry runs when due, not at the next tick")
	var attempt int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT attempt FROM job_runs`).Scan(&attempt))
	require.Equal(t, 2, attempt)
}

// Two orchestrators on one database execute every closed slice exactly once.
func TestTwoOrchestratorsShareTheWork(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	// The first fetches wait until more are in flight than one process can hold (Concurrency
	// 4): both processes have claimed work, however the scheduler favours one of them.
	const together = 5
	arrived := make(chan struct{}, together)
	release := make(chan struct{})
	var once sync.Once
	p := &fakeProvider{fail: func(req marketdata.Request, call int) error {
		select {
		case arrived <- struct{}{}:
			if len(arrived) == together {
				once.Do(func() { close(release) })
			}
			<-release
		default: // the barrier is past
		}
		return nil
	}}
	events := make(chan done, 1000)
	plans := make(chan struct{}, 100)
	clock := runningClock(midSlice(DefaultSliceSizes()[market.H1])) // one clock, as the database's for both
	a := startOrchestrator(t, Config{Pool: pool, Provider: p, Tick: time.Hour, Concurrency: 4, Owner: "a", Now: clock}, events, plans)
	b := startOrchestrator(t, Config{Pool: pool, Provider: p, Tick: time.Hour, Concurrency: 4, Owner: "b", Now: clock}, events, plans)
	<-plans
	<-plans // both idle and listening: the work arrives at both at once
	var defs []def
	for i := range 6 {
		defs = append(defs, addDef(t, pool, fmt.Sprintf("T%d", i), market.H1, 100+i*50, 365))
	}
	exec(t, pool, `SELECT pg_notify($1, '')`, replicator.NotifyChannel)
	got := waitIdle(t, pool, events, a, b)
	owners := map[string]int{}
	for _, e := range got {
		require.Equal(t, Succeeded, e.outcome)
		owners[e.run.Owner]++
	}
	now := clock()
	for _, d := range defs {
		for _, s := range Window(DefaultSliceSizes()[market.H1], 365, now) {
			if s.Open(now) {
				continue // the open slice is fetched again by every planning pass
			}
			require.Equal(t, 1, p.callsOf(fmt.Sprintf("%s/h1/%s", d.Symbol, s.To.Format(time.RFC3339))), "%s %v", d.Symbol, s.From)
		}
	}
	var dupes int
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT count(*) FROM (SELECT 1 FROM ohlc_bars_v2 GROUP BY symbol_id, timeframe, ts HAVING count(*) > 1) x`).Scan(&dupes))
	require.Zero(t, dupes)
	require.Len(t, owners, 2, "both processes worked: %v", owners)
}

func TestStopRequeuesInterruptedRuns(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "SLOW", market.H1, 100, 5)
	entered := make(chan struct{}, 10)
	p := &fakeProvider{fail: func(req marketdata.Request, call int) error {
		entered <- struct{}{}
		return nil
	}}
	blocking := blockingProvider{fakeProvider: p}
	events := make(chan done, 10)
	o, err := New(Config{Pool: pool, Provider: blocking, Tick: time.Hour, Concurrency: 1})
	require.NoError(t, err)
	o.afterRun = func(r Run, out Outcome) { events <- done{r, out} }
	require.NoError(t, o.Start(t.Context()))
	<-entered
	require.NoError(t, o.Stop(t.Context()))
	e := <-events
	require.Equal(t, Deferred, e.outcome)
	rows := runsOf(t, pool, d.ID)
	for _, r := range rows {
		require.Equal(t, "queued", r.Status)
		require.Zero(t, r.Attempt, "a shutdown does not use up an attempt")
	}
}

// A run whose lease is taken away mid-fetch is dropped: nothing is written for it.
func TestLostLeaseDropsTheResult(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "GONE", market.H1, 100, 1)
	entered := make(chan struct{}, 10)
	p := blockingProvider{fakeProvider: &fakeProvider{fail: func(marketdata.Request, int) error {
		entered <- struct{}{}
		return nil
	}}}
	events := make(chan done, 10)
	o := startOrchestrator(t, Config{Pool: pool, Provider: p, Tick: time.Hour, Concurrency: 1, Lease: 300 * time.Millisecond}, events, nil)
	<-entered
	// Another process took the run over (as after a reap and a new claim).
	exec(t, pool, `UPDATE job_runs SET lease_owner = 'someone-else' WHERE status = 'running'`)
	e := <-events
	require.Equal(t, LeaseLost, e.outcome, "the heartbeat noticed and cancelled the fetch")
	require.NoError(t, o.Stop(t.Context()))
	require.Zero(t, countBars(t, pool, d))
	var owner string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT lease_owner FROM job_runs WHERE id = $1`, e.run.ID).Scan(&owner))
	require.Equal(t, "someone-else", owner, "the new owner's run is untouched")
}

// A run left running by a killed process is taken back and completed.
func TestDeadWorkersRunIsRescued(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "KILLED", market.H1, 100, 1)
	_, err := Enqueue(t.Context(), pool, dbClock, DefaultSliceSizes())
	require.NoError(t, err)
	dead, err := Claim(t.Context(), pool, dbClock, "killed-process", time.Minute, 10)
	require.NoError(t, err)
	require.NotEmpty(t, dead)
	exec(t, pool, `UPDATE job_runs SET lease_expires_at = now() - interval '1 second'`)

	events := make(chan done, 10)
	o := startOrchestrator(t, Config{Pool: pool, Provider: &fakeProvider{}, Tick: time.Hour}, events, nil)
	got := waitIdle(t, pool, events, o)
	require.Len(t, got, len(dead))
	for _, r := range runsOf(t, pool, d.ID) {
		require.Equal(t, "success", r.Status)
		require.Equal(t, 2, r.Attempt, "the dead claim counts")
	}
}

// blockingProvider blocks every fetch until its context ends.
type blockingProvider struct{ *fakeProvider }

func (b blockingProvider) Bars(ctx context.Context, req marketdata.Request) ([]marketdata.Bar, error) {
	if _, err := b.fakeProvider.Bars(ctx, req); err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, fmt.Errorf("blocking provider: %w", ctx.Err())
}

// A definition whose notification was lost is still planned and run within Poll, long before
// the tick; so is a run queued by hand.
func TestOrchestratorPollsWhenTheNotificationIsLost(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	events := make(chan done, 100)
	plans := make(chan struct{}, 10)
	o := startOrchestrator(t, Config{Pool: pool, Provider: &fakeProvider{}, Tick: time.Hour, Poll: 20 * time.Millisecond}, events, plans)
	<-plans // the pass at start, with nothing to do

	d := addDef(t, pool, "QUIET", market.H1, 100, 3) // no pg_notify
	e := <-events
	require.Equal(t, Succeeded, e.outcome)
	require.Equal(t, d.ID, e.run.JobDefID)

	exec(t, pool, `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to)
SELECT id, symbol, timeframe, job_type, '2020-01-01', '2020-01-02' FROM job_definitions WHERE id = $1`, d.ID)
	for {
		e = <-events
		if e.run.Slice.From.Equal(ts("2020-01-01T00:00:00Z")) {
			break
		}
	}
	require.Equal(t, Succeeded, e.outcome, "a run queued by hand is claimed by the poll")
	require.NoError(t, o.Stop(t.Context()))
}

// The queue gauges are sampled by every planning pass, so they are fresh while every worker is
// busy (the alert on old queued runs depends on it), and every timeframe × outcome series of
// completed runs exists from the start.
func TestOrchestratorQueueGaugesWhileSaturated(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	for i := range 3 {
		addDef(t, pool, fmt.Sprintf("BUSY%d", i), market.H1, 100, 90)
	}
	events := make(chan done, 100)
	plans := make(chan struct{}, 10)
	o := startOrchestrator(t, Config{Pool: pool, Provider: blockingProvider{&fakeProvider{}}, Tick: time.Hour, Concurrency: 1}, events, plans)
	<-plans
	var queued int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM job_runs WHERE status = 'queued'`).Scan(&queued))
	require.Positive(t, queued)
	require.GreaterOrEqual(t, testutil.ToFloat64(o.metrics.queueDepth), 2.0, "sampled by the planning pass")
	require.EqualValues(t, 0, testutil.ToFloat64(o.metrics.completed.WithLabelValues("w1", "failed")))
	require.Equal(t, len(market.Timeframes())*6, testutil.CollectAndCount(o.metrics.completed))
	require.NoError(t, o.Stop(t.Context()))
}
