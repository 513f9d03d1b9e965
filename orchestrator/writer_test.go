package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// claimOne queues one run of d for slice s, due at now, and claims it at now (zero: the
// database clock).
func claimOne(t *testing.T, pool *pgxpool.Pool, now time.Time, d def, s Slice) Run {
	t.Helper()
	var due *time.Time
	if !now.IsZero() {
		due = &now
	}
	exec(t, pool, `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, next_attempt_at)
SELECT id, symbol, timeframe, job_type, $2, $3, coalesce($4::timestamptz, now()) FROM job_definitions WHERE id = $1
ON CONFLICT (job_def_id, slice_from, slice_to) DO UPDATE SET status = 'queued', next_attempt_at = EXCLUDED.next_attempt_at`,
		d.ID, s.From, s.To, due)
	runs, err := Claim(t.Context(), pool, now, "w1", time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	return runs[0]
}

func hourBars(from time.Time, n int, price float64) []marketdata.Bar {
	bars := make([]marketdata.Bar, n)
	for i := range bars {
		bars[i] = marketdata.Bar{TS: from.Add(time.Duration(i) * time.Hour), Open: price, High: price + 1, Low: price - 1, Close: price + 0.5, Volume: 1000}
	}
	return bars
}

func countBars(t *testing.T, pool *pgxpool.Pool, d def) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM ohlc_bars_v2 WHERE symbol_id = $1 AND timeframe = $2`, d.SymbolID, string(d.Timeframe)).Scan(&n))
	return n
}

func TestWriteBarsOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "AAPL", market.H1, 100, 30)
	s := Slice{From: ts("2026-11-20T00:00:00Z"), To: ts("2026-11-21T00:00:00Z")}
	bars := hourBars(s.From, 24, 100.25)
	stray := append(append([]marketdata.Bar{{TS: s.From.Add(-time.Hour), Open: 1, High: 1, Low: 1, Close: 1}}, bars...),
		marketdata.Bar{TS: s.To, Open: 1, High: 1, Low: 1, Close: 1}, bars[3])

	n, err := Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, s), Fetched{Provider: "synthetic", Bars: stray, Until: planNow})
	require.NoError(t, err)
	require.EqualValues(t, 24, n, "bars outside the slice are dropped, a repeated ts written once")
	exec(t, pool, `DELETE FROM ohlc_bars_v2`)

	n, err = Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, s), Fetched{Provider: "synthetic", Bars: bars, Until: planNow})
	require.NoError(t, err)
	require.EqualValues(t, 24, n)
	rows := runsOf(t, pool, d.ID)
	require.Len(t, rows, 1)
	require.Equal(t, "success", rows[0].Status)
	require.Equal(t, 24, rows[0].RowsWritten)

	// The same slice again: nothing changes, nothing duplicates.
	n, err = Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, s), Fetched{Provider: "synthetic", Bars: bars, Until: planNow})
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 24, countBars(t, pool, d))
	require.Zero(t, runsOf(t, pool, d.ID)[0].RowsWritten)

	// One corrected bar: one row changed.
	bars[5].Close = 123.5
	n, err = Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, s), Fetched{Provider: "synthetic", Bars: bars, Until: planNow})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, 24, countBars(t, pool, d))
	var closeV float64
	var intraday bool
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT close::float8, is_intraday FROM ohlc_bars_v2 WHERE symbol_id = $1 AND ts = $2`, d.SymbolID, bars[5].TS).Scan(&closeV, &intraday))
	require.Equal(t, 123.5, closeV)
	require.True(t, intraday)
}

type coverage struct {
	Covered        string
	From, To       *time.Time
	LastRows       *int
	LastProvider   *string
	HasLastSuccess bool
}

func coverageOf(t *testing.T, pool *pgxpool.Pool, d def) coverage {
	t.Helper()
	var c coverage
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT (SELECT string_agg(to_char(lower(r) AT TIME ZONE 'UTC', 'MM-DD"T"HH24') || '..' || to_char(upper(r) AT TIME ZONE 'UTC', 'MM-DD"T"HH24'), ' ' ORDER BY lower(r))
        FROM unnest(covered) r),
       from_ts, to_ts, last_rows_written, last_provider, last_success_at IS NOT NULL
FROM coverage_status WHERE symbol = $1 AND timeframe = $2`, d.Symbol, string(d.Timeframe)).
		Scan(&c.Covered, &c.From, &c.To, &c.LastRows, &c.LastProvider, &c.HasLastSuccess))
	return c
}

func TestWriteZeroBarsStillCovers(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "EMPTY", market.H1, 100, 30)
	s := Slice{From: ts("2026-11-21T00:00:00Z"), To: ts("2026-11-22T00:00:00Z")} // a Saturday
	n, err := Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, s), Fetched{Provider: "synthetic", Until: planNow})
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, "success", runsOf(t, pool, d.ID)[0].Status)
	c := coverageOf(t, pool, d)
	require.Equal(t, "11-21T00..11-22T00", c.Covered)
	require.Equal(t, 0, *c.LastRows)
	require.Equal(t, "synthetic", *c.LastProvider)
	require.True(t, c.HasLastSuccess)
}

func TestCoverageRangesAreExact(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "HOLE", market.H1, 100, 30)
	day := func(s string) Slice { return Slice{From: ts(s), To: ts(s).Add(24 * time.Hour)} }
	for _, s := range []Slice{day("2026-11-20T00:00:00Z"), day("2026-11-22T00:00:00Z"), day("2026-11-21T00:00:00Z"), day("2026-11-24T00:00:00Z")} {
		_, err := Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, s), Fetched{Provider: "synthetic", Bars: hourBars(s.From, 2, 10), Until: planNow})
		require.NoError(t, err)
	}
	c := coverageOf(t, pool, d)
	require.Equal(t, "11-20T00..11-23T00 11-24T00..11-25T00", c.Covered, "adjacent slices merge; the 23rd stays a hole")
	require.Equal(t, ts("2026-11-20T00:00:00Z"), c.From.UTC())
	require.Equal(t, ts("2026-11-25T00:00:00Z"), c.To.UTC())
	require.Equal(t, 2, *c.LastRows)

	// An open slice is covered only up to when it was fetched.
	open := Slice{From: ts("2026-11-26T00:00:00Z"), To: ts("2026-11-27T00:00:00Z")}
	_, err := Write(t.Context(), pool, planNow, claimOne(t, pool, planNow, d, open), Fetched{Provider: "synthetic", Until: ts("2026-11-26T15:07:00Z")})
	require.NoError(t, err)
	c = coverageOf(t, pool, d)
	require.Equal(t, "11-20T00..11-23T00 11-24T00..11-25T00 11-26T00..11-26T15", c.Covered)
	require.Equal(t, ts("2026-11-26T15:07:00Z"), c.To.UTC())
}

func TestWriteAfterLostLeaseWritesNothing(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "LOST", market.H1, 100, 30)
	s := Slice{From: ts("2026-11-20T00:00:00Z"), To: ts("2026-11-21T00:00:00Z")}
	run := claimOne(t, pool, planNow, d, s)
	reaped, err := Reap(t.Context(), pool, planNow.Add(time.Minute+time.Second), 5) // the one-minute lease lapsed
	require.NoError(t, err)
	require.Equal(t, []string{run.ID}, reaped)
	again := claimOne(t, pool, planNow, d, s) // claimed again by the same owner: the attempt tells them apart
	require.Equal(t, 2, again.Attempt)

	_, err = Write(t.Context(), pool, planNow, run, Fetched{Provider: "synthetic", Bars: hourBars(s.From, 3, 1), Until: planNow})
	require.ErrorIs(t, err, ErrLeaseLost)
	require.Zero(t, countBars(t, pool, d))
	var covRows int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM coverage_status`).Scan(&covRows))
	require.Zero(t, covRows)
	require.Equal(t, "running", runsOf(t, pool, d.ID)[0].Status)

	_, err = Write(t.Context(), pool, planNow, again, Fetched{Provider: "synthetic", Bars: hourBars(s.From, 3, 1), Until: planNow})
	require.NoError(t, err)
	require.Equal(t, 3, countBars(t, pool, d))
	require.False(t, errors.Is(err, ErrLeaseLost))
}

// Write runs inside a caller's transaction (as a savepoint) and rolls back with it.
func TestWriteInCallersTransaction(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "TX", market.H1, 100, 30)
	s := Slice{From: ts("2026-11-20T00:00:00Z"), To: ts("2026-11-21T00:00:00Z")}
	run := claimOne(t, pool, planNow, d, s)
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	n, err := Write(t.Context(), tx, planNow, run, Fetched{Provider: "synthetic", Bars: hourBars(s.From, 4, 1), Until: planNow})
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	require.NoError(t, tx.Rollback(t.Context()))
	require.Zero(t, countBars(t, pool, d))
	require.Equal(t, "running", runsOf(t, pool, d.ID)[0].Status)
}
