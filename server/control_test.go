package server_test

// ControlService through a running server: the generated client over Connect, gRPC and
// gRPC-Web, and buf curl through reflection (in TestControlBufCurl).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/symbolsync/backfill/control"
	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// controlAPI starts a server that serves ControlService with cfg (its Pool and Registerer are
// the test's).
func controlAPI(t *testing.T, cfg control.Config) *api {
	t.Helper()
	return startAPI(t, apiOptions{control: &cfg})
}

// controlClient is the generated client with a credential ("" for none), over HTTP/2.
func controlClient(a *api, token string, opt ...connect.ClientOption) backfillv1connect.ControlServiceClient {
	return backfillv1connect.NewControlServiceClient(&http.Client{Transport: bearerTransport{token: token, base: h2cTransport()}}, a.url, opt...)
}

// fixture writes test data with SQL.
type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
}

func (f fixture) exec(sql string, args ...any) {
	f.t.Helper()
	_, err := f.pool.Exec(f.t.Context(), sql, args...)
	require.NoError(f.t, err)
}

// definition creates the symbol when missing and a definition of it; reason "" is NULL.
func (f fixture) definition(ticker, tf string, windowDays, priority int, enabled bool, reason string) string {
	f.t.Helper()
	var id string
	require.NoError(f.t, f.pool.QueryRow(f.t.Context(), `
WITH s AS (
  INSERT INTO symbols (ticker) VALUES ($1)
  ON CONFLICT (ticker) DO UPDATE SET ticker = EXCLUDED.ticker
  RETURNING id
)
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, disabled_reason)
SELECT ts.job_type, $1, s.id, $2, $3, $4, $5, nullif($6, '')
FROM s, timeframe_settings AS ts WHERE ts.timeframe = $2
RETURNING id::text`, ticker, tf, windowDays, priority, enabled, reason).Scan(&id))
	return id
}

// runSpec is a job run to insert; zero times are NULL (created and updated: now()).
type runSpec struct {
	def                     string
	from                    time.Time
	status                  string
	attempt, rows           int
	errorCode, errorMessage string
	started, finished       time.Time
	created, updated        time.Time
}

// run inserts a one-hour slice from r.from of definition r.def.
func (f fixture) run(r runSpec) string {
	f.t.Helper()
	var id string
	require.NoError(f.t, f.pool.QueryRow(f.t.Context(), `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, status, attempt, rows_written,
                      error_code, error_message, started_at, finished_at, created_at, updated_at)
SELECT d.id, d.symbol, d.timeframe, d.job_type, $2::timestamptz, $2::timestamptz + interval '1 hour', $3, $4, $5,
       nullif($6::text, ''), nullif($7::text, ''), $8::timestamptz, $9::timestamptz,
       coalesce($10::timestamptz, now()), coalesce($11::timestamptz, now())
FROM job_definitions AS d WHERE d.id = $1
RETURNING id::text`, r.def, r.from, r.status, r.attempt, r.rows, r.errorCode, r.errorMessage,
		orNull(r.started), orNull(r.finished), orNull(r.created), orNull(r.updated)).Scan(&id))
	return id
}

func orNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// bars writes bars of ticker at the given times.
func (f fixture) bars(ticker, tf, provider string, forecast bool, ts ...time.Time) {
	f.t.Helper()
	f.exec(`
INSERT INTO ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider, is_forecast)
SELECT s.id, $2, t, 1, 2, 0.5, 1.5, 10, $3, $4 FROM symbols AS s, unnest($5::timestamptz[]) AS t WHERE s.ticker = $1`,
		ticker, tf, provider, forecast, ts)
}

// track records interest of user ("" anonymous) in ticker.
func (f fixture) track(user, ticker, source string, priority int) {
	f.t.Helper()
	if user != "" {
		f.exec(`INSERT INTO auth.users (id) VALUES ($1) ON CONFLICT DO NOTHING`, user)
	}
	f.exec(`
INSERT INTO user_symbol_tracking (user_id, symbol_id, source, priority)
SELECT nullif($1, '')::uuid, s.id, $3, $4 FROM symbols AS s WHERE s.ticker = $2`, user, ticker, source, priority)
}

func (f fixture) status(runID string) string {
	f.t.Helper()
	var s string
	require.NoError(f.t, f.pool.QueryRow(f.t.Context(), `SELECT status FROM job_runs WHERE id = $1`, runID).Scan(&s))
	return s
}

// requireCode asserts a Connect error with code and, when not empty, exactly message.
func requireCode(t *testing.T, err error, code connect.Code, message string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, connect.CodeOf(err), "%v", err)
	if message != "" {
		var cerr *connect.Error
		require.True(t, errors.As(err, &cerr))
		require.Equal(t, message, cerr.Message())
	}
}

// requireProto asserts two messages are equal, printing both otherwise.
func requireProto(t *testing.T, want, got proto.Message) {
	t.Helper()
	require.True(t, proto.Equal(want, got), "want %v\ngot  %v", want, got)
}

// metricValue reads an unlabelled gauge or counter from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// watchConnections counts the watchers' connections on the test's database.
func watchConnections(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
		control.WatchApplicationName).Scan(&n))
	return n
}

// eventually polls cond every 10ms for at most 30s: for what the server does asynchronously
// (a backend ends a moment after its client closed the connection; a replicator takes its slot).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30s: %s", what)
		}
		<-tick.C
	}
}

// requireWatchesReleased waits until no watch is open and no watch connection is left.
func requireWatchesReleased(t *testing.T, a *api) {
	t.Helper()
	eventually(t, "every watch ends and its connection closes", func() bool {
		return metricValue(t, a.reg, "backfill_control_watchers") == 0 && watchConnections(t, a.pool) == 0
	})
}

type watchStream = connect.ServerStreamForClient[backfillv1.WatchBackfillResponse]

// openWatch starts WatchBackfill and returns once the response headers arrived, which the
// server sends when the watch listens (or with an error, which the first Receive reports).
// cancel ends the stream as a client going away does.
func openWatch(t *testing.T, c backfillv1connect.ControlServiceClient, symbol string) (s *watchStream, cancel func()) {
	t.Helper()
	ctx, cancelCtx := context.WithTimeout(t.Context(), 2*time.Minute)
	s, err := c.WatchBackfill(ctx, &backfillv1.WatchBackfillRequest{Symbol: symbol})
	require.NoError(t, err)
	conn, err := s.Conn()
	require.NoError(t, err)
	conn.ResponseHeader()
	cancel = func() {
		cancelCtx()
		_ = s.Close()
	}
	t.Cleanup(cancel)
	return s, cancel
}

func TestControlAuthEveryMethod(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{SlotName: "control_auth_no_such_slot", SliceSizes: orchestrator.DefaultSliceSizes()})
	f := fixture{t, a.pool}
	def := f.definition("AAPL", "h1", 2, 100, true, "")
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) // off the planner's grid: RunTick leaves these alone
	failed := []string{
		f.run(runSpec{def: def, from: old, status: "failed", attempt: 5}),
		f.run(runSpec{def: def, from: old.Add(time.Hour), status: "failed", attempt: 5}),
	}
	queued := []string{
		f.run(runSpec{def: def, from: old.Add(2 * time.Hour), status: "queued"}),
		f.run(runSpec{def: def, from: old.Add(3 * time.Hour), status: "queued"}),
	}
	watched := f.run(runSpec{def: def, from: old.Add(4 * time.Hour), status: "running"})

	// Each call uses the i-th run, so that the two accepted credentials each have one to change.
	calls := []struct {
		name string
		call func(ctx context.Context, c backfillv1connect.ControlServiceClient, i int) error
	}{
		{"GetTimeframeJobStats", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.GetTimeframeJobStats(ctx, &backfillv1.GetTimeframeJobStatsRequest{Hours: 1})
			return err
		}},
		{"GetSymbolCoverage", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.GetSymbolCoverage(ctx, &backfillv1.GetSymbolCoverageRequest{Symbol: "AAPL"})
			return err
		}},
		{"ListUserTrackedSymbols", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.ListUserTrackedSymbols(ctx, &backfillv1.ListUserTrackedSymbolsRequest{})
			return err
		}},
		{"ListJobDefinitions", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.ListJobDefinitions(ctx, &backfillv1.ListJobDefinitionsRequest{})
			return err
		}},
		{"UpdateJobDefinition", func(ctx context.Context, c backfillv1connect.ControlServiceClient, i int) error {
			_, err := c.UpdateJobDefinition(ctx, &backfillv1.UpdateJobDefinitionRequest{Id: def, Priority: proto.Int32(int32(200 + i))})
			return err
		}},
		{"ListJobRuns", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.ListJobRuns(ctx, &backfillv1.ListJobRunsRequest{})
			return err
		}},
		{"RetryJobRun", func(ctx context.Context, c backfillv1connect.ControlServiceClient, i int) error {
			_, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: failed[i]})
			return err
		}},
		{"CancelJobRun", func(ctx context.Context, c backfillv1connect.ControlServiceClient, i int) error {
			_, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: queued[i]})
			return err
		}},
		{"RunTick", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.RunTick(ctx, &backfillv1.RunTickRequest{})
			return err
		}},
		{"GetReplicationStatus", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.GetReplicationStatus(ctx, &backfillv1.GetReplicationStatusRequest{})
			return err
		}},
		{"VerifyCoverage", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			_, err := c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: []string{"AAPL"}})
			if connect.CodeOf(err) == connect.CodeFailedPrecondition && strings.Contains(err.Error(), "runs no orchestrator") {
				return nil // past auth: this API has no checker
			}
			return err
		}},
		{"WatchBackfill", func(ctx context.Context, c backfillv1connect.ControlServiceClient, _ int) error {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			s, err := c.WatchBackfill(ctx, &backfillv1.WatchBackfillRequest{Symbol: "AAPL"})
			if err != nil {
				return err
			}
			defer s.Close()
			conn, err := s.Conn()
			if err != nil {
				return err
			}
			conn.ResponseHeader() // the watch listens, or the call was refused
			f.exec(`UPDATE job_runs SET rows_written = rows_written + 1 WHERE id = $1`, watched)
			if !s.Receive() {
				return s.Err()
			}
			if got := s.Msg().GetRun().GetId(); got != watched {
				return fmt.Errorf("event of run %s, want %s", got, watched)
			}
			return nil
		}},
	}
	require.Equal(t, backfillv1.File_backfill_v1_control_proto.Services().ByName("ControlService").Methods().Len(), len(calls), "every method")

	user := a.userToken(t, "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d")
	for _, cred := range []struct {
		name, token string
		want        connect.Code // 0: accepted
		i           int
	}{
		{"no credentials", "", connect.CodeUnauthenticated, 0},
		{"malformed token", "not-a-jwt", connect.CodeUnauthenticated, 0},
		{"unknown secret key", "sb_secret_unknown", connect.CodeUnauthenticated, 0},
		{"anon key", server.LocalAnonKey, connect.CodePermissionDenied, 0},
		{"publishable key", publishable, connect.CodePermissionDenied, 0},
		{"user token", user, connect.CodePermissionDenied, 0},
		{"service_role key", server.LocalServiceRoleKey, 0, 0},
		{"sb_secret_ key", secretKey, 0, 1},
	} {
		c := controlClient(a, cred.token)
		for _, m := range calls {
			err := m.call(t.Context(), c, cred.i)
			switch cred.want {
			case 0:
				require.NoError(t, err, "%s with %s", m.name, cred.name)
			case connect.CodePermissionDenied:
				requireCode(t, err, cred.want, "the control plane needs a service_role token or an sb_secret_ key")
			default:
				require.Equal(t, cred.want, connect.CodeOf(err), "%s with %s: %v", m.name, cred.name, err)
			}
		}
	}

	// Only the accepted calls changed anything: each changed its own run.
	require.Equal(t, []string{"queued", "queued"}, []string{f.status(failed[0]), f.status(failed[1])})
	require.Equal(t, []string{"cancelled", "cancelled"}, []string{f.status(queued[0]), f.status(queued[1])})
	var priority int
	require.NoError(t, a.pool.QueryRow(t.Context(), `SELECT priority FROM job_definitions WHERE id = $1`, def).Scan(&priority))
	require.Equal(t, 201, priority)
	requireWatchesReleased(t, a)
}

func timeframeEnum(tf string) backfillv1.Timeframe {
	return backfillv1.Timeframe(backfillv1.Timeframe_value["TIMEFRAME_"+strings.ToUpper(tf)])
}

func numericPtr(t *testing.T, n pgtype.Numeric) *float64 {
	t.Helper()
	if !n.Valid {
		return nil
	}
	f, err := n.Float64Value()
	require.NoError(t, err)
	return &f.Float64
}

func timestampPtr(p *time.Time) *timestamppb.Timestamp {
	if p == nil {
		return nil
	}
	return timestamppb.New(*p)
}

// The expected answers, read straight from the SQL functions.

func statsFromSQL(t *testing.T, pool *pgxpool.Pool, hours int) *backfillv1.GetTimeframeJobStatsResponse {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT * FROM public.get_timeframe_job_stats($1)`, hours)
	require.NoError(t, err)
	defer rows.Close()
	out := &backfillv1.GetTimeframeJobStatsResponse{}
	for rows.Next() {
		var tf string
		var r backfillv1.TimeframeJobStats
		var avg pgtype.Numeric
		require.NoError(t, rows.Scan(&tf, &r.TotalJobs, &r.Queued, &r.Running, &r.Success, &r.Failed, &r.TotalBarsWritten, &avg))
		r.Timeframe, r.AvgDurationSeconds = timeframeEnum(tf), numericPtr(t, avg)
		out.Stats = append(out.Stats, &r)
	}
	require.NoError(t, rows.Err())
	return out
}

func coverageFromSQL(t *testing.T, pool *pgxpool.Pool, symbol string) *backfillv1.GetSymbolCoverageResponse {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT * FROM public.get_symbol_timeframe_coverage($1)`, symbol)
	require.NoError(t, err)
	defer rows.Close()
	out := &backfillv1.GetSymbolCoverageResponse{}
	for rows.Next() {
		var tf string
		var c backfillv1.SymbolCoverage
		var earliest, latest, fetched, checked *time.Time
		var days, complete pgtype.Numeric
		var holes *int64
		require.NoError(t, rows.Scan(&tf, &c.BarsCount, &earliest, &latest, &days, &fetched, &c.JobEnabled, &c.JobPriority,
			&c.SessionsExpected, &c.SessionsFetched, &c.SessionsComplete, &complete, &holes, &checked))
		c.Timeframe, c.EarliestBar, c.LatestBar, c.CoverageDays, c.LastFetch =
			timeframeEnum(tf), timestampPtr(earliest), timestampPtr(latest), numericPtr(t, days), timestampPtr(fetched)
		c.Completeness, c.CheckedAt = numericPtr(t, complete), timestampPtr(checked)
		c.Holes = holesFromSQL(t, pool, symbol, tf)
		require.Equal(t, int64(len(c.Holes)), ptrOr(holes, 0), "the function's holes count the holes listed")
		out.Coverage = append(out.Coverage, &c)
	}
	require.NoError(t, rows.Err())
	return out
}

// holesFromSQL reads coverage_holes of a symbol's definition of timeframe tf.
func holesFromSQL(t *testing.T, pool *pgxpool.Pool, symbol, tf string) []*backfillv1.CoverageHole {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT to_char(h.session_date, 'YYYY-MM-DD'), h.range_from, h.range_to, h.kind, h.state, h.expected_bars, h.found_bars,
       h.repairs, coalesce(h.reason, '')
FROM coverage_holes h JOIN job_definitions d ON d.id = h.job_def_id
WHERE d.symbol = $1 AND d.timeframe = $2 ORDER BY h.session_date`, symbol, tf)
	require.NoError(t, err)
	defer rows.Close()
	out := []*backfillv1.CoverageHole{}
	for rows.Next() {
		var h backfillv1.CoverageHole
		var from, to time.Time
		require.NoError(t, rows.Scan(&h.SessionDate, &from, &to, &h.Kind, &h.State, &h.ExpectedBars, &h.FoundBars, &h.Repairs, &h.Reason))
		h.From, h.To = timestamppb.New(from), timestamppb.New(to)
		out = append(out, &h)
	}
	require.NoError(t, rows.Err())
	return out
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func trackedFromSQL(t *testing.T, pool *pgxpool.Pool, user string) *backfillv1.ListUserTrackedSymbolsResponse {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT * FROM public.get_user_tracked_symbols_status(nullif($1, '')::uuid)`, user)
	require.NoError(t, err)
	defer rows.Close()
	out := &backfillv1.ListUserTrackedSymbolsResponse{}
	for rows.Next() {
		var s backfillv1.UserTrackedSymbol
		var at time.Time
		require.NoError(t, rows.Scan(&s.Symbol, &s.Source, &s.Priority, &at, &s.M15Bars, &s.H1Bars, &s.H4Bars,
			&s.JobsPending, &s.JobsRunning, &s.D1Bars, &s.W1Bars))
		s.TrackedAt = timestamppb.New(at)
		out.Symbols = append(out.Symbols, &s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestControlStatsEqualTheSQLFunctions(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, server.LocalServiceRoleKey, connect.WithGRPC())

	now := time.Now().UTC().Truncate(time.Hour)
	h := func(n int) time.Time { return now.Add(time.Duration(n) * time.Hour) }
	aaplH1 := f.definition("AAPL", "h1", 90, 300, true, "")
	f.definition("AAPL", "d1", 730, 150, false, "no longer tracked")
	msftM15 := f.definition("MSFT", "m15", 30, 100, true, "")
	// AAPL h1: three timestamps, one written by two providers (counted once), and a forecast (not
	// counted).
	f.bars("AAPL", "h1", "synthetic", false, h(-3), h(-2), h(-1))
	f.bars("AAPL", "h1", "alpaca", false, h(-1))
	f.bars("AAPL", "h1", "ml_forecast", true, h(1))
	f.bars("AAPL", "d1", "synthetic", false, h(-72), h(-48))
	f.bars("MSFT", "m15", "synthetic", false, now.Add(-15*time.Minute))
	f.exec(`INSERT INTO coverage_status (symbol, timeframe, symbol_id, last_success_at)
		SELECT 'AAPL', 'h1', id, $1 FROM symbols WHERE ticker = 'AAPL'`, now.Add(-30*time.Minute))
	// One run in each state; one more success that last changed three hours ago (outside a
	// one-hour window, inside a five-hour one).
	f.run(runSpec{def: aaplH1, from: h(-3), status: "success", attempt: 1, rows: 3, started: now.Add(-10 * time.Minute), finished: now.Add(-10*time.Minute + 2500*time.Millisecond)})
	f.run(runSpec{def: aaplH1, from: h(-4), status: "success", attempt: 1, rows: 5, started: h(-3), finished: h(-3).Add(time.Second), created: h(-3), updated: h(-3)})
	f.run(runSpec{def: aaplH1, from: h(-5), status: "failed", attempt: 5, errorCode: "provider_http_500"})
	f.run(runSpec{def: aaplH1, from: h(-6), status: "queued"})
	f.run(runSpec{def: aaplH1, from: h(-7), status: "running", attempt: 1})
	f.run(runSpec{def: aaplH1, from: h(-8), status: "cancelled"})
	f.run(runSpec{def: msftM15, from: h(-1), status: "queued"})
	const user = "2b3c4d5e-6f70-4182-9a3b-4c5d6e7f8091"
	f.track(user, "AAPL", "watchlist", 300)
	f.track(user, "MSFT", "chart_view", 200)
	f.track("", "AAPL", "recent_search", 100)

	for _, hours := range []int{1, 5} {
		got, err := c.GetTimeframeJobStats(ctx, &backfillv1.GetTimeframeJobStatsRequest{Hours: int32(hours)})
		require.NoError(t, err)
		requireProto(t, statsFromSQL(t, a.pool, hours), got)
		require.Len(t, got.GetStats(), 5, "a row per timeframe")
	}
	zero, err := c.GetTimeframeJobStats(ctx, &backfillv1.GetTimeframeJobStatsRequest{})
	require.NoError(t, err)
	requireProto(t, statsFromSQL(t, a.pool, 1), zero) // 0 means 1
	five, err := c.GetTimeframeJobStats(ctx, &backfillv1.GetTimeframeJobStatsRequest{Hours: 5})
	require.NoError(t, err)
	h1 := five.GetStats()[1]
	require.Equal(t, backfillv1.Timeframe_TIMEFRAME_H1, h1.GetTimeframe())
	require.Equal(t, []int64{6, 1, 1, 2, 1, 8}, []int64{h1.GetTotalJobs(), h1.GetQueued(), h1.GetRunning(), h1.GetSuccess(), h1.GetFailed(), h1.GetTotalBarsWritten()})
	require.InDelta(t, 1.75, h1.GetAvgDurationSeconds(), 1e-9)
	require.Nil(t, five.GetStats()[0].AvgDurationSeconds, "no success in m15: absent, not 0")

	for _, symbol := range []string{"AAPL", "MSFT", "NOPE"} {
		got, err := c.GetSymbolCoverage(ctx, &backfillv1.GetSymbolCoverageRequest{Symbol: symbol})
		require.NoError(t, err)
		requireProto(t, coverageFromSQL(t, a.pool, symbol), got)
	}
	aapl, err := c.GetSymbolCoverage(ctx, &backfillv1.GetSymbolCoverageRequest{Symbol: " aapl "})
	require.NoError(t, err)
	requireProto(t, coverageFromSQL(t, a.pool, "AAPL"), aapl) // trimmed and upper-cased, as the sync path stores tickers
	require.Equal(t, int64(3), aapl.GetCoverage()[1].GetBarsCount())
	require.False(t, aapl.GetCoverage()[3].GetJobEnabled())
	require.Nil(t, aapl.GetCoverage()[0].EarliestBar, "no m15 bars: absent")
	require.Nil(t, aapl.GetCoverage()[0].JobEnabled, "no m15 definition: absent")

	for _, u := range []string{user, ""} {
		got, err := c.ListUserTrackedSymbols(ctx, &backfillv1.ListUserTrackedSymbolsRequest{UserId: u})
		require.NoError(t, err)
		requireProto(t, trackedFromSQL(t, a.pool, u), got)
	}
	mine, err := c.ListUserTrackedSymbols(ctx, &backfillv1.ListUserTrackedSymbolsRequest{UserId: strings.ToUpper(user)})
	require.NoError(t, err)
	require.Len(t, mine.GetSymbols(), 2, "the service role sees every user's rows (RLS does not hide them)")
	require.Equal(t, "AAPL", mine.GetSymbols()[0].GetSymbol())
	require.Equal(t, []int64{3, 2}, []int64{mine.GetSymbols()[0].GetH1Bars(), mine.GetSymbols()[0].GetD1Bars()})
	require.Equal(t, []int64{1, 1}, []int64{mine.GetSymbols()[0].GetJobsPending(), mine.GetSymbols()[0].GetJobsRunning()})

	_, err = c.GetTimeframeJobStats(ctx, &backfillv1.GetTimeframeJobStatsRequest{Hours: -1})
	requireCode(t, err, connect.CodeInvalidArgument, "hours must be between 1 and 87600 (ten years), got -1")
	_, err = c.GetSymbolCoverage(ctx, &backfillv1.GetSymbolCoverageRequest{Symbol: "  "})
	requireCode(t, err, connect.CodeInvalidArgument, `symbol is required, e.g. "AAPL"`)
	_, err = c.GetSymbolCoverage(ctx, &backfillv1.GetSymbolCoverageRequest{Symbol: strings.Repeat("A", 33)})
	requireCode(t, err, connect.CodeInvalidArgument, "symbol is longer than 32 characters")
	_, err = c.ListUserTrackedSymbols(ctx, &backfillv1.ListUserTrackedSymbolsRequest{UserId: "bob"})
	requireCode(t, err, connect.CodeInvalidArgument,
		`user_id "bob" is not a UUID (want the 8-4-4-4-12 hex form, e.g. 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)`)
}

func TestControlJobDefinitions(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, secretKey, connect.WithGRPCWeb())

	// Four symbols in three timeframes; the w1 ones disabled. Listed by symbol, then timeframe
	// in its canonical order.
	var want []string
	ids := map[string]string{}
	for _, sym := range []string{"AAPL", "AMD", "MSFT", "NVDA"} {
		for _, tf := range []string{"m15", "h1", "w1"} {
			reason := ""
			if tf == "w1" {
				reason = "no longer tracked"
			}
			id := f.definition(sym, tf, 30, 100, tf != "w1", reason)
			ids[sym+"/"+tf] = id
			want = append(want, id)
		}
	}

	var got []string
	var token string
	pages := 0
	for {
		res, err := c.ListJobDefinitions(ctx, &backfillv1.ListJobDefinitionsRequest{PageSize: 5, PageToken: token})
		require.NoError(t, err)
		pages++
		for _, d := range res.GetDefinitions() {
			got = append(got, d.GetId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, 3, pages, "5 + 5 + 2")

	list := func(req *backfillv1.ListJobDefinitionsRequest) []string {
		t.Helper()
		res, err := c.ListJobDefinitions(ctx, req)
		require.NoError(t, err)
		var out []string
		for _, d := range res.GetDefinitions() {
			out = append(out, d.GetSymbol()+"/"+strings.TrimPrefix(strings.ToLower(d.GetTimeframe().String()), "timeframe_"))
		}
		return out
	}
	require.Equal(t, []string{"AMD/m15", "AMD/h1", "AMD/w1"}, list(&backfillv1.ListJobDefinitionsRequest{Symbol: " amd"}))
	require.Equal(t, []string{"AAPL/w1", "AMD/w1", "MSFT/w1", "NVDA/w1"}, list(&backfillv1.ListJobDefinitionsRequest{Enabled: proto.Bool(false)}))
	require.Equal(t, []string{"AAPL/h1", "AMD/h1", "MSFT/h1", "NVDA/h1"},
		list(&backfillv1.ListJobDefinitionsRequest{Timeframe: backfillv1.Timeframe_TIMEFRAME_H1, Enabled: proto.Bool(true)}))

	// The full row.
	res, err := c.ListJobDefinitions(ctx, &backfillv1.ListJobDefinitionsRequest{Symbol: "NVDA", Timeframe: backfillv1.Timeframe_TIMEFRAME_W1})
	require.NoError(t, err)
	require.Len(t, res.GetDefinitions(), 1)
	d := res.GetDefinitions()[0]
	require.Equal(t, ids["NVDA/w1"], d.GetId())
	require.Equal(t, "fetch_historical", d.GetJobType())
	require.Equal(t, "manual", d.GetOrigin())
	require.Equal(t, "no longer tracked", d.GetDisabledReason())
	require.Equal(t, int32(30), d.GetWindowDays())
	require.False(t, d.GetEnabled())
	require.NotNil(t, d.GetCreatedAt())
	require.Nil(t, d.GetFirstBarsAt())

	// Page tokens are opaque and bound to their filters.
	first, err := c.ListJobDefinitions(ctx, &backfillv1.ListJobDefinitionsRequest{PageSize: 1, Symbol: "AAPL"})
	require.NoError(t, err)
	require.NotEmpty(t, first.GetNextPageToken())
	for _, tc := range []struct {
		name string
		req  *backfillv1.ListJobDefinitionsRequest
		msg  string
	}{
		{"malformed token", &backfillv1.ListJobDefinitionsRequest{PageToken: "not a token"},
			"page_token is not one this service issued: pass next_page_token from the previous response unchanged, or leave it empty for the first page"},
		{"token of other filters", &backfillv1.ListJobDefinitionsRequest{PageSize: 1, Symbol: "AMD", PageToken: first.GetNextPageToken()},
			"page_token was issued for other filters: repeat the request with the filters that returned it, or leave page_token empty to start again"},
		{"page too large", &backfillv1.ListJobDefinitionsRequest{PageSize: 1001}, "page_size must be between 1 and 1000 (0 means 100), got 1001"},
		{"negative page", &backfillv1.ListJobDefinitionsRequest{PageSize: -1}, "page_size must be between 1 and 1000 (0 means 100), got -1"},
		{"unknown timeframe", &backfillv1.ListJobDefinitionsRequest{Timeframe: 42},
			"timeframe 42 is not a Timeframe: use TIMEFRAME_M15, TIMEFRAME_H1, TIMEFRAME_H4, TIMEFRAME_D1 or TIMEFRAME_W1"},
	} {
		_, err := c.ListJobDefinitions(ctx, tc.req)
		requireCode(t, err, connect.CodeInvalidArgument, tc.msg)
	}
	second, err := c.ListJobDefinitions(ctx, &backfillv1.ListJobDefinitionsRequest{PageSize: 1, Symbol: "aapl", PageToken: first.GetNextPageToken()})
	require.NoError(t, err, "the same filters, spelled differently")
	require.Equal(t, ids["AAPL/h1"], second.GetDefinitions()[0].GetId())

	// Updates change only what they name and wake the planners.
	wake := pgtest.Listen(t, a.pool, replicator.NotifyChannel)
	before := d
	up, err := c.UpdateJobDefinition(ctx, &backfillv1.UpdateJobDefinitionRequest{Id: ids["AAPL/h1"], Priority: proto.Int32(250)})
	require.NoError(t, err)
	u := up.GetDefinition()
	require.Equal(t, []int32{250, 30}, []int32{u.GetPriority(), u.GetWindowDays()})
	require.True(t, u.GetEnabled())
	require.JSONEq(t, `{"kind":"control","reason":"update_job_definition"}`, pgtest.NextNotification(t, wake))
	again, err := c.UpdateJobDefinition(ctx, &backfillv1.UpdateJobDefinitionRequest{Id: ids["AAPL/h1"], Priority: proto.Int32(250)})
	require.NoError(t, err)
	requireProto(t, u, again.GetDefinition()) // nothing to change: nothing written, updated_at included

	up, err = c.UpdateJobDefinition(ctx, &backfillv1.UpdateJobDefinitionRequest{Id: ids["AAPL/m15"], WindowDays: proto.Int32(14), Enabled: proto.Bool(false)})
	require.NoError(t, err)
	u = up.GetDefinition()
	require.Equal(t, []int32{100, 14}, []int32{u.GetPriority(), u.GetWindowDays()})
	require.False(t, u.GetEnabled())
	require.Equal(t, "disabled by operator", u.GetDisabledReason(), "tracking changes leave it disabled")
	pgtest.NextNotification(t, wake)

	// Enabling clears the reason and starts a new request.
	f.exec(`UPDATE job_definitions SET disabled_reason = 'permanent provider error: unknown symbol', first_bars_at = now(), covered_at = now(),
		requested_at = now() - interval '1 day' WHERE id = $1`, ids["NVDA/w1"])
	up, err = c.UpdateJobDefinition(ctx, &backfillv1.UpdateJobDefinitionRequest{Id: ids["NVDA/w1"], Enabled: proto.Bool(true)})
	require.NoError(t, err)
	u = up.GetDefinition()
	require.True(t, u.GetEnabled())
	require.Empty(t, u.GetDisabledReason())
	require.Nil(t, u.GetFirstBarsAt())
	require.Nil(t, u.GetCoveredAt())
	require.WithinDuration(t, time.Now(), u.GetRequestedAt().AsTime(), time.Minute)
	require.True(t, u.GetUpdatedAt().AsTime().After(before.GetUpdatedAt().AsTime()))
	pgtest.NextNotification(t, wake)

	unknown := "0d9c8b7a-6f5e-4d3c-8b2a-1f0e9d8c7b6a"
	for _, tc := range []struct {
		name string
		req  *backfillv1.UpdateJobDefinitionRequest
		code connect.Code
		msg  string
	}{
		{"no id", &backfillv1.UpdateJobDefinitionRequest{Priority: proto.Int32(1)}, connect.CodeInvalidArgument,
			"id is required (a UUID such as 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)"},
		{"bad id", &backfillv1.UpdateJobDefinitionRequest{Id: "AAPL/h1", Priority: proto.Int32(1)}, connect.CodeInvalidArgument,
			`id "AAPL/h1" is not a UUID (want the 8-4-4-4-12 hex form, e.g. 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)`},
		{"nothing to change", &backfillv1.UpdateJobDefinitionRequest{Id: ids["AMD/h1"]}, connect.CodeInvalidArgument,
			"nothing to change: set window_days, priority or enabled"},
		{"window 0", &backfillv1.UpdateJobDefinitionRequest{Id: ids["AMD/h1"], WindowDays: proto.Int32(0)}, connect.CodeInvalidArgument,
			"window_days must be between 1 and 36500 days, got 0"},
		{"window too long", &backfillv1.UpdateJobDefinitionRequest{Id: ids["AMD/h1"], WindowDays: proto.Int32(36501)}, connect.CodeInvalidArgument,
			"window_days must be between 1 and 36500 days, got 36501"},
		{"priority too high", &backfillv1.UpdateJobDefinitionRequest{Id: ids["AMD/h1"], Priority: proto.Int32(1001)}, connect.CodeInvalidArgument,
			"priority must be between 0 and 1000 (higher runs first; tracking uses watchlist 300, chart view 200, search 100), got 1001"},
		{"negative priority", &backfillv1.UpdateJobDefinitionRequest{Id: ids["AMD/h1"], Priority: proto.Int32(-1), Enabled: proto.Bool(false)}, connect.CodeInvalidArgument,
			"priority must be between 0 and 1000 (higher runs first; tracking uses watchlist 300, chart view 200, search 100), got -1"},
		{"unknown id", &backfillv1.UpdateJobDefinitionRequest{Id: strings.ToUpper(unknown), Enabled: proto.Bool(true)}, connect.CodeNotFound,
			"job definition " + unknown + ": not found"},
	} {
		_, err := c.UpdateJobDefinition(ctx, tc.req)
		requireCode(t, err, tc.code, tc.msg)
	}
	var enabled bool
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT enabled FROM job_definitions WHERE id = $1`, ids["AMD/h1"]).Scan(&enabled))
	require.True(t, enabled, "a refused update changes nothing")
}

func TestControlJobRuns(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, server.LocalServiceRoleKey)

	aapl := f.definition("AAPL", "h1", 30, 300, true, "")
	msft := f.definition("MSFT", "d1", 365, 100, true, "")
	tsla := f.definition("TSLA", "h1", 30, 100, false, "permanent provider error: unknown symbol TSLA")
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	slice := time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC)
	r := map[string]string{
		"aapl success":   f.run(runSpec{def: aapl, from: slice, status: "success", attempt: 1, rows: 7, started: at(0), finished: at(1), created: at(0)}),
		"aapl failed":    f.run(runSpec{def: aapl, from: slice.Add(time.Hour), status: "failed", attempt: 5, errorCode: "provider_http_500", errorMessage: "HTTP 500 from the provider", started: at(1), finished: at(2), created: at(1)}),
		"aapl queued":    f.run(runSpec{def: aapl, from: slice.Add(2 * time.Hour), status: "queued", created: at(2)}),
		"aapl cancelled": f.run(runSpec{def: aapl, from: slice.Add(3 * time.Hour), status: "cancelled", created: at(3)}),
		"msft queued":    f.run(runSpec{def: msft, from: slice, status: "queued", created: at(4)}),
		"msft failed":    f.run(runSpec{def: msft, from: slice.Add(24 * time.Hour), status: "failed", attempt: 5, created: at(5)}),
		"tsla failed":    f.run(runSpec{def: tsla, from: slice, status: "failed", attempt: 1, errorCode: "provider_permanent", created: at(6)}),
	}
	name := map[string]string{}
	for k, v := range r {
		name[v] = k
	}
	list := func(req *backfillv1.ListJobRunsRequest) ([]string, string) {
		t.Helper()
		res, err := c.ListJobRuns(ctx, req)
		require.NoError(t, err)
		var out []string
		for _, run := range res.GetRuns() {
			out = append(out, name[run.GetId()])
		}
		return out, res.GetNextPageToken()
	}

	// Newest first, paged.
	var all []string
	var token string
	for {
		page, next := list(&backfillv1.ListJobRunsRequest{PageSize: 3, PageToken: token})
		all = append(all, page...)
		if token = next; token == "" {
			break
		}
	}
	require.Equal(t, []string{"tsla failed", "msft failed", "msft queued", "aapl cancelled", "aapl queued", "aapl failed", "aapl success"}, all)

	got, _ := list(&backfillv1.ListJobRunsRequest{Statuses: []backfillv1.RunStatus{backfillv1.RunStatus_RUN_STATUS_FAILED}})
	require.Equal(t, []string{"tsla failed", "msft failed", "aapl failed"}, got)
	got, _ = list(&backfillv1.ListJobRunsRequest{Symbol: "aapl", Statuses: []backfillv1.RunStatus{
		backfillv1.RunStatus_RUN_STATUS_FAILED, backfillv1.RunStatus_RUN_STATUS_CANCELLED}})
	require.Equal(t, []string{"aapl cancelled", "aapl failed"}, got)
	got, _ = list(&backfillv1.ListJobRunsRequest{JobDefId: msft})
	require.Equal(t, []string{"msft failed", "msft queued"}, got)
	got, _ = list(&backfillv1.ListJobRunsRequest{Timeframe: backfillv1.Timeframe_TIMEFRAME_H1, Statuses: []backfillv1.RunStatus{backfillv1.RunStatus_RUN_STATUS_QUEUED}})
	require.Equal(t, []string{"aapl queued"}, got)

	// A token goes with its filters, whatever order the statuses come in.
	failedOrCancelled := []backfillv1.RunStatus{backfillv1.RunStatus_RUN_STATUS_FAILED, backfillv1.RunStatus_RUN_STATUS_CANCELLED}
	page, next := list(&backfillv1.ListJobRunsRequest{PageSize: 2, Statuses: failedOrCancelled})
	require.Equal(t, []string{"tsla failed", "msft failed"}, page)
	page, next2 := list(&backfillv1.ListJobRunsRequest{PageSize: 2, PageToken: next,
		Statuses: []backfillv1.RunStatus{backfillv1.RunStatus_RUN_STATUS_CANCELLED, backfillv1.RunStatus_RUN_STATUS_FAILED}})
	require.Equal(t, []string{"aapl cancelled", "aapl failed"}, page)
	require.Empty(t, next2, "the last page")

	for _, tc := range []struct {
		name string
		req  *backfillv1.ListJobRunsRequest
		msg  string
	}{
		{"token of other filters", &backfillv1.ListJobRunsRequest{PageSize: 2, PageToken: next},
			"page_token was issued for other filters: repeat the request with the filters that returned it, or leave page_token empty to start again"},
		{"malformed token", &backfillv1.ListJobRunsRequest{PageToken: "eyJ2IjoxfQ"},
			"page_token is not one this service issued: pass next_page_token from the previous response unchanged, or leave it empty for the first page"},
		{"unspecified status", &backfillv1.ListJobRunsRequest{Statuses: []backfillv1.RunStatus{backfillv1.RunStatus_RUN_STATUS_UNSPECIFIED}},
			"statuses: RUN_STATUS_UNSPECIFIED is not a run status: use RUN_STATUS_QUEUED, RUN_STATUS_RUNNING, RUN_STATUS_SUCCESS, RUN_STATUS_FAILED or RUN_STATUS_CANCELLED"},
		{"bad definition id", &backfillv1.ListJobRunsRequest{JobDefId: "msft"},
			`job_def_id "msft" is not a UUID (want the 8-4-4-4-12 hex form, e.g. 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)`},
	} {
		_, err := c.ListJobRuns(ctx, tc.req)
		requireCode(t, err, connect.CodeInvalidArgument, tc.msg)
	}

	// The full row of a failed run.
	res, err := c.ListJobRuns(ctx, &backfillv1.ListJobRunsRequest{JobDefId: aapl, Statuses: []backfillv1.RunStatus{backfillv1.RunStatus_RUN_STATUS_FAILED}})
	require.NoError(t, err)
	fr := res.GetRuns()[0]
	require.Equal(t, r["aapl failed"], fr.GetId())
	require.Equal(t, aapl, fr.GetJobDefId())
	require.Equal(t, "AAPL", fr.GetSymbol())
	require.Equal(t, backfillv1.Timeframe_TIMEFRAME_H1, fr.GetTimeframe())
	require.True(t, fr.GetSliceFrom().AsTime().Equal(slice.Add(time.Hour)))
	require.True(t, fr.GetSliceTo().AsTime().Equal(slice.Add(2*time.Hour)))
	require.Equal(t, backfillv1.RunStatus_RUN_STATUS_FAILED, fr.GetStatus())
	require.Equal(t, int32(5), fr.GetAttempt())
	require.Equal(t, "provider_http_500", fr.GetErrorCode())
	require.Equal(t, "HTTP 500 from the provider", fr.GetErrorMessage())
	require.Empty(t, fr.GetLeaseOwner())
	require.True(t, fr.GetStartedAt().AsTime().Equal(at(1)))
	require.True(t, fr.GetFinishedAt().AsTime().Equal(at(2)))
	require.True(t, fr.GetCreatedAt().AsTime().Equal(at(1)))

	// Retry: failed or cancelled runs go back to the queue, due now, as new; the workers wake.
	wake := pgtest.Listen(t, a.pool, replicator.NotifyChannel)
	rr, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: r["aapl failed"]})
	require.NoError(t, err)
	run := rr.GetRun()
	require.Equal(t, backfillv1.RunStatus_RUN_STATUS_QUEUED, run.GetStatus())
	require.Equal(t, int32(0), run.GetAttempt())
	require.Empty(t, run.GetErrorCode())
	require.Empty(t, run.GetErrorMessage())
	require.Nil(t, run.GetStartedAt())
	require.Nil(t, run.GetFinishedAt())
	require.WithinDuration(t, time.Now(), run.GetNextAttemptAt().AsTime(), time.Minute)
	require.JSONEq(t, `{"kind":"control","reason":"retry_job_run"}`, pgtest.NextNotification(t, wake))
	rr, err = c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: r["aapl cancelled"]})
	require.NoError(t, err)
	require.Equal(t, backfillv1.RunStatus_RUN_STATUS_QUEUED, rr.GetRun().GetStatus())

	// Cancel: queued or running runs only.
	cr, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: r["msft queued"]})
	require.NoError(t, err)
	require.Equal(t, backfillv1.RunStatus_RUN_STATUS_CANCELLED, cr.GetRun().GetStatus())
	require.NotNil(t, cr.GetRun().GetFinishedAt())

	unknown := "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	for _, tc := range []struct {
		name string
		call func() error
		code connect.Code
		msg  string
	}{
		{"retry queued", func() error {
			_, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: r["aapl queued"]})
			return err
		}, connect.CodeFailedPrecondition, "job run " + r["aapl queued"] + " is queued: only a failed or cancelled run can be retried"},
		{"retry success", func() error {
			_, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: r["aapl success"]})
			return err
		}, connect.CodeFailedPrecondition, "job run " + r["aapl success"] + " is success: only a failed or cancelled run can be retried"},
		{"retry under a disabled definition", func() error {
			_, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: r["tsla failed"]})
			return err
		}, connect.CodeFailedPrecondition, "job run " + r["tsla failed"] + " belongs to a disabled definition, whose runs no worker claims: " +
			"enable the definition first (UpdateJobDefinition with enabled true), which also retries its failed runs; " +
			"it was disabled because: permanent provider error: unknown symbol TSLA"},
		{"retry unknown", func() error {
			_, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: unknown})
			return err
		}, connect.CodeNotFound, "job run " + unknown + ": not found"},
		{"retry without id", func() error {
			_, err := c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{})
			return err
		}, connect.CodeInvalidArgument, "id is required (a UUID such as 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)"},
		{"cancel success", func() error {
			_, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: r["aapl success"]})
			return err
		}, connect.CodeFailedPrecondition, "job run " + r["aapl success"] + " is success already: only a queued or running run can be cancelled"},
		{"cancel cancelled", func() error {
			_, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: r["msft queued"]})
			return err
		}, connect.CodeFailedPrecondition, "job run " + r["msft queued"] + " is cancelled already: only a queued or running run can be cancelled"},
		{"cancel unknown", func() error {
			_, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: unknown})
			return err
		}, connect.CodeNotFound, "job run " + unknown + ": not found"},
		{"cancel bad id", func() error {
			_, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: "42"})
			return err
		}, connect.CodeInvalidArgument, `id "42" is not a UUID (want the 8-4-4-4-12 hex form, e.g. 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)`},
	} {
		requireCode(t, tc.call(), tc.code, tc.msg)
	}
	require.Equal(t, "failed", f.status(r["tsla failed"]), "refused: unchanged")
}

func TestControlCancelRunningRun(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, server.LocalServiceRoleKey, connect.WithGRPC())
	f.definition("NVDA", "h1", 1, 300, true, "")
	var dbClock time.Time // zero: every statement uses the database's clock
	_, err := orchestrator.Enqueue(ctx, a.pool, dbClock, orchestrator.DefaultSliceSizes())
	require.NoError(t, err)
	claimed, err := orchestrator.Claim(ctx, a.pool, dbClock, "worker-1", time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	run := claimed[0]

	res, err := c.CancelJobRun(ctx, &backfillv1.CancelJobRunRequest{Id: run.ID})
	require.NoError(t, err)
	require.Equal(t, backfillv1.RunStatus_RUN_STATUS_CANCELLED, res.GetRun().GetStatus())
	require.Empty(t, res.GetRun().GetLeaseOwner(), "the lease is taken away")

	// The worker that held it can neither renew its lease nor write its result.
	require.ErrorIs(t, orchestrator.Heartbeat(ctx, a.pool, dbClock, run, time.Minute), orchestrator.ErrLeaseLost)
	_, err = orchestrator.Write(ctx, a.pool, dbClock, run, orchestrator.Fetched{Provider: "synthetic",
		Bars: []marketdata.Bar{{TS: run.Slice.From, Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 10}}})
	require.ErrorIs(t, err, orchestrator.ErrLeaseLost)
	var bars int
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT count(*) FROM ohlc_bars_v2`).Scan(&bars))
	require.Zero(t, bars)
	require.Equal(t, "cancelled", f.status(run.ID))

	// The planner leaves a cancelled run alone; a retry queues it again for a fresh claim.
	_, err = orchestrator.Enqueue(ctx, a.pool, dbClock, orchestrator.DefaultSliceSizes())
	require.NoError(t, err)
	require.Equal(t, "cancelled", f.status(run.ID))
	_, err = c.RetryJobRun(ctx, &backfillv1.RetryJobRunRequest{Id: run.ID})
	require.NoError(t, err)
	again, err := orchestrator.Claim(ctx, a.pool, dbClock, "worker-2", time.Minute, 10)
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(again, func(r orchestrator.Run) bool { return r.ID == run.ID && r.Attempt == 1 }), "%+v", again)
}

func TestControlRunTick(t *testing.T) {
	t.Parallel()
	// Thursday afternoon: the 7-day grid starts on Thursdays.
	planNow := time.Date(2026, 11, 26, 15, 7, 0, 0, time.UTC)
	sizes := orchestrator.SliceSizesFor(10000)
	a := controlAPI(t, control.Config{Now: func() time.Time { return planNow }, SliceSizes: sizes})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, secretKey)
	aapl := f.definition("AAPL", "h1", 40, 300, true, "")
	f.definition("MSFT", "d1", 400, 100, true, "")
	tsla := f.definition("TSLA", "h1", 40, 100, false, "no longer tracked")
	want := len(orchestrator.Window(sizes[market.H1], 40, planNow)) + len(orchestrator.Window(sizes[market.D1], 400, planNow))

	wake := pgtest.Listen(t, a.pool, replicator.NotifyChannel)
	res, err := c.RunTick(ctx, &backfillv1.RunTickRequest{})
	require.NoError(t, err)
	requireProto(t, &backfillv1.RunTickResponse{Inserted: int32(want), Requeued: 0, QueueDepth: int32(want)}, res)
	require.JSONEq(t, `{"kind":"control","reason":"run_tick"}`, pgtest.NextNotification(t, wake))
	var tslaRuns int
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE job_def_id = $1`, tsla).Scan(&tslaRuns))
	require.Zero(t, tslaRuns, "disabled definitions are not planned")

	res, err = c.RunTick(ctx, &backfillv1.RunTickRequest{})
	require.NoError(t, err)
	requireProto(t, &backfillv1.RunTickResponse{QueueDepth: int32(want)}, res)

	// The open slice fetched before it ended (a minute before the tick) is planned again.
	f.exec(`UPDATE job_runs SET status = 'success', started_at = $2::timestamptz - interval '1 minute',
		finished_at = $2::timestamptz - interval '1 minute'
		WHERE job_def_id = $1 AND slice_to > $2`, aapl, planNow)
	res, err = c.RunTick(ctx, &backfillv1.RunTickRequest{})
	require.NoError(t, err)
	requireProto(t, &backfillv1.RunTickResponse{Requeued: 1, QueueDepth: int32(want)}, res)

	// A server that runs no orchestrator does not know their grid, so it does not plan.
	blind := controlAPI(t, control.Config{})
	_, err = controlClient(blind, secretKey).RunTick(ctx, &backfillv1.RunTickRequest{})
	requireCode(t, err, connect.CodeFailedPrecondition, "this server runs no orchestrator, so it does not know the grid the orchestrators plan on: "+
		"call RunTick on a server that runs one (backfill serve --provider …, or backfill dev)")
}

func TestControlReplicationStatus(t *testing.T) {
	t.Parallel()
	// Slot names are cluster-wide and the test databases share a cluster.
	slot := fmt.Sprintf("control_status_%d", time.Now().UnixNano())
	a := controlAPI(t, control.Config{SlotName: slot})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, server.LocalServiceRoleKey)

	st, err := c.GetReplicationStatus(ctx, &backfillv1.GetReplicationStatusRequest{})
	require.NoError(t, err)
	require.False(t, st.GetSlotExists())
	require.Empty(t, st.GetSlotName())
	require.False(t, st.GetActive())
	require.Empty(t, st.GetAppliedLsn())
	require.Nil(t, st.GetAppliedAt())
	_, err = pglogrepl.ParseLSN(st.GetCurrentLsn())
	require.NoError(t, err)

	r, err := replicator.New(replicator.Config{
		DatabaseURL:    a.pool.Config().ConnString(),
		SlotName:       slot,
		StatusInterval: 200 * time.Millisecond,
		ReceiveTimeout: 5 * time.Second,
		MaxBackoff:     300 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(stopCtx))
		// DROP DATABASE refuses a database whose slot a walsender still holds.
		eventually(t, "the slot is released", func() bool {
			st, err := c.GetReplicationStatus(context.Background(), &backfillv1.GetReplicationStatusRequest{})
			return err == nil && !st.GetActive()
		})
	}
	t.Cleanup(stop)

	// A tracking change goes through the slot; the replicator records it.
	f.definition("AAPL", "h1", 1, 100, true, "")
	f.track("", "AAPL", "watchlist", 300)
	eventually(t, "the replicator streams and applies", func() bool {
		st, err = c.GetReplicationStatus(ctx, &backfillv1.GetReplicationStatusRequest{})
		require.NoError(t, err)
		return st.GetActive() && st.GetAppliedLsn() != ""
	})
	require.True(t, st.GetSlotExists())
	require.Equal(t, slot, st.GetSlotName())
	require.Positive(t, st.GetActivePid())
	require.Regexp(t, `^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+$`, st.GetActiveClient())
	for _, lsn := range []string{st.GetConfirmedFlushLsn(), st.GetCurrentLsn(), st.GetAppliedLsn()} {
		_, err := pglogrepl.ParseLSN(lsn)
		require.NoError(t, err, lsn)
	}
	current, err := pglogrepl.ParseLSN(st.GetCurrentLsn())
	require.NoError(t, err)
	confirmed, err := pglogrepl.ParseLSN(st.GetConfirmedFlushLsn())
	require.NoError(t, err)
	require.EqualValues(t, current-confirmed, st.GetLagBytes(), "lag is current - confirmed_flush, as the metric")
	require.GreaterOrEqual(t, st.GetRetainedBytes(), st.GetLagBytes(), "restart_lsn is never after confirmed_flush_lsn")
	require.Equal(t, "reserved", st.GetWalStatus())
	require.WithinDuration(t, time.Now(), st.GetAppliedAt().AsTime(), time.Minute)

	stop()
	st, err = c.GetReplicationStatus(ctx, &backfillv1.GetReplicationStatusRequest{})
	require.NoError(t, err)
	require.True(t, st.GetSlotExists(), "the slot outlives its replicator")
	require.False(t, st.GetActive())
	require.Zero(t, st.GetActivePid())
	require.Empty(t, st.GetActiveClient())
	require.NotEmpty(t, st.GetAppliedLsn())
}

// step is one event reduced to what the order checks look at.
type step struct {
	run, prev, status string
	bars              int32
}

func stepOf(ev *backfillv1.WatchBackfillResponse) step {
	return step{run: ev.GetRun().GetId(), prev: ev.GetPreviousStatus().String(), status: ev.GetRun().GetStatus().String(), bars: ev.GetBarsWritten()}
}

func TestControlWatchLiveBackfill(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{})
	f := fixture{t, a.pool}
	ctx := t.Context()
	f.definition("AAPL", "h1", 40, 300, true, "")
	f.definition("AAPL", "m15", 10, 200, true, "")
	f.definition("MSFT", "h1", 40, 100, true, "")

	// Three watchers, one per protocol: everything, AAPL only, MSFT only.
	all, _ := openWatch(t, controlClient(a, server.LocalServiceRoleKey), "")
	aapl, _ := openWatch(t, controlClient(a, secretKey, connect.WithGRPC()), "AAPL")
	msft, _ := openWatch(t, controlClient(a, server.LocalServiceRoleKey, connect.WithGRPCWeb()), "msft")
	require.Equal(t, 3.0, metricValue(t, a.reg, "backfill_control_watchers"))
	require.Equal(t, 3, watchConnections(t, a.pool))

	// A live backfill: the orchestrator plans on start and its workers fetch every slice.
	provider, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{})
	require.NoError(t, err)
	o, err := orchestrator.New(orchestrator.Config{Pool: a.pool, Provider: provider, Concurrency: 2, Tick: time.Hour})
	require.NoError(t, err)
	require.NoError(t, o.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, o.Stop(stopCtx))
	})

	// Read until every run the stream announced has succeeded and none is left to do.
	var steps []step
	var events []*backfillv1.WatchBackfillResponse
	open := map[string]bool{}
	for all.Receive() {
		ev := all.Msg()
		events = append(events, proto.CloneOf(ev))
		s := stepOf(ev)
		steps = append(steps, s)
		open[s.run] = s.status != "RUN_STATUS_SUCCESS"
		if s.status != "RUN_STATUS_SUCCESS" || slices.Contains(slices.Collect(maps.Values(open)), true) {
			continue
		}
		var pending, runs int
		require.NoError(t, a.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status <> 'success'), count(*) FROM job_runs`).Scan(&pending, &runs))
		if pending == 0 && runs == len(open) {
			break
		}
	}
	require.NoError(t, all.Err())

	// Per run, in commit order: created queued, claimed, succeeded; each event's previous status
	// is the status of the one before.
	byRun := map[string][]step{}
	for _, s := range steps {
		byRun[s.run] = append(byRun[s.run], s)
	}
	var totalBars int64
	for id, ss := range byRun {
		require.Equal(t, []string{"RUN_STATUS_UNSPECIFIED", "RUN_STATUS_QUEUED", "RUN_STATUS_RUNNING"},
			[]string{ss[0].prev, ss[1].prev, ss[2].prev}, "run %s: %+v", id, ss)
		require.Equal(t, []string{"RUN_STATUS_QUEUED", "RUN_STATUS_RUNNING", "RUN_STATUS_SUCCESS"},
			[]string{ss[0].status, ss[1].status, ss[2].status}, "run %s: %+v", id, ss)
		require.Len(t, ss, 3, "run %s: %+v", id, ss)
		var rows int32
		require.NoError(t, a.pool.QueryRow(ctx, `SELECT rows_written FROM job_runs WHERE id = $1`, id).Scan(&rows))
		require.Equal(t, rows, ss[2].bars, "bars_written of the success is the run's rows_written")
		totalBars += int64(ss[2].bars)
	}
	var bars int64
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT count(*) FROM ohlc_bars_v2`).Scan(&bars))
	require.Equal(t, bars, totalBars, "the stream accounts for every bar written")
	require.Positive(t, bars)
	for _, ev := range events {
		r := ev.GetRun()
		require.NotEmpty(t, r.GetJobDefId())
		require.NotNil(t, r.GetSliceFrom())
		require.True(t, r.GetSliceFrom().AsTime().Before(r.GetSliceTo().AsTime()))
		require.WithinDuration(t, time.Now(), ev.GetAt().AsTime(), time.Minute)
	}

	// The filtered streams carry exactly their symbol's events, in the same order.
	for _, w := range []struct {
		stream *watchStream
		symbol string
	}{{aapl, "AAPL"}, {msft, "MSFT"}} {
		var want []step
		for i, ev := range events {
			if ev.GetRun().GetSymbol() == w.symbol {
				want = append(want, steps[i])
			}
		}
		require.NotEmpty(t, want)
		var got []step
		for len(got) < len(want) && w.stream.Receive() {
			require.Equal(t, w.symbol, w.stream.Msg().GetRun().GetSymbol())
			got = append(got, stepOf(w.stream.Msg()))
		}
		require.NoError(t, w.stream.Err())
		require.Equal(t, want, got, w.symbol)
	}
}

func TestControlWatchManyShortLivedWatchers(t *testing.T) {
	t.Parallel()
	const n = 50
	a := controlAPI(t, control.Config{MaxWatchers: n})
	f := fixture{t, a.pool}
	symbol := func(i int) string { return fmt.Sprintf("W%02d", i) }
	f.exec(`
WITH s AS (INSERT INTO symbols (ticker) SELECT format('W%s', lpad(i::text, 2, '0')) FROM generate_series(0, $1 - 1) AS i RETURNING id, ticker)
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe) SELECT 'fetch_intraday', ticker, id, 'h1' FROM s`, n)
	http1 := &http.Transport{} // the others speak HTTP/2
	t.Cleanup(http1.CloseIdleConnections)
	clients := []backfillv1connect.ControlServiceClient{
		controlClient(a, server.LocalServiceRoleKey),
		controlClient(a, server.LocalServiceRoleKey, connect.WithGRPC()),
		controlClient(a, secretKey, connect.WithGRPCWeb()),
		backfillv1connect.NewControlServiceClient(&http.Client{Transport: bearerTransport{token: secretKey, base: http1}}, a.url),
	}

	// Every watcher listens for its own symbol, gets its one event and goes away.
	var listening, done sync.WaitGroup
	listening.Add(n)
	write := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		done.Go(func() {
			signal := sync.OnceFunc(listening.Done)
			defer signal()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel() // the client goes away
			s, err := clients[i%len(clients)].WatchBackfill(ctx, &backfillv1.WatchBackfillRequest{Symbol: symbol(i)})
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			conn, err := s.Conn()
			if err != nil {
				errs[i] = err
				return
			}
			conn.ResponseHeader()
			signal()
			<-write
			switch {
			case !s.Receive():
				errs[i] = fmt.Errorf("watcher %d: no event: %w", i, s.Err())
			case s.Msg().GetRun().GetSymbol() != symbol(i):
				errs[i] = fmt.Errorf("watcher %d: event of %s", i, s.Msg().GetRun().GetSymbol())
			}
		})
	}
	listening.Wait()
	require.Equal(t, float64(n), metricValue(t, a.reg, "backfill_control_watchers"), "all open at once")
	require.Equal(t, n, watchConnections(t, a.pool), "one connection each")
	f.exec(`
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to)
SELECT id, symbol, timeframe, job_type, '2026-01-01', '2026-01-02' FROM job_definitions`)
	close(write)
	done.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	// Nothing is left behind: no watch, no LISTEN connection (and, checked by goleak when the
	// package's tests end, no goroutine).
	requireWatchesReleased(t, a)
}

func TestControlWatchCap(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{MaxWatchers: 2})
	f := fixture{t, a.pool}
	c := controlClient(a, server.LocalServiceRoleKey, connect.WithGRPC())
	_, cancel := openWatch(t, c, "")
	openWatch(t, c, "")

	s, _ := openWatch(t, c, "")
	require.False(t, s.Receive())
	requireCode(t, s.Err(), connect.CodeResourceExhausted, "too many watchers: 2 watches are open, the most this server allows; try again later")

	cancel()
	eventually(t, "a slot frees", func() bool { return metricValue(t, a.reg, "backfill_control_watchers") == 1 })
	s, _ = openWatch(t, c, "AAPL")
	def := f.definition("AAPL", "h1", 1, 100, true, "")
	f.run(runSpec{def: def, from: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), status: "queued"})
	require.True(t, s.Receive(), "%v", s.Err())
	require.Equal(t, 1.0, metricValue(t, a.reg, "backfill_control_watches_refused_total"))
	// Streams are counted in the request metrics when they end, with their code.
	require.Equal(t, 1.0, requestCount(t, a.reg, "/backfill.v1.ControlService/WatchBackfill", "grpc", "resource_exhausted"))
}

// requestCount is backfill_server_requests_total for one procedure, protocol and code.
func requestCount(t *testing.T, reg *prometheus.Registry, procedure, protocol, code string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	want := map[string]string{"procedure": procedure, "protocol": protocol, "code": code}
	for _, f := range families {
		if f.GetName() != "backfill_server_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, want) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestControlWatchEndsWhenTheServerDrains(t *testing.T) {
	t.Parallel()
	a := controlAPI(t, control.Config{})
	health := func() string {
		return do(t, http.MethodPost, a.url+"/grpc.health.v1.Health/Check", headers("Content-Type", "application/json"),
			`{"service":"backfill.v1.ControlService"}`).body
	}
	require.JSONEq(t, `{"status":"SERVING_STATUS_SERVING"}`, health())
	streams := []*watchStream{}
	for _, opt := range [][]connect.ClientOption{nil, {connect.WithGRPC()}, {connect.WithGRPCWeb()}} {
		s, _ := openWatch(t, controlClient(a, server.LocalServiceRoleKey, opt...), "")
		streams = append(streams, s)
	}

	a.srv.Draining()
	require.JSONEq(t, `{"status":"SERVING_STATUS_NOT_SERVING"}`, health())
	for _, s := range streams {
		require.False(t, s.Receive())
		requireCode(t, s.Err(), connect.CodeUnavailable, "the server is shutting down: watch again (another replica may serve you)")
	}
	// With the streams ended, a graceful shutdown does not wait for them.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.hs.Shutdown(ctx))
	requireWatchesReleased(t, a)
}

func TestControlWatchOutlivesTheRequestTimeout(t *testing.T) {
	t.Parallel()
	// A request timeout so short that every unary call runs out of time at once.
	a := startAPI(t, apiOptions{control: &control.Config{}, requestTimeout: time.Nanosecond})
	f := fixture{t, a.pool}
	c := controlClient(a, server.LocalServiceRoleKey)
	_, err := c.GetTimeframeJobStats(t.Context(), &backfillv1.GetTimeframeJobStatsRequest{})
	require.Equal(t, connect.CodeDeadlineExceeded, connect.CodeOf(err), "%v", err)

	s, _ := openWatch(t, c, "")
	def := f.definition("AAPL", "h1", 1, 100, true, "")
	id := f.run(runSpec{def: def, from: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), status: "queued"})
	require.True(t, s.Receive(), "%v", s.Err())
	require.Equal(t, id, s.Msg().GetRun().GetId())
}

func TestControlBufCurl(t *testing.T) {
	t.Parallel()
	buf := newBufCLI(t)
	a := controlAPI(t, control.Config{SliceSizes: orchestrator.DefaultSliceSizes()})
	f := fixture{t, a.pool}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	def := f.definition("AAPL", "h1", 2, 100, true, "")
	failed := f.run(runSpec{def: def, from: old, status: "failed", attempt: 5, errorCode: "provider_http_500"})
	queued := f.run(runSpec{def: def, from: old.Add(time.Hour), status: "queued"})
	watched := f.run(runSpec{def: def, from: old.Add(2 * time.Hour), status: "queued"})
	f.bars("AAPL", "h1", "synthetic", false, old)
	f.track("", "AAPL", "watchlist", 300)

	svc := a.url + "/" + backfillv1connect.ControlServiceName + "/"
	service := "Authorization: Bearer " + server.LocalServiceRoleKey
	secret := "apikey: " + secretKey
	curl := func(protocol, header, body, method string) map[string]any {
		t.Helper()
		out := buf.requireCurl(t, "--http2-prior-knowledge", "--protocol", protocol, "-H", header, "-d", body, svc+method)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		return m
	}
	field := func(m map[string]any, path ...string) any {
		t.Helper()
		var v any = m
		for _, p := range path {
			obj, ok := v.(map[string]any)
			require.True(t, ok, "%s in %v", p, m)
			v = obj[p]
		}
		return v
	}

	out := buf.requireCurl(t, "--http2-prior-knowledge", "--list-methods", a.url)
	methods := backfillv1.File_backfill_v1_control_proto.Services().ByName("ControlService").Methods()
	for i := range methods.Len() {
		require.Contains(t, strings.Fields(out), backfillv1connect.ControlServiceName+"/"+string(methods.Get(i).Name()), "reflection lists every method")
	}

	m := curl("connect", service, `{"hours":24}`, "GetTimeframeJobStats")
	require.Len(t, field(m, "stats"), 5)
	require.Equal(t, "TIMEFRAME_M15", field(m, "stats").([]any)[0].(map[string]any)["timeframe"])
	m = curl("grpc", secret, `{"symbol":"aapl"}`, "GetSymbolCoverage")
	require.Equal(t, "1", field(m, "coverage").([]any)[1].(map[string]any)["bars_count"], "int64 in JSON is a string")
	m = curl("grpcweb", service, `{}`, "ListUserTrackedSymbols")
	require.Equal(t, "AAPL", field(m, "symbols").([]any)[0].(map[string]any)["symbol"])
	m = curl("connect", service, `{"symbol":"AAPL","enabled":true}`, "ListJobDefinitions")
	require.Equal(t, def, field(m, "definitions").([]any)[0].(map[string]any)["id"])
	m = curl("grpc", service, `{"id":"`+def+`","priority":250}`, "UpdateJobDefinition")
	require.EqualValues(t, 250, field(m, "definition", "priority"))
	m = curl("connect", service, `{"statuses":["RUN_STATUS_FAILED"]}`, "ListJobRuns")
	require.Equal(t, failed, field(m, "runs").([]any)[0].(map[string]any)["id"])
	m = curl("connect", service, `{"id":"`+failed+`"}`, "RetryJobRun")
	require.Equal(t, "RUN_STATUS_QUEUED", field(m, "run", "status"))
	m = curl("connect", service, `{"id":"`+queued+`"}`, "CancelJobRun")
	require.Equal(t, "RUN_STATUS_CANCELLED", field(m, "run", "status"))
	m = curl("connect", service, `{}`, "RunTick")
	require.Positive(t, field(m, "inserted"))
	m = curl("connect", service, `{}`, "GetReplicationStatus")
	require.NotEmpty(t, field(m, "current_lsn"))
	require.Nil(t, field(m, "slot_exists"), "false is a default, left out")

	// WatchBackfill: -v shows the response headers, which arrive once the watch listens.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, string(buf), "curl", "--http2-prior-knowledge", "-v", "-H", service,
		"-d", `{"symbol":"aapl"}`, svc+"WatchBackfill")
	// .bin/buf is a node script running the native buf as its child: end them together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stderr)
	var seen []string
	invoked, listening := false, false
	for !listening && lines.Scan() {
		// "buf: * Invoking RPC …", then, after the request, "buf: < (#2) HTTP/2.0 200 OK".
		line := lines.Text()
		seen = append(seen, line)
		invoked = invoked || strings.Contains(line, "* Invoking RPC")
		listening = invoked && strings.Contains(line, "< (#")
	}
	require.True(t, listening, "stderr:\n%s", strings.Join(seen, "\n"))
	drained := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stderr)
		close(drained)
	}()
	f.exec(`UPDATE job_runs SET status = 'running', attempt = 1 WHERE id = $1`, watched)
	var ev map[string]any
	require.NoError(t, json.NewDecoder(stdout).Decode(&ev), "stderr so far:\n%s", strings.Join(seen, "\n"))
	require.Equal(t, watched, field(ev, "run", "id"))
	require.Equal(t, "RUN_STATUS_RUNNING", field(ev, "run", "status"))
	require.Equal(t, "RUN_STATUS_QUEUED", field(ev, "previous_status"))
	cancel()
	<-drained
	_ = cmd.Wait()
	requireWatchesReleased(t, a)

	// Errors: JSON on stderr, the code in the exit status (code << 3).
	_, stderrOut, code := buf.curl(t, "--http2-prior-knowledge", "-H", "Authorization: Bearer "+server.LocalAnonKey, "-d", `{}`, svc+"RunTick")
	require.Equal(t, int(connect.CodePermissionDenied)<<3, code, stderrOut)
	require.JSONEq(t, `{"code":"permission_denied","message":"the control plane needs a service_role token or an sb_secret_ key"}`, stderrOut)
	_, stderrOut, code = buf.curl(t, "--http2-prior-knowledge", "--protocol", "grpc", "-d", `{}`, svc+"GetReplicationStatus")
	require.Equal(t, int(connect.CodeUnauthenticated)<<3, code, stderrOut)
	_, stderrOut, code = buf.curl(t, "--http2-prior-knowledge", "-H", service, "-d", `{"id":"`+def+`","window_days":0}`, svc+"UpdateJobDefinition")
	require.Equal(t, int(connect.CodeInvalidArgument)<<3, code, stderrOut)
	require.JSONEq(t, `{"code":"invalid_argument","message":"window_days must be between 1 and 36500 days, got 0"}`, stderrOut)
}
