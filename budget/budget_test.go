package budget

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

// TestReplicasShareOneBudget runs two budgets on one database and provider, as two replicas
// would, each with three callers asking as fast as they can, on the database's clock: together
// they get what one bucket allows, no more, and both get their share.
func TestReplicasShareOneBudget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	const perMinute, burst = 600, 1
	// The most the plan allows beside a burst of 1: 599 a minute, 9.98 a second.
	pace := (perMinute - burst) / float64(perMinute)
	rate := perMinute * pace / 60

	began := time.Now()
	a := newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: perMinute, Pace: pace, Burst: burst})
	b := newBudget(t, Config{Pool: replicaPool(t, pool), Provider: "alpaca", PerMinute: perMinute, Pace: pace, Burst: burst})

	runCtx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	var (
		mu      sync.Mutex
		grants  []time.Time
		replica [2]int
		wg      sync.WaitGroup
	)
	for i, budget := range []*Budget{a, b} {
		for range 3 {
			wg.Go(func() {
				for {
					err := budget.Wait(runCtx)
					at := time.Now()
					if err == nil {
						mu.Lock()
						grants = append(grants, at)
						replica[i]++
						mu.Unlock()
					}
					if runCtx.Err() != nil {
						return
					}
					if err != nil {
						t.Errorf("replica %d: wait: %v", i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()

	require.NotEmpty(t, grants)
	slices.SortFunc(grants, func(x, y time.Time) int { return x.Compare(y) })
	elapsed := grants[len(grants)-1].Sub(began)
	bound := burst + rate*elapsed.Seconds()
	// The busiest 1-second window of grants.
	busiest := 0
	for i, j := 0, 0; i < len(grants); i++ {
		for j < len(grants) && grants[j].Before(grants[i].Add(time.Second)) {
			j++
		}
		busiest = max(busiest, j-i)
	}
	t.Logf("%d grants in %v (bucket bound %.2f); replica A %d, B %d; busiest 1 s window %d",
		len(grants), elapsed.Round(time.Millisecond), bound, replica[0], replica[1], busiest)

	require.LessOrEqual(t, float64(len(grants)), bound+1, "more grants than one bucket allows")
	require.LessOrEqual(t, busiest, 11, "a 1 s window holds more than burst + rate")
	require.GreaterOrEqual(t, len(grants), 10, "the budget was hardly used: something else held the callers back")
	for i, n := range replica {
		require.GreaterOrEqual(t, float64(n), 0.25*float64(len(grants)), "replica %d got %d of %d grants", i, n, len(grants))
	}
}

// TestPauseHoldsEveryReplica pauses through one replica: the other's next request waits for
// the pause to end.
func TestPauseHoldsEveryReplica(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	cfg := Config{Provider: "alpaca", PerMinute: 600, Pace: 0.9, Burst: 5} // a full bucket: only the pause holds back
	cfg.Pool = pool
	a := newBudget(t, cfg)
	cfg.Pool = replicaPool(t, pool)
	b := newBudget(t, cfg)

	until := time.Now().Add(300 * time.Millisecond).Truncate(time.Microsecond)
	a.Pause(ctx, until)
	require.NoError(t, b.Wait(ctx))
	at := time.Now()
	require.False(t, at.Before(until), "B's request allowed at %v, before the pause's end %v", at, until)
	require.Less(t, at.Sub(until), time.Second, "B waited far beyond the pause")

	r := budgetRow(t, pool, "alpaca")
	require.NotNil(t, r.PausedUntil)
	require.True(t, r.PausedUntil.Equal(until), "paused_until %v, want %v", *r.PausedUntil, until)
	// An earlier pause does not shorten it.
	b.Pause(ctx, until.Add(-time.Minute))
	r = budgetRow(t, pool, "alpaca")
	require.True(t, r.PausedUntil.Equal(until), "paused_until %v, want %v", *r.PausedUntil, until)
}

// TestWaitFollowsInjectedClock: with an injected clock, Wait returns when that clock reaches
// the send time and not before, however the wall clock moves; a cancelled context ends it at
// once, and its token stays taken.
func TestWaitFollowsInjectedClock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	clock := newFakeClock(t0)
	// 1 token a second, 1 at most.
	b := newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 120, Pace: 0.5, Burst: 1, Now: clock.Now})

	require.NoError(t, b.Wait(ctx), "the full bucket's token goes at once")

	type result struct {
		at  time.Time // the fake clock when Wait returned
		err error
	}
	done := make(chan result, 1)
	go func() {
		err := b.Wait(ctx)
		done <- result{clock.Now(), err}
	}()
	// Once the token is booked (the bucket is in debt), the clock moves in steps to just
	// before the send time, t0 + 1 s.
	booked(t, b, 2)
	moved := make(chan struct{})
	go func() {
		defer close(moved)
		for range 99 {
			clock.Add(10 * time.Millisecond)
			time.Sleep(time.Millisecond)
		}
	}()
	<-moved
	require.Equal(t, t0.Add(990*time.Millisecond), clock.Now())
	select {
	case r := <-done:
		t.Fatalf("Wait returned at %v, before the send time %v (err %v)", r.at, t0.Add(time.Second), r.err)
	case <-time.After(5 * pollStep):
	}
	clock.Set(t0.Add(time.Second))
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.False(t, r.at.Before(t0.Add(time.Second)), "returned at %v", r.at)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return once the clock reached the send time")
	}

	// The next token is due at t0 + 2 s, which the clock never reaches: cancelling ends the
	// wait promptly with the context's error.
	waitCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- b.Wait(waitCtx) }()
	booked(t, b, 3)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(time.Second):
		t.Fatal("Wait did not return after its context was cancelled")
	}
	// Its token is not given back: the next is due at t0 + 3 s.
	send, err := b.take(ctx)
	require.NoError(t, err)
	require.Equal(t, t0.Add(3*time.Second), send.UTC())

	// A context ended before Wait asks returns its error too.
	require.ErrorIs(t, b.Wait(waitCtx), context.Canceled)
}

// TestPauseHoldsSleepingWaits: a Wait booked before a Pause of the same process sleeps on to
// the pause's end.
func TestPauseHoldsSleepingWaits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	clock := newFakeClock(t0)
	b := newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 120, Pace: 0.5, Burst: 1, Now: clock.Now})
	require.NoError(t, b.Wait(ctx))

	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }() // booked for t0 + 1 s
	booked(t, b, 2)
	b.Pause(ctx, t0.Add(5*time.Second))
	clock.Set(t0.Add(2 * time.Second))
	select {
	case err := <-done:
		t.Fatalf("Wait returned during the pause (err %v)", err)
	case <-time.After(5 * pollStep):
	}
	clock.Set(t0.Add(5 * time.Second))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return once the pause ended")
	}
}

// TestSchedule checks the bucket's arithmetic on an injected clock: burst, pace, refill capped
// at burst, debts, and pauses during which nothing accrues.
func TestSchedule(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	clock := newFakeClock(t0)
	// 1 token a second, 2 at most.
	b := newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 120, Pace: 0.5, Burst: 2, Now: clock.Now})
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	takeAt := func(at float64, want float64) {
		t.Helper()
		clock.Set(sec(at))
		send, err := b.take(ctx)
		require.NoError(t, err)
		require.Equal(t, sec(want), send.UTC(), "token taken at t0+%gs", at)
	}

	takeAt(0, 0) // the burst
	takeAt(0, 0)
	takeAt(0, 1) // then one a second, booked ahead
	takeAt(0, 2)
	takeAt(0.5, 3)
	takeAt(20, 20) // a long quiet spell refills the burst, no more
	takeAt(20, 20)
	takeAt(20, 21)

	// A pause from t0+20 s to t0+30 s: the debt of the token booked for t0+21 s is paid after
	// the pause, so the next token is due at t0+32 s, not with the pause's end.
	b.Pause(ctx, sec(30))
	takeAt(25, 32)
	// A shorter pause changes nothing.
	b.Pause(ctx, sec(26))
	takeAt(25, 33)
	// After the pause, the refill resumes: 20 s later the bucket is full again.
	takeAt(60, 60)
	takeAt(60, 60)
	takeAt(60, 61)
	// A pause on a full bucket lets the burst go at its end, then the pace.
	clock.Set(sec(100))
	b.Pause(ctx, sec(110))
	takeAt(101, 110)
	takeAt(101, 110)
	takeAt(101, 111)

	r := budgetRow(t, pool, "alpaca")
	require.InDelta(t, -1, r.Tokens, 1e-9)
	require.Equal(t, sec(110), r.PausedUntil.UTC())
	require.Equal(t, sec(101), r.UpdatedAt.UTC())
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	pool := &pgxpool.Pool{} // never used: validate only checks it is there
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string // empty: valid
		wantBurst int
	}{
		{name: "defaults", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: 200}, wantBurst: 5},
		{name: "no pool", cfg: Config{Provider: "alpaca", PerMinute: 200}, wantErr: "budget config: Pool is required"},
		{name: "no provider", cfg: Config{Pool: pool, PerMinute: 200}, wantErr: "budget config: Provider is required"},
		{name: "no per minute", cfg: Config{Pool: pool, Provider: "alpaca"}, wantErr: "budget config: PerMinute 0: want the plan's requests a minute, above 0"},
		{name: "negative per minute", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: -1}, wantErr: "PerMinute -1"},
		{name: "NaN per minute", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: math.NaN()}, wantErr: "PerMinute NaN"},
		{name: "infinite per minute", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: math.Inf(1)}, wantErr: "PerMinute +Inf"},
		{name: "pace above 1", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Pace: 1.5}, wantErr: "Pace 1.5"},
		{name: "negative pace", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Pace: -0.5}, wantErr: "Pace -0.5"},
		{name: "negative burst", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Burst: -1}, wantErr: "Burst -1: want at least 1"},
		{
			name:    "burst and pace above the plan",
			cfg:     Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Burst: 11},
			wantErr: "budget config: Burst 11 + Pace 0.95 × PerMinute 200 allows 201 requests in a 60 s window, more than the plan's 200: lower Burst to 10 or Pace to 0.945 at most",
		},
		{name: "full pace leaves no room for a burst", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: 600, Pace: 1, Burst: 1}, wantErr: "more than the plan's 600"},
		{name: "exactly the plan", cfg: Config{Pool: pool, Provider: "alpaca", PerMinute: 600, Pace: 599.0 / 600, Burst: 1}, wantBurst: 1},
		{name: "small plan, default burst shrinks", cfg: Config{Pool: pool, Provider: "massive", PerMinute: 60, Pace: 0.9}, wantBurst: 5},
		{name: "smaller plan, default burst shrinks more", cfg: Config{Pool: pool, Provider: "massive", PerMinute: 40}, wantBurst: 2},
		{name: "tiny plan needs a lower pace", cfg: Config{Pool: pool, Provider: "massive", PerMinute: 5}, wantErr: "lower Burst to 0 or Pace to 0.8 at most"},
		{name: "tiny plan with a lower pace", cfg: Config{Pool: pool, Provider: "massive", PerMinute: 5, Pace: 0.8}, wantBurst: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg.withDefaults()
			err := cfg.validate()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantBurst, cfg.Burst)
		})
	}

	_, err := New(t.Context(), Config{Provider: "alpaca", PerMinute: 200})
	require.EqualError(t, err, "budget config: Pool is required")
}

// TestNewReconfiguresTheRow: a process started with another plan takes the row over (last
// writer wins) and says so; the tokens are kept, capped at the new burst.
func TestNewReconfiguresTheRow(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	clock := newFakeClock(t0)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 120, Pace: 0.5, Burst: 2, Now: clock.Now, Logger: logger})
	r := budgetRow(t, pool, "alpaca")
	require.Equal(t, row{Rate: 1, Burst: 2, Tokens: 2, UpdatedAt: t0}, row{r.Rate, r.Burst, r.Tokens, r.UpdatedAt.UTC(), r.PausedUntil})
	require.Contains(t, logs.String(), "provider budget created")
	require.NotContains(t, logs.String(), "level=WARN")

	logs.Reset()
	newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 240, Pace: 0.75, Burst: 10, Now: clock.Now, Logger: logger})
	r = budgetRow(t, pool, "alpaca")
	require.Equal(t, row{Rate: 3, Burst: 10, Tokens: 2, UpdatedAt: t0}, row{r.Rate, r.Burst, r.Tokens, r.UpdatedAt.UTC(), r.PausedUntil})
	out := logs.String()
	require.Contains(t, out, "level=WARN")
	for _, s := range []string{"provider=alpaca", "pace_per_minute_before=60", "pace_per_minute=180", "burst_before=2", "burst=10"} {
		require.Contains(t, out, s)
	}

	logs.Reset()
	newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 240, Pace: 0.75, Burst: 10, Now: clock.Now, Logger: logger})
	require.Empty(t, logs.String(), "the same configuration again: nothing to say")

	newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 240, Pace: 0.75, Burst: 1, Now: clock.Now, Logger: logger})
	r = budgetRow(t, pool, "alpaca")
	require.Equal(t, 1.0, r.Burst)
	require.Equal(t, 1.0, r.Tokens, "the tokens are capped at the new burst")

	// Another provider has a budget of its own.
	newBudget(t, Config{Pool: pool, Provider: "massive", PerMinute: 60, Pace: 0.5, Burst: 1, Now: clock.Now})
	require.Equal(t, 0.5, budgetRow(t, pool, "massive").Rate)
	require.Equal(t, 3.0, budgetRow(t, pool, "alpaca").Rate)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	clock := newFakeClock(t0)
	reg := prometheus.NewPedanticRegistry()
	b := newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Pace: 0.9, Burst: 2, Now: clock.Now, Registerer: reg})
	require.NoError(t, b.Wait(ctx))
	require.NoError(t, b.Wait(ctx))
	b.Pause(ctx, t0)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP backfill_provider_budget_limit_per_minute The provider plan's requests a minute for the whole deployment, as this process is configured.
# TYPE backfill_provider_budget_limit_per_minute gauge
backfill_provider_budget_limit_per_minute{provider="alpaca"} 200
# HELP backfill_provider_budget_pace_per_minute Requests a minute the shared budget allows (the plan times the pace), as this process is configured.
# TYPE backfill_provider_budget_pace_per_minute gauge
backfill_provider_budget_pace_per_minute{provider="alpaca"} 180
# HELP backfill_provider_budget_pauses_total Pauses of the shared budget this process asked for (the provider said to wait: Retry-After, X-RateLimit-Reset).
# TYPE backfill_provider_budget_pauses_total counter
backfill_provider_budget_pauses_total{provider="alpaca"} 1
# HELP backfill_provider_budget_errors_total Statements on the shared budget that failed (the database unreachable, the budget's row missing); the request was not sent.
# TYPE backfill_provider_budget_errors_total counter
backfill_provider_budget_errors_total{provider="alpaca"} 0
`), "backfill_provider_budget_limit_per_minute", "backfill_provider_budget_pace_per_minute",
		"backfill_provider_budget_pauses_total", "backfill_provider_budget_errors_total"))
	require.Equal(t, 2.0, testutil.ToFloat64(b.metrics.requests))
	n, err := testutil.GatherAndCount(reg, "backfill_provider_budget_wait_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, uint64(2), histogramCount(t, reg, "backfill_provider_budget_wait_seconds"))

	// Budgets of other providers share the registry; a second one of the same provider is a
	// configuration error.
	newBudget(t, Config{Pool: pool, Provider: "massive", PerMinute: 100, Now: clock.Now, Registerer: reg})
	_, err = New(ctx, Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Pace: 0.9, Burst: 2, Now: clock.Now, Registerer: reg})
	require.ErrorContains(t, err, `register provider budget metrics of "alpaca"`)
}

// TestDatabaseFailures: an unreachable database or a missing row fails Wait with the cause
// wrapped (the request is not sent); Pause logs and carries on.
func TestDatabaseFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	other := replicaPool(t, pool)
	b := newBudget(t, Config{Pool: other, Provider: "alpaca", PerMinute: 200, Logger: logger})
	other.Close()
	err := b.Wait(ctx)
	require.ErrorContains(t, err, `take a token of provider budget "alpaca": `)
	b.Pause(ctx, time.Now().Add(time.Second))
	require.Contains(t, logs.String(), `level=WARN msg="pause provider budget"`)
	require.Equal(t, 2.0, testutil.ToFloat64(b.metrics.failures))

	b = newBudget(t, Config{Pool: pool, Provider: "alpaca", PerMinute: 200, Logger: logger})
	_, err = pool.Exec(ctx, `DELETE FROM provider_budget`)
	require.NoError(t, err)
	err = b.Wait(ctx)
	require.ErrorIs(t, err, pgx.ErrNoRows)
	require.ErrorContains(t, err, "no row in provider_budget")
	require.False(t, errors.Is(err, context.Canceled))
}

// booked waits until b has taken n tokens.
func booked(t *testing.T, b *Budget, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return testutil.ToFloat64(b.metrics.requests) == float64(n) }, 5*time.Second, time.Millisecond)
}

func histogramCount(t *testing.T, reg prometheus.Gatherer, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// syncBuffer is a bytes.Buffer for a logger that may be used from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
