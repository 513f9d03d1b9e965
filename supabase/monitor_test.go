package supabase_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	userOne = "11111111-1111-1111-1111-111111111111"
	userTwo = "22222222-2222-2222-2222-222222222222"
)

// monitorFixture is the known data the monitoring tests assert against:
//
//   - user one tracks AAPL from watchlist (300) and chart_view (200); user two tracks MSFT from
//     watchlist, and MSFT is also tracked anonymously (user_id NULL) from recent_search;
//   - AAPL has 10 m15 bars, 3 h1 bars over 5.25 days and 2 d1 bars, plus a second provider's copy
//     of one m15 bar and one forecast bar, neither of which counts; MSFT has 4 m15 bars;
//   - AAPL has 6 queued runs (m15 4, h1 2) and 3 running (h4 2, d1 1); MSFT 2 queued and 1 running;
//   - recent finished runs: two AAPL m15 successes (10 + 5 rows, 2.5 s and 4 s), one AAPL h1
//     failure, one AAPL h4 cancellation; and one AAPL m15 success 3 hours old (100 rows, 6.5 s);
//   - the completeness checker found AAPL m15 17 of 20 sessions complete with two holes (one
//     open, one given up), h1 5 of 5, h4 nothing expected; d1 and w1 never checked.
//
// The original get_user_tracked_symbols_status joined bars and runs on one row set and reported
// 90 m15 bars for AAPL's 10.
const monitorFixture = `
INSERT INTO auth.users (id, email) VALUES
  ('11111111-1111-1111-1111-111111111111', 'one@example.com'),
  ('22222222-2222-2222-2222-222222222222', 'two@example.com');

INSERT INTO public.symbols (id, ticker, description) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'AAPL', 'Apple Inc.'),
  ('aaaaaaaa-0000-0000-0000-000000000002', 'MSFT', 'Microsoft Corporation');

INSERT INTO public.user_symbol_tracking (user_id, symbol_id, source, priority, created_at) VALUES
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000001', 'watchlist',     300, '2026-01-10 10:00:00Z'),
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000001', 'chart_view',    200, '2026-01-10 11:00:00Z'),
  ('22222222-2222-2222-2222-222222222222', 'aaaaaaaa-0000-0000-0000-000000000002', 'watchlist',     300, '2026-01-10 12:00:00Z'),
  (NULL,                                   'aaaaaaaa-0000-0000-0000-000000000002', 'recent_search', 100, '2026-01-10 13:00:00Z');

INSERT INTO public.ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider)
SELECT 'aaaaaaaa-0000-0000-0000-000000000001', 'm15', ts, 1, 2, 1, 2, 100, 'alpaca'
FROM generate_series(timestamptz '2026-01-05 14:30:00Z', '2026-01-05 16:45:00Z', interval '15 minutes') AS ts;

INSERT INTO public.ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'h1', '2026-01-02 15:00:00Z', 1, 2, 1, 2, 100, 'alpaca'),
  ('aaaaaaaa-0000-0000-0000-000000000001', 'h1', '2026-01-05 15:00:00Z', 1, 2, 1, 2, 100, 'alpaca'),
  ('aaaaaaaa-0000-0000-0000-000000000001', 'h1', '2026-01-07 21:00:00Z', 1, 2, 1, 2, 100, 'alpaca'),
  ('aaaaaaaa-0000-0000-0000-000000000001', 'd1', '2026-01-05 00:00:00Z', 1, 2, 1, 2, 100, 'alpaca'),
  ('aaaaaaaa-0000-0000-0000-000000000001', 'd1', '2026-01-06 00:00:00Z', 1, 2, 1, 2, 100, 'alpaca'),
  -- The same timestamp from a second provider: one bar, not two.
  ('aaaaaaaa-0000-0000-0000-000000000001', 'm15', '2026-01-05 14:30:00Z', 1, 2, 1, 2, 100, 'polygon');

-- A forecast after the last real bar: neither counted nor the latest bar.
INSERT INTO public.ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, provider, is_forecast,
                                 confidence_score, upper_band, lower_band)
VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'm15', '2026-01-08 14:30:00Z', 1, 2, 1, 2, 'ml_forecast', true, 0.80, 3, 1);

INSERT INTO public.ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider)
SELECT 'aaaaaaaa-0000-0000-0000-000000000002', 'm15', ts, 1, 2, 1, 2, 100, 'alpaca'
FROM generate_series(timestamptz '2026-01-05 14:30:00Z', '2026-01-05 15:15:00Z', interval '15 minutes') AS ts;

INSERT INTO public.job_definitions (id, job_type, symbol, symbol_id, timeframe, window_days, priority, enabled) VALUES
  ('dddddddd-0000-0000-0000-000000000001', 'fetch_intraday',   'AAPL', 'aaaaaaaa-0000-0000-0000-000000000001', 'm15',  30, 300, true),
  ('dddddddd-0000-0000-0000-000000000002', 'fetch_intraday',   'AAPL', 'aaaaaaaa-0000-0000-0000-000000000001', 'h1',   90, 200, true),
  ('dddddddd-0000-0000-0000-000000000003', 'fetch_intraday',   'AAPL', 'aaaaaaaa-0000-0000-0000-000000000001', 'h4',  365, 150, true),
  ('dddddddd-0000-0000-0000-000000000004', 'fetch_historical', 'AAPL', 'aaaaaaaa-0000-0000-0000-000000000001', 'd1',  730,  50, false),
  -- Not d1's job_type (fetch_historical), so not the definition coverage reports for d1.
  ('dddddddd-0000-0000-0000-000000000005', 'run_forecast',     'AAPL', 'aaaaaaaa-0000-0000-0000-000000000001', 'd1',    7, 999, true),
  ('dddddddd-0000-0000-0000-000000000006', 'fetch_intraday',   'MSFT', 'aaaaaaaa-0000-0000-0000-000000000002', 'm15',  30, 300, true);

INSERT INTO public.coverage_status (symbol, timeframe, symbol_id, covered, from_ts, to_ts, last_success_at,
                                    last_rows_written, last_provider) VALUES
  ('AAPL', 'm15', 'aaaaaaaa-0000-0000-0000-000000000001',
   '{[2026-01-05 00:00:00Z,2026-01-05 12:00:00Z),[2026-01-05 18:00:00Z,2026-01-06 00:00:00Z)}',
   '2026-01-05 00:00:00Z', '2026-01-06 00:00:00Z', '2026-01-06 00:05:00Z', 5, 'alpaca'),
  ('AAPL', 'h1', 'aaaaaaaa-0000-0000-0000-000000000001',
   '{[2026-01-01 00:00:00Z,2026-01-08 00:00:00Z)}',
   '2026-01-01 00:00:00Z', '2026-01-08 00:00:00Z', '2026-01-08 00:05:00Z', 1, 'alpaca');

-- Active runs, one day-long slice each (slices are unique per definition).
INSERT INTO public.job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, status)
SELECT d.id, d.symbol, d.timeframe, d.job_type,
       timestamptz '2025-12-01 00:00:00Z' + make_interval(days => n),
       timestamptz '2025-12-01 00:00:00Z' + make_interval(days => n + 1),
       v.status
FROM (VALUES
  ('dddddddd-0000-0000-0000-000000000001'::uuid, 'queued',  1, 4),
  ('dddddddd-0000-0000-0000-000000000002'::uuid, 'queued',  1, 2),
  ('dddddddd-0000-0000-0000-000000000003'::uuid, 'running', 1, 2),
  ('dddddddd-0000-0000-0000-000000000004'::uuid, 'running', 1, 1),
  ('dddddddd-0000-0000-0000-000000000006'::uuid, 'queued',  1, 2),
  ('dddddddd-0000-0000-0000-000000000006'::uuid, 'running', 3, 3)
) AS v (def_id, status, first_n, last_n)
JOIN public.job_definitions AS d ON d.id = v.def_id
CROSS JOIN LATERAL generate_series(v.first_n, v.last_n) AS n;

INSERT INTO public.job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, status,
                             rows_written, started_at, finished_at, updated_at, error_code, error_message) VALUES
  ('dddddddd-0000-0000-0000-000000000001', 'AAPL', 'm15', 'fetch_intraday', '2026-01-01Z', '2026-01-02Z', 'success',
   10, '2026-01-05 15:00:00Z', '2026-01-05 15:00:02.5Z', now() - interval '10 minutes', NULL, NULL),
  ('dddddddd-0000-0000-0000-000000000001', 'AAPL', 'm15', 'fetch_intraday', '2026-01-02Z', '2026-01-03Z', 'success',
   5, '2026-01-05 15:01:00Z', '2026-01-05 15:01:04Z', now() - interval '5 minutes', NULL, NULL),
  ('dddddddd-0000-0000-0000-000000000001', 'AAPL', 'm15', 'fetch_intraday', '2026-01-03Z', '2026-01-04Z', 'success',
   100, '2026-01-05 12:00:00Z', '2026-01-05 12:00:06.5Z', now() - interval '3 hours', NULL, NULL),
  ('dddddddd-0000-0000-0000-000000000002', 'AAPL', 'h1', 'fetch_intraday', '2026-01-01Z', '2026-01-02Z', 'failed',
   0, '2026-01-05 15:02:00Z', '2026-01-05 15:02:01Z', now() - interval '2 minutes', 'RATE_LIMIT_EXCEEDED', 'too many requests'),
  ('dddddddd-0000-0000-0000-000000000003', 'AAPL', 'h4', 'fetch_intraday', '2026-01-01Z', '2026-01-02Z', 'cancelled',
   0, NULL, NULL, now() - interval '1 minute', NULL, NULL);

-- The completeness checker's findings: AAPL m15 checked with two holes (one open, one given
-- up), h1 checked and complete, h4 checked with nothing expected yet; d1 and w1 not checked.
INSERT INTO coverage_completeness (job_def_id, symbol, timeframe, provider, window_from, window_to,
  sessions_expected, sessions_fetched, sessions_complete, holes, checked_at)
SELECT id, symbol, timeframe, 'synthetic', '2026-01-01T00:00:00Z', '2026-01-08T00:00:00Z',
       e.expected, e.fetched, e.complete, e.holes, '2026-01-08T00:06:00Z'
FROM job_definitions
JOIN (VALUES ('m15', 20, 19, 17, 2), ('h1', 5, 5, 5, 0), ('h4', 0, 0, 0, 0)) AS e (tf, expected, fetched, complete, holes)
  ON e.tf = timeframe
WHERE symbol = 'AAPL' AND job_type = 'fetch_intraday';
INSERT INTO coverage_holes (job_def_id, session_date, symbol, timeframe, range_from, range_to, kind,
  expected_bars, found_bars, detected_at)
SELECT id, d::date, symbol, timeframe, d + interval '14 hours 30 minutes', d + interval '21 hours', 'missing', 26, 0,
       '2026-01-08T00:06:00Z'
FROM job_definitions, (VALUES ('2026-01-05T00:00:00Z'::timestamptz), ('2026-01-06T00:00:00Z')) AS h (d)
WHERE symbol = 'AAPL' AND timeframe = 'm15' AND job_type = 'fetch_intraday';
UPDATE coverage_holes SET state = 'given_up', repairs = 3, reason = 'still missing after 3 repairs'
WHERE session_date = '2026-01-06';
`

// fixtureDB returns a fresh migrated database holding monitorFixture.
func fixtureDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.DB(t)
	execScript(t, pool, monitorFixture)
	return pool
}

// execScript runs a multi-statement script over the simple protocol, as psql -c or a client
// sending a whole file would, and requires every statement to succeed.
func execScript(t *testing.T, pool *pgxpool.Pool, script string) []*pgconn.Result {
	t.Helper()
	conn, err := pool.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release()
	results, err := conn.Conn().PgConn().Exec(t.Context(), script).ReadAll()
	require.NoError(t, err)
	for i, r := range results {
		require.NoErrorf(t, r.Err, "statement %d", i+1)
	}
	return results
}

// requireColumns checks a function keeps the original's output columns, in order.
func requireColumns(t *testing.T, pool *pgxpool.Pool, query string, want ...string) {
	t.Helper()
	rows, err := pool.Query(t.Context(), query)
	require.NoError(t, err)
	defer rows.Close()
	var got []string
	for _, fd := range rows.FieldDescriptions() {
		got = append(got, fd.Name)
	}
	require.Equal(t, want, got)
}

func at(s string) time.Time {
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return ts.UTC()
}

func atPtr(s string) *time.Time { ts := at(s); return &ts }

func ptr[T any](v T) *T { return &v }

// utc normalises a scanned timestamp so require.Equal compares instants, not locations.
func utc(ts *time.Time) *time.Time {
	if ts == nil {
		return nil
	}
	u := ts.UTC()
	return &u
}

type trackedRow struct {
	Symbol      string
	Source      string
	Priority    int32
	TrackedAt   time.Time
	M15Bars     int64
	H1Bars      int64
	H4Bars      int64
	JobsPending int64
	JobsRunning int64
	D1Bars      int64
	W1Bars      int64
}

func trackedStatus(t *testing.T, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, userID any) []trackedRow {
	t.Helper()
	rows, err := q.Query(t.Context(), `SELECT * FROM public.get_user_tracked_symbols_status($1)`, userID)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (trackedRow, error) {
		var r trackedRow
		err := row.Scan(&r.Symbol, &r.Source, &r.Priority, &r.TrackedAt, &r.M15Bars, &r.H1Bars, &r.H4Bars,
			&r.JobsPending, &r.JobsRunning, &r.D1Bars, &r.W1Bars)
		r.TrackedAt = r.TrackedAt.UTC()
		return r, err
	})
	require.NoError(t, err)
	return got
}

func TestGetUserTrackedSymbolsStatus(t *testing.T) {
	t.Parallel()
	pool := fixtureDB(t)

	requireColumns(t, pool, `SELECT * FROM public.get_user_tracked_symbols_status(NULL)`,
		"symbol", "source", "priority", "tracked_at", "m15_bars", "h1_bars", "h4_bars",
		"jobs_pending", "jobs_running", "d1_bars", "w1_bars")

	// Two rows (one per source), each with the symbol's true counts: 10 m15 bars, not 90; runs of
	// every AAPL definition, not MSFT's.
	require.Equal(t, []trackedRow{
		{Symbol: "AAPL", Source: "watchlist", Priority: 300, TrackedAt: at("2026-01-10T10:00:00Z"),
			M15Bars: 10, H1Bars: 3, H4Bars: 0, JobsPending: 6, JobsRunning: 3, D1Bars: 2, W1Bars: 0},
		{Symbol: "AAPL", Source: "chart_view", Priority: 200, TrackedAt: at("2026-01-10T11:00:00Z"),
			M15Bars: 10, H1Bars: 3, H4Bars: 0, JobsPending: 6, JobsRunning: 3, D1Bars: 2, W1Bars: 0},
	}, trackedStatus(t, pool, userOne))

	// NULL selects the anonymous rows.
	require.Equal(t, []trackedRow{
		{Symbol: "MSFT", Source: "recent_search", Priority: 100, TrackedAt: at("2026-01-10T13:00:00Z"),
			M15Bars: 4, JobsPending: 2, JobsRunning: 1},
	}, trackedStatus(t, pool, nil))

	require.Empty(t, trackedStatus(t, pool, "33333333-3333-3333-3333-333333333333"))

	t.Run("RLS limits a signed-in caller to their own rows", func(t *testing.T) {
		t.Parallel()
		tx, err := pool.Begin(t.Context())
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(t.Context()) }()
		_, err = tx.Exec(t.Context(), `SELECT set_config('request.jwt.claims', $1, true)`,
			`{"sub":"`+userOne+`","role":"authenticated"}`)
		require.NoError(t, err)
		_, err = tx.Exec(t.Context(), `SET LOCAL ROLE authenticated`)
		require.NoError(t, err)

		require.Len(t, trackedStatus(t, tx, userOne), 2)
		require.Empty(t, trackedStatus(t, tx, userTwo))
	})

	t.Run("anon may not execute", func(t *testing.T) {
		t.Parallel()
		tx, err := pool.Begin(t.Context())
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(t.Context()) }()
		_, err = tx.Exec(t.Context(), `SET LOCAL ROLE anon`)
		require.NoError(t, err)
		_, err = tx.Exec(t.Context(), `SELECT * FROM public.get_user_tracked_symbols_status(NULL)`)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "42501", pgErr.Code) // insufficient_privilege
	})
}

type coverageRow struct {
	Timeframe    string
	BarsCount    int64
	EarliestBar  *time.Time
	LatestBar    *time.Time
	CoverageDays *string // numeric, as text to compare the exact rounding
	LastFetch    *time.Time
	JobEnabled   *bool
	JobPriority  *int32
	// What the completeness checker last found.
	SessionsExpected, SessionsFetched, SessionsComplete *int32
	Completeness                                        *string // numeric, as text
	Holes                                               *int64
	CheckedAt                                           *time.Time
}

func TestGetSymbolTimeframeCoverage(t *testing.T) {
	t.Parallel()
	pool := fixtureDB(t)

	requireColumns(t, pool, `SELECT * FROM public.get_symbol_timeframe_coverage('AAPL')`,
		"timeframe", "bars_count", "earliest_bar", "latest_bar", "coverage_days", "last_fetch",
		"job_enabled", "job_priority",
		"sessions_expected", "sessions_fetched", "sessions_complete", "completeness", "holes", "checked_at")

	coverage := func(ticker string) []coverageRow {
		rows, err := pool.Query(t.Context(), `
			SELECT timeframe, bars_count, earliest_bar, latest_bar, coverage_days::text, last_fetch,
			       job_enabled, job_priority, sessions_expected, sessions_fetched, sessions_complete,
			       completeness::text, holes, checked_at
			FROM public.get_symbol_timeframe_coverage($1)`, ticker)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (coverageRow, error) {
			var r coverageRow
			err := row.Scan(&r.Timeframe, &r.BarsCount, &r.EarliestBar, &r.LatestBar, &r.CoverageDays,
				&r.LastFetch, &r.JobEnabled, &r.JobPriority, &r.SessionsExpected, &r.SessionsFetched,
				&r.SessionsComplete, &r.Completeness, &r.Holes, &r.CheckedAt)
			r.EarliestBar, r.LatestBar, r.LastFetch, r.CheckedAt = utc(r.EarliestBar), utc(r.LatestBar), utc(r.LastFetch), utc(r.CheckedAt)
			return r, err
		})
		require.NoError(t, err)
		return got
	}

	require.Equal(t, []coverageRow{
		// The polygon copy of 14:30 and the forecast of 01-08 do not count.
		{Timeframe: "m15", BarsCount: 10, EarliestBar: atPtr("2026-01-05T14:30:00Z"), LatestBar: atPtr("2026-01-05T16:45:00Z"),
			CoverageDays: ptr("0.09"), LastFetch: atPtr("2026-01-06T00:05:00Z"), JobEnabled: ptr(true), JobPriority: ptr[int32](300),
			SessionsExpected: ptr[int32](20), SessionsFetched: ptr[int32](19), SessionsComplete: ptr[int32](17),
			Completeness: ptr("0.8500"), Holes: ptr[int64](2), CheckedAt: atPtr("2026-01-08T00:06:00Z")},
		{Timeframe: "h1", BarsCount: 3, EarliestBar: atPtr("2026-01-02T15:00:00Z"), LatestBar: atPtr("2026-01-07T21:00:00Z"),
			CoverageDays: ptr("5.25"), LastFetch: atPtr("2026-01-08T00:05:00Z"), JobEnabled: ptr(true), JobPriority: ptr[int32](200),
			SessionsExpected: ptr[int32](5), SessionsFetched: ptr[int32](5), SessionsComplete: ptr[int32](5),
			Completeness: ptr("1.0000"), Holes: ptr[int64](0), CheckedAt: atPtr("2026-01-08T00:06:00Z")},
		{Timeframe: "h4", BarsCount: 0, JobEnabled: ptr(true), JobPriority: ptr[int32](150),
			SessionsExpected: ptr[int32](0), SessionsFetched: ptr[int32](0), SessionsComplete: ptr[int32](0),
			Completeness: ptr("1"), Holes: ptr[int64](0), CheckedAt: atPtr("2026-01-08T00:06:00Z")},
		// d1's definition is the fetch_historical one, not the run_forecast one (priority 999).
		{Timeframe: "d1", BarsCount: 2, EarliestBar: atPtr("2026-01-05T00:00:00Z"), LatestBar: atPtr("2026-01-06T00:00:00Z"),
			CoverageDays: ptr("1.00"), JobEnabled: ptr(false), JobPriority: ptr[int32](50)},
		{Timeframe: "w1", BarsCount: 0},
	}, coverage("AAPL"))

	require.Empty(t, coverage("NOPE"))
	require.Empty(t, coverage("aapl"), "the ticker must match exactly")
}

type jobStatsRow struct {
	Timeframe          string
	TotalJobs          int64
	Queued             int64
	Running            int64
	Success            int64
	Failed             int64
	TotalBarsWritten   int64
	AvgDurationSeconds *string // numeric, as text to compare the exact rounding
}

func TestGetTimeframeJobStats(t *testing.T) {
	t.Parallel()
	pool := fixtureDB(t)

	requireColumns(t, pool, `SELECT * FROM public.get_timeframe_job_stats()`,
		"timeframe", "total_jobs", "queued", "running", "success", "failed", "total_bars_written",
		"avg_duration_seconds")

	stats := func(query string, args ...any) []jobStatsRow {
		rows, err := pool.Query(t.Context(), `
			SELECT timeframe, total_jobs, queued, running, success, failed, total_bars_written,
			       avg_duration_seconds::text
			FROM `+query, args...)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[jobStatsRow])
		require.NoError(t, err)
		return got
	}

	// The last hour: active runs plus the runs finished in it; the 3-hour-old success is out.
	// The cancelled h4 run counts only in total_jobs.
	lastHour := []jobStatsRow{
		{Timeframe: "m15", TotalJobs: 9, Queued: 6, Running: 1, Success: 2, TotalBarsWritten: 15, AvgDurationSeconds: ptr("3.250")},
		{Timeframe: "h1", TotalJobs: 3, Queued: 2, Failed: 1},
		{Timeframe: "h4", TotalJobs: 3, Running: 2},
		{Timeframe: "d1", TotalJobs: 1, Running: 1},
		{Timeframe: "w1"},
	}
	require.Equal(t, lastHour, stats(`public.get_timeframe_job_stats()`))
	require.Equal(t, lastHour, stats(`public.get_timeframe_job_stats($1)`, 1))

	// Four hours take the old success in: (2.5 + 4 + 6.5) / 3 = 4.333 s, 115 rows.
	fourHours := stats(`public.get_timeframe_job_stats($1)`, 4)
	require.Equal(t, jobStatsRow{Timeframe: "m15", TotalJobs: 10, Queued: 6, Running: 1, Success: 3,
		TotalBarsWritten: 115, AvgDurationSeconds: ptr("4.333")}, fourHours[0])
	require.Equal(t, lastHour[1:], fourHours[1:])

	for _, hours := range []any{0, -1, nil} {
		_, err := pool.Exec(t.Context(), `SELECT * FROM public.get_timeframe_job_stats($1)`, hours)
		var pgErr *pgconn.PgError
		require.ErrorAsf(t, err, &pgErr, "p_hours %v", hours)
		require.Equal(t, "22023", pgErr.Code) // invalid_parameter_value
		require.Contains(t, pgErr.Message, "p_hours must be at least 1")
	}
}

func TestMonitorQueries(t *testing.T) {
	t.Parallel()
	pool := fixtureDB(t)

	script, err := os.ReadFile("monitor_multi_timeframe.sql")
	require.NoError(t, err)
	results := execScript(t, pool, string(script))
	require.Len(t, results, 11, "one result per monitoring query")

	// column returns one query's values of a column, keyed by the value of its first column.
	column := func(query int, name string) map[string]string {
		t.Helper()
		r := results[query-1]
		idx := -1
		for i, fd := range r.FieldDescriptions {
			if fd.Name == name {
				idx = i
			}
		}
		require.NotEqualf(t, -1, idx, "query %d has no column %s", query, name)
		out := map[string]string{}
		for _, row := range r.Rows {
			out[string(row[0])] = string(row[idx])
		}
		return out
	}

	// 1: distinct bars per ticker and timeframe; AAPL's 10 m15 bars despite the duplicate.
	require.Equal(t, map[string]string{"AAPL": "10", "MSFT": "4", "NVDA": "0", "TSLA": "0", "GOOGL": "0"},
		column(1, "m15_bars"))
	require.Equal(t, "2", column(1, "d1_bars")["AAPL"])

	// 11: completeness per timeframe, every timeframe listed.
	require.Equal(t, map[string]string{"m15": "1", "h1": "1", "h4": "1", "d1": "0", "w1": "0"}, column(11, "definitions_checked"))
	require.Equal(t, map[string]string{"m15": "85.00", "h1": "100.00", "h4": "", "d1": "", "w1": ""}, column(11, "complete_pct"))
	require.Equal(t, map[string]string{"m15": "1", "h1": "0", "h4": "0", "d1": "0", "w1": "0"}, column(11, "holes_open"))
	require.Equal(t, map[string]string{"m15": "1", "h1": "0", "h4": "0", "d1": "0", "w1": "0"}, column(11, "holes_given_up"))

	// 4: bars stored in ohlc_bars_v2 per timeframe, not the last slice's rows_written (5 and 1).
	require.Equal(t, map[string]string{"m15": "14", "h1": "3", "h4": "0", "d1": "2", "w1": "0"},
		column(4, "total_bars_written"))
	require.Equal(t, map[string]string{"m15": "1.00", "h1": "7.00", "h4": "", "d1": "", "w1": ""},
		column(4, "avg_coverage_days"))
	require.Equal(t, "0.75", column(4, "avg_covered_days")["m15"], "the 6-hour hole is not covered")

	// 9: one row per tracked symbol, counts neither multiplied nor mixed between symbols.
	require.Equal(t, map[string]string{"chart_view, watchlist": "6", "recent_search, watchlist": "2"},
		column(9, "queued_jobs"))
	require.Equal(t, map[string]string{"chart_view, watchlist": "10", "recent_search, watchlist": "4"},
		column(9, "m15_bars"))

	// 10: the query that referenced its own alias now runs.
	require.Equal(t, map[string]string{
		"m15": "Unhealthy", "h1": "Unhealthy", "h4": "Unhealthy", "d1": "Unhealthy", "w1": "Idle",
	}, column(10, "health_status"))
	require.Equal(t, "100.0", column(10, "success_rate_pct")["m15"])
}

func TestSeed(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)

	script, err := os.ReadFile("seed.sql")
	require.NoError(t, err)
	execScript(t, pool, string(script))

	type defCount struct {
		Timeframe   string
		Count       int64
		Priority    int32
		WindowDays  int32
		WithSymbols int64
	}
	counts := func() []defCount {
		rows, err := pool.Query(t.Context(), `
			SELECT timeframe, count(*), max(priority), max(window_days), count(symbol_id)
			FROM public.job_definitions
			WHERE origin = 'seed' AND job_type = 'fetch_intraday' AND enabled
			GROUP BY timeframe
			ORDER BY timeframe`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[defCount])
		require.NoError(t, err)
		return got
	}
	want := []defCount{
		{Timeframe: "h1", Count: 20, Priority: 200, WindowDays: 90, WithSymbols: 20},
		{Timeframe: "h4", Count: 20, Priority: 150, WindowDays: 365, WithSymbols: 20},
		{Timeframe: "m15", Count: 20, Priority: 100, WindowDays: 30, WithSymbols: 20},
	}
	require.Equal(t, want, counts())

	var symbols int64
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(*) FROM public.symbols WHERE asset_type = 'stock' AND description IS NOT NULL`).Scan(&symbols))
	require.EqualValues(t, 20, symbols)

	// An operator's edit survives a second run, which changes nothing.
	_, err = pool.Exec(t.Context(), `UPDATE public.job_definitions SET window_days = 60 WHERE timeframe = 'h1'`)
	require.NoError(t, err)
	results := execScript(t, pool, string(script))
	for _, r := range results {
		require.EqualValues(t, 0, r.CommandTag.RowsAffected(), r.CommandTag.String())
	}
	want[0].WindowDays = 60
	require.Equal(t, want, counts())
}
