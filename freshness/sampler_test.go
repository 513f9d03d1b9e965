package freshness

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// def is a job definition the tests insert.
type def struct {
	symbol   string
	tf       market.Timeframe
	jobType  string // default: fetch_intraday or fetch_historical by timeframe
	disabled bool
}

// addDef creates the symbol (if needed) and the definition; it returns the symbol's id.
func addDef(t *testing.T, pool *pgxpool.Pool, d def) (symbolID string) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, pool.QueryRow(ctx, `
INSERT INTO symbols (ticker) VALUES ($1)
ON CONFLICT (ticker) DO UPDATE SET ticker = EXCLUDED.ticker
RETURNING id::text`, d.symbol).Scan(&symbolID))
	_, err := pool.Exec(ctx, `
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, enabled)
VALUES (coalesce(nullif($4, ''), CASE WHEN $3 IN ('d1', 'w1') THEN 'fetch_historical' ELSE 'fetch_intraday' END),
        $1, $2, $3, 7, $5)`, d.symbol, symbolID, string(d.tf), d.jobType, !d.disabled)
	require.NoError(t, err)
	return symbolID
}

// fetched records that the fetches of (symbol, tf) covered the week up to reached, as the
// orchestrator's write does (to_ts = upper(covered)); nil reached stores a row without coverage.
func fetched(t *testing.T, pool *pgxpool.Pool, symbol, symbolID string, tf market.Timeframe, reached *time.Time) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
INSERT INTO coverage_status (symbol, timeframe, symbol_id, covered, from_ts, to_ts)
VALUES ($1, $2, $3,
        CASE WHEN $4::timestamptz IS NULL THEN '{}'::tstzmultirange
             ELSE tstzmultirange(tstzrange($4::timestamptz - interval '7 days', $4::timestamptz)) END,
        $4::timestamptz - interval '7 days', $4::timestamptz)`, symbol, string(tf), symbolID, reached)
	require.NoError(t, err)
}

// addFetched is addDef then fetched through reached.
func addFetched(t *testing.T, pool *pgxpool.Pool, d def, reached time.Time) {
	t.Helper()
	fetched(t, pool, d.symbol, addDef(t, pool, d), d.tf, &reached)
}

func newSampler(t *testing.T, pool *pgxpool.Pool, now time.Time, reg prometheus.Registerer) *Sampler {
	t.Helper()
	s, err := New(Config{Pool: pool, Grid: market.AlpacaGrid(), Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	return s
}

// lagHistogram reads the lag histogram of tf from reg: its count, sum and cumulative count by
// upper bound.
func lagHistogram(t *testing.T, reg *prometheus.Registry, tf market.Timeframe) (count uint64, sum float64, buckets map[float64]uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "backfill_freshness_lag_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != string(tf) {
				continue
			}
			h := m.GetHistogram()
			buckets = map[float64]uint64{}
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			return h.GetSampleCount(), h.GetSampleSum(), buckets
		}
	}
	t.Fatalf("no lag histogram for %s", tf)
	return 0, 0, nil
}

// TestSampleDuringSession: at 10:20 New York on a Wednesday, each definition lags by what its
// fetches missed on its calendar; definitions not fetched yet are counted apart, disabled ones
// not at all, and the metrics say the same.
func TestSampleDuringSession(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addFetched(t, pool, def{symbol: "AAPL", tf: market.M15}, ny(12, 2, 10, 16))   // lag 0
	addDef(t, pool, def{symbol: "AAPL", tf: market.M15, jobType: "run_forecast"}) // the same series: once
	addFetched(t, pool, def{symbol: "MSFT", tf: market.M15}, ny(12, 2, 10, 5))    // 900 s
	addFetched(t, pool, def{symbol: "NVDA", tf: market.M15}, ny(12, 1, 20, 0))    // since last evening
	addDef(t, pool, def{symbol: "AMZN", tf: market.M15})                          // no coverage row
	fetched(t, pool, "TSLA", addDef(t, pool, def{symbol: "TSLA", tf: market.M15}), market.M15, nil)
	addFetched(t, pool, def{symbol: "IBM", tf: market.M15, disabled: true}, ny(11, 2, 10, 0))
	// 24/7: 14:50Z is two quarter hours short of 15:15Z (NYSE would say the same here; at night it
	// would not, see TestSampleAtNight).
	addFetched(t, pool, def{symbol: "BTC/USD", tf: market.M15}, time.Date(2026, 12, 2, 14, 50, 0, 0, time.UTC))
	addFetched(t, pool, def{symbol: "AAPL", tf: market.H1}, ny(12, 2, 10, 16)) // 0
	addFetched(t, pool, def{symbol: "MSFT", tf: market.H1}, ny(12, 2, 9, 30))  // 3600 s
	addFetched(t, pool, def{symbol: "AAPL", tf: market.D1}, ny(12, 1, 20, 0))  // Tuesday's bar ends at midnight
	addFetched(t, pool, def{symbol: "MSFT", tf: market.D1}, ny(12, 2, 0, 30))  // 0
	addFetched(t, pool, def{symbol: "AAPL", tf: market.W1}, ny(11, 30, 0, 0))  // last week's bar: 0
	addFetched(t, pool, def{symbol: "MSFT", tf: market.W1}, ny(11, 27, 20, 0)) // one week
	addFetched(t, pool, def{symbol: "BTC/USD", tf: market.H4}, session)        // 0
	addDef(t, pool, def{symbol: "ETH/USD", tf: market.H4, disabled: true})     // ignored

	reg := prometheus.NewPedanticRegistry()
	s := newSampler(t, pool, session, reg)
	rep, err := s.Sample(t.Context())
	require.NoError(t, err)
	require.True(t, session.Equal(rep.At), "the injected clock: %s", rep.At)

	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	require.Equal(t, map[market.Timeframe]Stats{
		market.M15: {Definitions: 6, Unfetched: 2, Worst: 14*time.Hour + 15*time.Minute, P50: sec(900),
			P99: 14*time.Hour + 15*time.Minute, WorstSymbol: "NVDA"},
		market.H1: {Definitions: 2, Worst: time.Hour, P50: 0, P99: time.Hour, WorstSymbol: "MSFT"},
		market.H4: {Definitions: 1},
		market.D1: {Definitions: 2, Worst: 24 * time.Hour, P99: 24 * time.Hour, WorstSymbol: "AAPL"},
		market.W1: {Definitions: 2, Worst: 7 * 24 * time.Hour, P99: 7 * 24 * time.Hour, WorstSymbol: "MSFT"},
	}, rep.Timeframes)

	require.Equal(t, 14*3600.0+900, testutil.ToFloat64(s.metrics.worst.WithLabelValues("m15")))
	require.Equal(t, 3600.0, testutil.ToFloat64(s.metrics.worst.WithLabelValues("h1")))
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.worst.WithLabelValues("h4")))
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.unfetched.WithLabelValues("m15")))
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.unfetched.WithLabelValues("h1")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.samples))
	count, sum, buckets := lagHistogram(t, reg, market.M15)
	require.Equal(t, uint64(4), count, "one observation per fetched m15 series")
	require.Equal(t, 0.0+900+1800+51300, sum)
	require.Equal(t, map[float64]uint64{0: 1, 60: 1, 300: 1, 900: 2, 1800: 3, 3600: 3, 14400: 3, 86400: 4, 259200: 4, 604800: 4}, buckets)
	count, _, _ = lagHistogram(t, reg, market.H4)
	require.Equal(t, uint64(1), count)

	lint, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, lint)

	// A second sample observes again and moves the gauges to the new state.
	_, err = pool.Exec(t.Context(), `UPDATE coverage_status SET to_ts = $1 WHERE symbol = 'NVDA'`, ny(12, 2, 10, 17))
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `UPDATE job_definitions SET enabled = false WHERE symbol = 'AMZN'`)
	require.NoError(t, err)
	rep, err = s.Sample(t.Context())
	require.NoError(t, err)
	require.Equal(t, Stats{Definitions: 5, Unfetched: 1, Worst: sec(1800), P50: 0, P99: sec(1800), WorstSymbol: "BTC/USD"}, rep.Timeframes[market.M15])
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.samples))
	require.Equal(t, 1800.0, testutil.ToFloat64(s.metrics.worst.WithLabelValues("m15")))
	count, _, _ = lagHistogram(t, reg, market.M15)
	require.Equal(t, uint64(8), count)
}

// TestSampleAtNight: at 23:00 New York the session's last bar closed at 20:00, so a series fetched
// through 20:00 is fresh all night; the same instant on the 24/7 calendar is three hours old.
func TestSampleAtNight(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	night := ny(12, 2, 23, 0)
	addFetched(t, pool, def{symbol: "AAPL", tf: market.M15}, ny(12, 2, 20, 0))
	addFetched(t, pool, def{symbol: "MSFT", tf: market.M15}, ny(12, 2, 19, 50))
	addFetched(t, pool, def{symbol: "BTC/USD", tf: market.M15}, ny(12, 2, 20, 0))
	addFetched(t, pool, def{symbol: "AAPL", tf: market.H4}, ny(12, 2, 20, 0))

	reg := prometheus.NewPedanticRegistry()
	s := newSampler(t, pool, night, reg)
	rep, err := s.Sample(t.Context())
	require.NoError(t, err)
	require.Equal(t, Stats{Definitions: 3, Worst: 3 * time.Hour, P50: 900 * time.Second, P99: 3 * time.Hour, WorstSymbol: "BTC/USD"},
		rep.Timeframes[market.M15])
	require.Equal(t, Stats{Definitions: 1}, rep.Timeframes[market.H4], "the 16:00–20:00 bar closed at 20:00")
	count, sum, _ := lagHistogram(t, reg, market.M15)
	require.Equal(t, uint64(3), count)
	require.Equal(t, 900.0+3*3600, sum)
}

// TestSampleWithoutDefinitions: the clock still comes back, and every timeframe reads zero.
func TestSampleWithoutDefinitions(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addFetched(t, pool, def{symbol: "AAPL", tf: market.M15, disabled: true}, ny(11, 1, 10, 0))
	reg := prometheus.NewPedanticRegistry()
	s := newSampler(t, pool, session, reg)
	rep, err := s.Sample(t.Context())
	require.NoError(t, err)
	require.True(t, session.Equal(rep.At))
	require.Len(t, rep.Timeframes, len(market.Timeframes()))
	for tf, st := range rep.Timeframes {
		require.Zero(t, st, tf)
	}
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.worst.WithLabelValues("m15")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.samples))
	// Every timeframe's series exist from the start, so dashboards and alerts see zeros, not gaps.
	require.Equal(t, 3*len(market.Timeframes())+3, mustCount(t, reg))
}

// TestSampleOnTheDatabaseClock: without Config.Now the clock is the database's, read with the
// rows: coverage stamped by the database an hour ahead is fresh, a month behind is stale.
func TestSampleOnTheDatabaseClock(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	ctx := t.Context()
	var before, after time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT now()`).Scan(&before))
	ahead := addDef(t, pool, def{symbol: "AAPL", tf: market.H1})
	behind := addDef(t, pool, def{symbol: "MSFT", tf: market.H1})
	_, err := pool.Exec(ctx, `
INSERT INTO coverage_status (symbol, timeframe, symbol_id, covered, from_ts, to_ts)
VALUES ('AAPL', 'h1', $1, tstzmultirange(tstzrange(now() - interval '7 days', now() + interval '1 hour')),
        now() - interval '7 days', now() + interval '1 hour'),
       ('MSFT', 'h1', $2, tstzmultirange(tstzrange(now() - interval '37 days', now() - interval '30 days')),
        now() - interval '37 days', now() - interval '30 days')`, ahead, behind)
	require.NoError(t, err)

	s, err := New(Config{Pool: pool, Grid: market.AlpacaGrid()})
	require.NoError(t, err)
	rep, err := s.Sample(ctx)
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, `SELECT now()`).Scan(&after))
	require.False(t, rep.At.Before(before) || rep.At.After(after), "clock %s not within [%s, %s]", rep.At, before, after)
	st := rep.Timeframes[market.H1]
	require.Equal(t, 2, st.Definitions)
	require.Equal(t, "MSFT", st.WorstSymbol)
	require.Greater(t, st.Worst, 25*24*time.Hour, "a month behind, whatever the calendar says today")
	require.Zero(t, st.P50, "fetched beyond now")
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	for name, cfg := range map[string]Config{
		"no pool":           {Grid: market.AlpacaGrid()},
		"no grid":           {Pool: pool},
		"negative interval": {Pool: pool, Grid: market.AlpacaGrid(), Interval: -time.Second},
	} {
		_, err := New(cfg)
		require.Error(t, err, name)
	}
	s, err := New(Config{Pool: pool, Grid: market.MassiveGrid()})
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, s.cfg.Interval)

	reg := prometheus.NewPedanticRegistry()
	_, err = New(Config{Pool: pool, Grid: market.AlpacaGrid(), Registerer: reg})
	require.NoError(t, err)
	_, err = New(Config{Pool: pool, Grid: market.AlpacaGrid(), Registerer: reg})
	require.ErrorContains(t, err, "register metrics", "one sampler per registry")
}

// mustCount is how many metrics reg gathers (a histogram counts once).
func mustCount(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	return n
}

// syncBuffer is a log destination safe for the sampler's goroutine and the test.
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

// next waits for the next sample of Start's loop.
func next(t *testing.T, sampled <-chan error) error {
	t.Helper()
	select {
	case err := <-sampled:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("no sample within 30 s")
		return nil
	}
}

// TestStartSamplesAtOnceThenEveryInterval: the first sample comes at once, the next ones every
// Interval; Start twice fails, Stop is idempotent and safe before Start.
func TestStartSamplesAtOnceThenEveryInterval(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addFetched(t, pool, def{symbol: "MSFT", tf: market.M15}, ny(12, 2, 10, 5))
	logs := &syncBuffer{}
	s, err := New(Config{Pool: pool, Grid: market.AlpacaGrid(), Now: func() time.Time { return session }, Interval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	sampled := make(chan error, 16)
	s.afterSample = func(_ Report, err error) { sampled <- err }
	require.NoError(t, s.Stop(t.Context()), "before Start")

	require.NoError(t, s.Start(t.Context()))
	require.Error(t, s.Start(t.Context()), "already started")
	require.NoError(t, next(t, sampled), "the first sample, at once although Interval is an hour")
	require.Equal(t, 900.0, testutil.ToFloat64(s.metrics.worst.WithLabelValues("m15")))
	require.Contains(t, logs.String(), "worst_symbol=MSFT", "the debug line names the worst symbol")
	require.NoError(t, s.Stop(t.Context()))
	require.NoError(t, s.Stop(t.Context()), "idempotent")
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.samples))

	fast, err := New(Config{Pool: pool, Grid: market.AlpacaGrid(), Now: func() time.Time { return session }, Interval: time.Millisecond})
	require.NoError(t, err)
	fastSampled := make(chan error, 16)
	fast.afterSample = func(_ Report, err error) {
		select {
		case fastSampled <- err:
		default:
		}
	}
	require.NoError(t, fast.Start(t.Context()))
	for range 3 {
		require.NoError(t, next(t, fastSampled))
	}
	require.NoError(t, fast.Stop(t.Context()))
	require.GreaterOrEqual(t, testutil.ToFloat64(fast.metrics.samples), 3.0)
}

// TestStartLogsFailuresAndRecovers: each failed sample is logged once at warn and counted; the
// loop keeps going and says when sampling works again.
func TestStartLogsFailuresAndRecovers(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addFetched(t, pool, def{symbol: "MSFT", tf: market.M15}, ny(12, 2, 10, 5))
	var failing atomic.Bool // acquiring a connection fails while set
	failing.Store(true)
	cfg := pool.Config()
	cfg.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) {
		if failing.Load() {
			return true, errors.New("injected: database unreachable")
		}
		return true, nil
	}
	broken, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(broken.Close)

	logs := &syncBuffer{}
	s, err := New(Config{Pool: broken, Grid: market.AlpacaGrid(), Now: func() time.Time { return session }, Interval: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	var mu sync.Mutex
	var injected, beforeSuccess int
	succeeded := false
	sampled := make(chan error, 1)
	s.afterSample = func(_ Report, err error) {
		mu.Lock()
		if err != nil && strings.Contains(err.Error(), "injected") {
			injected++
			if !succeeded {
				beforeSuccess++
			}
		}
		if err == nil {
			succeeded = true
		}
		mu.Unlock()
		select {
		case sampled <- err:
		default:
		}
	}
	require.NoError(t, s.Start(t.Context()))
	for n := 0; n < 2; {
		if err := next(t, sampled); err != nil {
			require.ErrorContains(t, err, "injected")
			n++
		}
	}
	failing.Store(false)
	for next(t, sampled) != nil {
	}
	require.NoError(t, s.Stop(t.Context()))

	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	require.GreaterOrEqual(t, injected, 2)
	require.Equal(t, injected, strings.Count(out, `level=WARN msg="freshness sample failed"`), "one warn line per failure:\n%s", out)
	require.Equal(t, float64(injected), testutil.ToFloat64(s.metrics.failures))
	require.Contains(t, out, "consecutive_failures=2")
	require.Contains(t, out, `msg="freshness sampling recovered" failed_samples=`+strconv.Itoa(beforeSuccess))
	require.NotContains(t, out, "context canceled", "the stop is no failure")
}

// TestStopInterruptsASample: Stop ends a sample stuck on a lock, within its context, and the
// interrupted sample is not reported as a failure.
func TestStopInterruptsASample(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	ctx := t.Context()
	addFetched(t, pool, def{symbol: "MSFT", tf: market.M15}, ny(12, 2, 10, 5))
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // only releases the lock
	_, err = tx.Exec(ctx, `LOCK TABLE coverage_status IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	logs := &syncBuffer{}
	s, err := New(Config{Pool: pool, Grid: market.AlpacaGrid(), Now: func() time.Time { return session },
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	sampled := make(chan error, 1)
	s.afterSample = func(_ Report, err error) { sampled <- err }
	require.NoError(t, s.Start(ctx))
	require.Eventually(t, func() bool {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'coverage_status'::regclass`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 30*time.Second, 10*time.Millisecond, "the sample waits for the lock")

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(stopCtx))
	require.ErrorIs(t, next(t, sampled), context.Canceled)
	require.Zero(t, testutil.ToFloat64(s.metrics.failures))
	require.NotContains(t, logs.String(), "failed")
}
