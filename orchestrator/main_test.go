package orchestrator

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// def is a job definition made for a test.
type def struct {
	ID, SymbolID, Symbol string
	Timeframe            market.Timeframe
}

// addDef creates the symbol (if needed) and an enabled definition.
func addDef(t *testing.T, pool *pgxpool.Pool, ticker string, tf market.Timeframe, priority, windowDays int) def {
	t.Helper()
	ctx := t.Context()
	d := def{Symbol: ticker, Timeframe: tf}
	require.NoError(t, pool.QueryRow(ctx, `
INSERT INTO symbols (ticker) VALUES ($1)
ON CONFLICT (ticker) DO UPDATE SET ticker = EXCLUDED.ticker
RETURNING id::text`, ticker).Scan(&d.SymbolID))
	require.NoError(t, pool.QueryRow(ctx, `
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority)
VALUES (CASE WHEN $3 IN ('d1', 'w1') THEN 'fetch_historical' ELSE 'fetch_intraday' END, $1, $2, $3, $4, $5)
RETURNING id::text`, ticker, d.SymbolID, string(tf), windowDays, priority).Scan(&d.ID))
	return d
}

// dbClock is the clock argument that means the database's clock.
var dbClock time.Time

// runRow is a job_runs row as the tests look at it.
type runRow struct {
	ID            string
	From, To      time.Time
	Status        string
	Attempt       int
	ErrorCode     *string
	RowsWritten   int
	NextAttemptAt time.Time
}

func runsOf(t *testing.T, pool *pgxpool.Pool, defID string) []runRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT id::text, slice_from, slice_to, status, attempt, error_code, rows_written,
       next_attempt_at
FROM job_runs WHERE job_def_id = $1 ORDER BY slice_from`, defID)
	require.NoError(t, err)
	defer rows.Close()
	var out []runRow
	for rows.Next() {
		var r runRow
		require.NoError(t, rows.Scan(&r.ID, &r.From, &r.To, &r.Status, &r.Attempt, &r.ErrorCode, &r.RowsWritten, &r.NextAttemptAt))
		r.From, r.To, r.NextAttemptAt = r.From.UTC(), r.To.UTC(), r.NextAttemptAt.UTC()
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(t.Context(), sql, args...)
	require.NoError(t, err)
}

// claimAll claims every run due at now (zero: the database clock).
func claimAll(t *testing.T, pool *pgxpool.Pool, now time.Time, owner string) []Run {
	t.Helper()
	runs, err := Claim(t.Context(), pool, now, owner, time.Minute, 10000)
	require.NoError(t, err)
	return runs
}

// writeAll writes every run with no bars, fetched and written at now.
func writeAll(t *testing.T, pool *pgxpool.Pool, runs []Run, now time.Time) {
	t.Helper()
	for _, r := range runs {
		_, err := Write(t.Context(), pool, now, r, Fetched{Provider: "synthetic", Until: now})
		require.NoError(t, err)
	}
}

// stable drops the fields that move with the clock.
func stable(rows []runRow) []runRow {
	out := make([]runRow, len(rows))
	for i, r := range rows {
		r.NextAttemptAt = time.Time{}
		out[i] = r
	}
	return out
}

// runningClock is a clock for an orchestrator under test: it starts at start and runs at the
// wall clock's pace, so leases, retry delays and waits behave as in production while the slice
// boundaries stay where the test put them, whatever the date.
func runningClock(start time.Time) func() time.Time {
	began := time.Now()
	return func() time.Time { return start.Add(time.Since(began)) }
}

// midSlice is the middle of the slice of the given size that holds planNow: a start for a
// running clock that no slice boundary comes near while a test runs.
func midSlice(size time.Duration) time.Time {
	return Slices(size, planNow, planNow.Add(time.Second))[0].From.Add(size / 2)
}

func contextCanceled() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx.Err()
}

// smallSizes is a grid whose slices are small enough that a window holds several of them
// (m15 7 days, h1 30, h4 90, d1 and w1 365).
func smallSizes() SliceSizes {
	const day = 24 * time.Hour
	return SliceSizes{
		market.M15: 7 * day,
		market.H1:  30 * day,
		market.H4:  90 * day,
		market.D1:  365 * day,
		market.W1:  365 * day,
	}
}
