package completeness

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// checkNow is the tests' clock: Friday 2026-12-04 22:00Z, after the regular close. An 8-day
// window reaches back to Thursday 2026-11-26 22:00Z: the sessions of Friday 2026-11-27 (an
// early close, 14 quarter hours), and Monday 11-30 to Friday 12-04 (26 each). Thanksgiving is
// not a session.
var checkNow = time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)

const (
	checkSessions = 6
	checkBars     = 14 + 5*26
)

// addDef creates the symbol and an enabled definition; it returns the definition's id and the
// symbol's.
func addDef(t *testing.T, pool *pgxpool.Pool, ticker string, tf market.Timeframe, windowDays int) (id, symbolID string) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(), `
INSERT INTO symbols (ticker) VALUES ($1) ON CONFLICT (ticker) DO UPDATE SET ticker = EXCLUDED.ticker
RETURNING id::text`, ticker).Scan(&symbolID))
	require.NoError(t, pool.QueryRow(t.Context(), `
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority)
VALUES (CASE WHEN $3 IN ('d1', 'w1') THEN 'fetch_historical' ELSE 'fetch_intraday' END, $1, $2, $3, $4, 100)
RETURNING id::text`, ticker, symbolID, string(tf), windowDays).Scan(&id))
	return id, symbolID
}

// drain plans at now (new slices only, no refresh of the open one) and executes every due run with the provider, as the orchestrator does
// (Claim, Bars of the run's request, Write), until none is left.
func drain(t *testing.T, pool *pgxpool.Pool, p orchestrator.Provider, now time.Time) (runs int) {
	t.Helper()
	ctx := t.Context()
	_, err := orchestrator.EnqueueChanges(ctx, pool, now, orchestrator.SliceSizesFor(10000))
	require.NoError(t, err)
	for {
		claimed, err := orchestrator.Claim(ctx, pool, now, "test", time.Minute, 100)
		require.NoError(t, err)
		if len(claimed) == 0 {
			return runs
		}
		for _, r := range claimed {
			req := r.Request()
			bars, err := p.Bars(ctx, marketdata.Request{Symbol: r.Symbol, Timeframe: r.Timeframe, From: req.From, To: req.To})
			require.NoError(t, err)
			_, err = orchestrator.Write(ctx, pool, now, r, orchestrator.Fetched{Provider: p.Name(), Bars: bars})
			require.NoError(t, err)
			runs++
		}
	}
}

func newChecker(t *testing.T, pool *pgxpool.Pool, grid market.Grid, reg prometheus.Registerer) *Checker {
	t.Helper()
	c, err := New(Config{Pool: pool, Grid: grid, Now: func() time.Time { return checkNow }, Registerer: reg})
	require.NoError(t, err)
	return c
}

func synthetic(t *testing.T) *marketdata.Synthetic {
	t.Helper()
	s, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Now: func() time.Time { return checkNow }})
	require.NoError(t, err)
	return s
}

type figures struct{ Expected, Fetched, Complete, Holes int }

func figuresOf(t *testing.T, pool *pgxpool.Pool, defID string) figures {
	t.Helper()
	var f figures
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT sessions_expected, sessions_fetched, sessions_complete, holes FROM coverage_completeness WHERE job_def_id = $1`, defID).
		Scan(&f.Expected, &f.Fetched, &f.Complete, &f.Holes))
	return f
}

type holeRow struct {
	Date, Kind, State string
	Repairs           int
	From, To          time.Time
}

func holesOf(t *testing.T, pool *pgxpool.Pool, defID string) []holeRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT to_char(session_date, 'YYYY-MM-DD'), kind, state, repairs, range_from, range_to
FROM coverage_holes WHERE job_def_id = $1 ORDER BY session_date`, defID)
	require.NoError(t, err)
	defer rows.Close()
	var out []holeRow
	for rows.Next() {
		var h holeRow
		require.NoError(t, rows.Scan(&h.Date, &h.Kind, &h.State, &h.Repairs, &h.From, &h.To))
		h.From, h.To = h.From.UTC(), h.To.UTC()
		out = append(out, h)
	}
	require.NoError(t, rows.Err())
	return out
}

func countBars(t *testing.T, pool *pgxpool.Pool, symbolID string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM ohlc_bars_v2 WHERE symbol_id = $1`, symbolID).Scan(&n))
	return n
}

// TestDeletedSessionIsFoundAndHealed: deleting one session's bars marks the definition; the next
// pass names the session as a hole, raises the gauge and queues a repair of exactly that
// session; once the repair ran, the pass after finds it healed.
func TestDeletedSessionIsFoundAndHealed(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	p := synthetic(t)
	def, sym := addDef(t, pool, "AAPL", market.M15, 8)
	drain(t, pool, p, checkNow)
	require.Equal(t, checkBars, countBars(t, pool, sym))

	reg := prometheus.NewPedanticRegistry()
	c := newChecker(t, pool, p.Grid(), reg)
	res, err := c.Pass(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, res.Checked, "never checked: the sweep takes it")
	require.Zero(t, res.Holes)
	require.Equal(t, figures{Expected: checkSessions, Fetched: checkSessions, Complete: checkSessions}, figuresOf(t, pool, def))

	res, err = c.Pass(t.Context())
	require.NoError(t, err)
	require.Equal(t, PassResult{Checked: 1}, res, "nothing marked; the sweep's share (at least one definition a pass) checks it again")

	// One session of m15 bars goes, by hand.
	exec(t, pool, `DELETE FROM ohlc_bars_v2 WHERE symbol_id = $1 AND (ts AT TIME ZONE 'America/New_York')::date = '2026-12-02'`, sym)
	require.Equal(t, checkBars-26, countBars(t, pool, sym))
	res, err = c.Pass(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, res.Marked, "the delete marked the definition")
	require.Equal(t, 1, res.Holes)
	require.Equal(t, 1, res.Repairs)
	// 09:30 to 16:00 ET (EST): the session's bar starts and the end of its last bar.
	require.Equal(t, []holeRow{{Date: "2026-12-02", Kind: KindMissing, State: StateRepairing, Repairs: 1,
		From: time.Date(2026, 12, 2, 14, 30, 0, 0, time.UTC), To: time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)}}, holesOf(t, pool, def))
	require.Equal(t, figures{Expected: checkSessions, Fetched: checkSessions, Complete: checkSessions - 1, Holes: 1}, figuresOf(t, pool, def))
	require.EqualValues(t, 1, testutil.ToFloat64(c.metrics.holes.WithLabelValues("m15", StateRepairing)))
	require.EqualValues(t, 1, testutil.ToFloat64(c.metrics.found.WithLabelValues("m15", KindMissing)))
	var repair struct {
		From, To time.Time
		By       string
	}
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT slice_from, slice_to, triggered_by FROM job_runs WHERE status = 'queued'`).
		Scan(&repair.From, &repair.To, &repair.By))
	require.Equal(t, "repair", repair.By)
	require.True(t, repair.From.Equal(time.Date(2026, 12, 2, 14, 30, 0, 0, time.UTC)) && repair.To.Equal(time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)),
		"the repair fetches exactly the session: %s – %s", repair.From, repair.To)

	// A pass while the repair is queued changes nothing and queues nothing more.
	res, err = c.Pass(t.Context())
	require.NoError(t, err)
	require.Zero(t, res.Repairs)

	require.Equal(t, 1, drain(t, pool, p, checkNow), "only the repair run")
	require.Equal(t, checkBars, countBars(t, pool, sym))
	res, err = c.Pass(t.Context())
	require.NoError(t, err)
	require.Zero(t, res.Holes)
	require.Empty(t, holesOf(t, pool, def))
	require.Equal(t, figures{Expected: checkSessions, Fetched: checkSessions, Complete: checkSessions}, figuresOf(t, pool, def))
	require.Zero(t, testutil.ToFloat64(c.metrics.holes.WithLabelValues("m15", StateRepairing)))
	require.EqualValues(t, 1, testutil.ToFloat64(c.metrics.healed.WithLabelValues("m15")))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// dropping answers without the bars of one New York date, as a provider with a partial answer.
type dropping struct {
	*marketdata.Synthetic
	date  string
	times int // how many answers drop it; -1: all
}

func (d *dropping) Bars(ctx context.Context, req marketdata.Request) ([]marketdata.Bar, error) {
	bars, err := d.Synthetic.Bars(ctx, req)
	if err != nil || d.times == 0 {
		return bars, err
	}
	ny := market.NYSE().Location()
	out := bars[:0]
	dropped := false
	for _, b := range bars {
		if b.TS.In(ny).Format(time.DateOnly) == d.date {
			dropped = true
			continue
		}
		out = append(out, b)
	}
	if dropped && d.times > 0 {
		d.times--
	}
	return out, nil
}

// TestPartialAnswerIsFoundAndHealed: a provider answer missing one session leaves a hole that
// the pass after the backfill finds and whose repair heals it.
func TestPartialAnswerIsFoundAndHealed(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	p := &dropping{Synthetic: synthetic(t), date: "2026-12-01", times: 1}
	def, sym := addDef(t, pool, "MSFT", market.M15, 8)
	drain(t, pool, p, checkNow)
	require.Equal(t, checkBars-26, countBars(t, pool, sym))

	c := newChecker(t, pool, p.Grid(), nil)
	res, err := c.Pass(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, res.Repairs)
	holes := holesOf(t, pool, def)
	require.Len(t, holes, 1)
	require.Equal(t, "2026-12-01", holes[0].Date)
	require.Equal(t, KindMissing, holes[0].Kind)

	drain(t, pool, p, checkNow)
	_, err = c.Pass(t.Context())
	require.NoError(t, err)
	require.Empty(t, holesOf(t, pool, def))
	require.Equal(t, checkBars, countBars(t, pool, sym))
}

// TestHoleIsGivenUpAfterRepairsBringNothing: a session the provider never returns is repaired
// MaxRepairs times, then given up: it stays visible and is not queued again, until forced.
func TestHoleIsGivenUpAfterRepairsBringNothing(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	p := &dropping{Synthetic: synthetic(t), date: "2026-11-30", times: -1}
	def, _ := addDef(t, pool, "NOPE", market.M15, 8)
	drain(t, pool, p, checkNow)
	c := newChecker(t, pool, p.Grid(), nil)
	for i := 1; i <= 3; i++ {
		res, err := c.Pass(t.Context())
		require.NoError(t, err)
		require.Equal(t, 1, res.Repairs, "repair %d", i)
		require.Equal(t, 1, drain(t, pool, p, checkNow))
	}
	res, err := c.Pass(t.Context())
	require.NoError(t, err)
	require.Zero(t, res.Repairs, "given up after three repairs")
	holes := holesOf(t, pool, def)
	require.Len(t, holes, 1)
	require.Equal(t, StateGivenUp, holes[0].State)
	require.Equal(t, 3, holes[0].Repairs)
	var reason string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT reason FROM coverage_holes WHERE job_def_id = $1`, def).Scan(&reason))
	require.Contains(t, reason, "after 3 repairs")
	require.EqualValues(t, 1, testutil.ToFloat64(c.metrics.holes.WithLabelValues("m15", StateGivenUp)))

	// Further passes leave it alone, even when its bars change.
	exec(t, pool, `DELETE FROM ohlc_bars_v2 WHERE ts = (SELECT min(ts) FROM ohlc_bars_v2)`)
	res, err = c.Pass(t.Context())
	require.NoError(t, err)
	holes = holesOf(t, pool, def)
	require.Equal(t, 1, res.Repairs, "the newly deleted bar is a new (partial) hole")
	require.Len(t, holes, 2)
	require.Equal(t, holeRow{Date: "2026-11-27", Kind: KindPartial, State: StateRepairing, Repairs: 1,
		From: time.Date(2026, 11, 27, 14, 30, 0, 0, time.UTC), To: time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)}, holes[0],
		"the early close's session, to 13:00 ET")
	require.Equal(t, StateGivenUp, holes[1].State, "the given-up hole is not queued again")

	// An operator forces a repair of everything.
	results, err := c.Check(t.Context(), []string{def})
	require.NoError(t, err)
	n, err := c.Repair(t.Context(), results, true)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the given-up hole; the other's repair is still queued")
	holes = holesOf(t, pool, def)
	require.Equal(t, StateRepairing, holes[1].State)
	require.Equal(t, 4, holes[1].Repairs)
}

// TestFailedRunIsAHole: a run that failed for good leaves the sessions it should have fetched
// as holes of kind failed, repaired like any other.
func TestFailedRunIsAHole(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	p := synthetic(t)
	def, sym := addDef(t, pool, "FAIL", market.M15, 8)
	_, err := orchestrator.Enqueue(t.Context(), pool, checkNow, orchestrator.SliceSizesFor(10000))
	require.NoError(t, err)
	runs, err := orchestrator.Claim(t.Context(), pool, checkNow, "test", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	out, err := orchestrator.Fail(t.Context(), pool, checkNow, runs[0],
		&marketdata.Error{Provider: "synthetic", Kind: marketdata.Retryable, Code: marketdata.CodeInjected, Message: "injected"},
		orchestrator.RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	require.Equal(t, orchestrator.Failed, out)

	c := newChecker(t, pool, p.Grid(), nil)
	res, err := c.Pass(t.Context())
	require.NoError(t, err)
	require.Equal(t, checkSessions, res.Holes)
	require.Equal(t, 1, res.Repairs, "the six sessions are next to each other: one run")
	for _, h := range holesOf(t, pool, def) {
		require.Equal(t, KindFailed, h.Kind)
	}
	require.Equal(t, figures{Expected: checkSessions, Holes: checkSessions}, figuresOf(t, pool, def))
	drain(t, pool, p, checkNow)
	require.Equal(t, checkBars, countBars(t, pool, sym))
	_, err = c.Pass(t.Context())
	require.NoError(t, err)
	require.Empty(t, holesOf(t, pool, def))
	require.Equal(t, figures{Expected: checkSessions, Fetched: checkSessions, Complete: checkSessions}, figuresOf(t, pool, def))
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(t.Context(), sql, args...)
	require.NoError(t, err)
}
