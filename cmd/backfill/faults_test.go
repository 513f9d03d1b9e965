package main

// Fault drills of the orchestrator with real `backfill serve` processes: a worker killed with
// SIGKILL mid-run, two processes sharing one database, a PostgreSQL restart mid-backfill, and a
// provider answering 429, 5xx, timeouts and permanent errors. Each test waits by polling the
// database or /metrics with a deadline, never by sleeping.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pglocal"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// faultDef is a job definition a fault test writes with SQL.
type faultDef struct {
	symbol     string
	timeframe  market.Timeframe
	windowDays int
}

// insertDefs creates the symbols and their enabled definitions (watchlist priority).
func insertDefs(t *testing.T, db *pgx.Conn, defs []faultDef) {
	t.Helper()
	for _, d := range defs {
		_, err := db.Exec(t.Context(), `WITH s AS (
				INSERT INTO symbols (ticker) VALUES ($1)
				ON CONFLICT (ticker) DO UPDATE SET ticker = EXCLUDED.ticker RETURNING id)
			INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, origin)
			SELECT 'fetch_intraday', $1, s.id, $2, $3, 300, 'manual' FROM s`, d.symbol, string(d.timeframe), d.windowDays)
		require.NoError(t, err)
	}
}

func testConn(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), sql, args...).Scan(&n), sql)
	return n
}

// allRunsSucceeded is true once runs exist and every one has succeeded.
const allRunsSucceeded = `SELECT count(*) > 0 AND bool_and(status = 'success') FROM job_runs`

// requireBarsComplete checks the backfill against the synthetic provider, which is
// deterministic. Each definition's coverage is one range without holes that holds its window up
// to cutoff (the window as planned at some moment between cutoff and planned), and the bars that
// started before cutoff are exactly the synthetic provider's bars of that range: none lost, none
// extra, none twice.
func requireBarsComplete(t *testing.T, conn *pgx.Conn, cutoff, planned time.Time) {
	t.Helper()
	ctx := t.Context()
	require.Zero(t, queryInt(t, conn, `SELECT count(*) - count(DISTINCT (symbol_id, timeframe, ts, provider, is_forecast)) FROM ohlc_bars_v2`),
		"no duplicate bars")
	synth, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Now: func() time.Time { return cutoff }})
	require.NoError(t, err)
	rows, err := conn.Query(ctx, `SELECT d.symbol, d.timeframe, d.window_days, lower(c.covered), upper(c.covered),
			coalesce(c.covered = tstzmultirange(range_merge(c.covered)), false)
		FROM job_definitions d LEFT JOIN coverage_status c ON c.symbol = d.symbol AND c.timeframe = d.timeframe
		ORDER BY 1, 2`)
	require.NoError(t, err)
	type coverage struct {
		symbol, timeframe string
		windowDays        int
		from, to          *time.Time
		onePiece          bool
	}
	covs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (coverage, error) {
		var c coverage
		return c, row.Scan(&c.symbol, &c.timeframe, &c.windowDays, &c.from, &c.to, &c.onePiece)
	})
	require.NoError(t, err)
	require.NotEmpty(t, covs)
	total := 0
	for _, c := range covs {
		name := c.symbol + " " + c.timeframe
		require.True(t, c.onePiece, "%s: covered in one piece", name)
		require.False(t, c.from.After(planned.AddDate(0, 0, -c.windowDays)), "%s: coverage from %s holds the window", name, c.from)
		require.NotNil(t, c.to, name)
		require.False(t, c.to.Before(cutoff), "%s: coverage up to %s reaches the cutoff", name, c.to)

		want, err := synth.Bars(ctx, marketdata.Request{Symbol: c.symbol, Timeframe: market.Timeframe(c.timeframe), From: *c.from, To: cutoff})
		require.NoError(t, err)
		wantTS := make([]int64, 0, len(want))
		for _, b := range want {
			wantTS = append(wantTS, b.TS.Unix())
		}
		rows, err := conn.Query(ctx, `SELECT extract(epoch FROM b.ts)::bigint FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id
			WHERE s.ticker = $1 AND b.timeframe = $2 AND b.provider = 'synthetic' AND b.ts < $3 ORDER BY b.ts`, c.symbol, c.timeframe, cutoff)
		require.NoError(t, err)
		gotTS, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Equal(t, wantTS, gotTS, "%s: the bars before the cutoff", name)
		require.Zero(t, queryInt(t, conn, `SELECT count(*) FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id
			JOIN coverage_status c ON c.symbol = s.ticker AND c.timeframe = b.timeframe
			WHERE s.ticker = $1 AND b.timeframe = $2 AND NOT c.covered @> b.ts`, c.symbol, c.timeframe), "%s: no bar outside the coverage", name)
		total += len(want)
	}
	require.Positive(t, total, "the windows hold bars: the comparison means something")
}

// requireWrittenOnce checks that each run's rows_written is the number of bars in its slice:
// no run wrote part of its bars and left the rest to another, or wrote over bars written by
// another. It holds when every run was executed exactly once.
func requireWrittenOnce(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT format('%s %s [%s, %s) attempt %s: rows_written %s, bars %s',
			r.symbol, r.timeframe, r.slice_from, r.slice_to, r.attempt, r.rows_written, n.bars)
		FROM job_runs r, LATERAL (
			SELECT count(*) AS bars FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id
			WHERE s.ticker = r.symbol AND b.timeframe = r.timeframe AND b.ts >= r.slice_from AND b.ts < r.slice_to) n
		WHERE r.rows_written <> n.bars ORDER BY r.symbol, r.timeframe, r.slice_from`)
	require.NoError(t, err)
	wrong, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, wrong, "runs whose rows_written is not the bars of their slice")
	require.Positive(t, queryInt(t, conn, `SELECT count(*) FROM ohlc_bars_v2`))
}

// metric sums the samples of series name on the process's /metrics whose labels include every
// given name=value pair.
func (p *serveProcess) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(p.api + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var want []string
	for i := 0; i+1 < len(labels); i += 2 {
		want = append(want, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	sum := 0.0
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labelSet, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
		if metric != name {
			continue
		}
		have := strings.Split(labelSet, ",")
		if !containsAll(have, want) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err, line)
		sum += v
	}
	require.NoError(t, lines.Err())
	return sum
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// waitMetric polls the processes' /metrics until series name, summed over them as metric sums
// it, reaches at least min, for at most 30 s, and returns the sum. Counters move just after the
// database commit a test saw, so the test waits here for the figure.
func waitMetric(t *testing.T, procs []*serveProcess, min float64, name string, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		v := sumMetric(t, procs, name, labels...)
		if v >= min {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v is %v after 30s, want at least %v", name, labels, v, min)
		}
		<-tick.C
	}
}

// waitMetric is waitMetric for one process.
func (p *serveProcess) waitMetric(t *testing.T, min float64, name string, labels ...string) float64 {
	t.Helper()
	return waitMetric(t, []*serveProcess{p}, min, name, labels...)
}

// sumMetric sums series name over the processes, as metric does for one.
func sumMetric(t *testing.T, procs []*serveProcess, name string, labels ...string) float64 {
	t.Helper()
	v := 0.0
	for _, p := range procs {
		v += p.metric(t, name, labels...)
	}
	return v
}

// ownerPattern matches job_runs.lease_owner of the process with this pid (host:pid:random).
func ownerPattern(pid int) string { return fmt.Sprintf("%%:%d:%%", pid) }

// TestFaultKillWorkerMidRun kills a worker process with SIGKILL while its runs are fetching: a
// second process takes them back when their leases lapse and finishes the backfill; nothing is
// lost, nothing written twice.
func TestFaultKillWorkerMidRun(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dbURL := pgtest.URL(t)
	conn := testConn(t, dbURL)
	insertDefs(t, conn, []faultDef{
		{"KILA", market.M15, 14}, {"KILA", market.H1, 45},
		{"KILB", market.M15, 14}, {"KILB", market.H1, 45},
		{"KILC", market.M15, 14},
	})
	// Every bar that started before now must be there in the end: every fetch comes later.
	cutoff := time.Now()
	serve := func(latency string) []string {
		return []string{"serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--no-replicator", "--log-level", "warn",
			"--provider", "synthetic", "--synthetic-latency", latency, "--concurrency", "3", "--lease", "1s",
			// No refresh but the one at start: an open slice fetched again would rewrite its run's
			// rows_written, which requireWrittenOnce checks.
			"--tick", "10m"}
	}

	victim := startBackfill(t, bin, nil, serve("2s")...)
	pid := victim.cmd.Process.Pid
	waitFor(t, dbURL, `SELECT count(*) >= 3 FROM job_runs WHERE status = 'running' AND lease_owner LIKE $1`, ownerPattern(pid))
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	_ = victim.cmd.Wait()

	rows, err := conn.Query(t.Context(), `SELECT id::text FROM job_runs WHERE status = 'running' AND lease_owner LIKE $1`, ownerPattern(pid))
	require.NoError(t, err)
	killed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	// Runs of one timeframe and slice are claimed and fetched together (a batch): the dead
	// process holds at least the three m15 runs.
	require.GreaterOrEqual(t, len(killed), 3, "the dead process still holds its runs")
	require.Zero(t, queryInt(t, conn, `SELECT count(*) FROM job_runs WHERE status = 'success'`), "killed mid-run, before any write")
	runs := queryInt(t, conn, `SELECT count(*) FROM job_runs`)
	require.GreaterOrEqual(t, runs, len(killed))

	rescuer := startBackfill(t, bin, nil, serve("0s")...)
	waitFor(t, dbURL, allRunsSucceeded)

	require.Equal(t, runs, queryInt(t, conn, `SELECT count(*) FROM job_runs`), "no run added or lost")
	require.Equal(t, len(killed), queryInt(t, conn, `SELECT count(*) FROM job_runs WHERE id = ANY($1::uuid[]) AND attempt = 2`, killed),
		"the killed runs were taken back and ran a second time")
	require.Zero(t, queryInt(t, conn, `SELECT count(*) FROM job_runs WHERE NOT id = ANY($1::uuid[]) AND attempt <> 1`, killed),
		"every other run ran once")
	var rescued []string
	for line := range strings.Lines(rescuer.stderr.String()) {
		if _, id, ok := strings.Cut(line, "took back run with expired lease"); ok {
			_, id, _ = strings.Cut(id, "job_run_id=")
			rescued = append(rescued, strings.TrimSpace(id))
		}
	}
	require.ElementsMatch(t, killed, rescued, "the second process took back the dead one's runs, and only those")
	requireBarsComplete(t, conn, cutoff, time.Now())
	requireWrittenOnce(t, conn)
}

// TestFaultTwoProcessesRunEachSliceOnce runs two serve processes on one database: between them
// every run is executed exactly once, and both take part.
func TestFaultTwoProcessesRunEachSliceOnce(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dbURL := pgtest.URL(t)
	conn := testConn(t, dbURL)
	var defs []faultDef
	for i := range 20 {
		defs = append(defs, faultDef{fmt.Sprintf("TWO%02d", i), market.M15, 90})
	}
	insertDefs(t, conn, defs)
	// Both processes plan on start. A planning pass queues the open slice (the newest, still
	// growing) again once it has been fetched, by design, so a second pass after the first
	// successes would make some runs legitimately run twice. Runs planned in this database are
	// held (due in a year) until both passes are done, however slowly a loaded machine starts
	// the processes; then they fall due at once, both processes claim, and nothing plans again
	// (--tick 10m, no change of the definitions).
	_, err := conn.Exec(t.Context(), `
CREATE FUNCTION hold_new_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.next_attempt_at := now() + interval '1 year';
  RETURN NEW;
END $$;
CREATE TRIGGER hold_new_runs BEFORE INSERT ON job_runs FOR EACH ROW EXECUTE FUNCTION hold_new_runs();`)
	require.NoError(t, err)
	cutoff := time.Now()
	args := []string{"serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--no-replicator", "--log-level", "warn",
		"--provider", "synthetic", "--synthetic-latency", "20ms", "--concurrency", "8", "--tick", "10m",
		// Small batches, so that the 20 runs of one slice are shared out between the two.
		"--max-batch", "2"}
	procs := []*serveProcess{startBackfill(t, bin, nil, args...), startBackfill(t, bin, nil, args...)}
	for _, p := range procs {
		p.waitMetric(t, 1, "backfill_orchestrator_ticks_total")
	}
	runs := queryInt(t, conn, `SELECT count(*) FROM job_runs`)
	require.Equal(t, runs, queryInt(t, conn, `SELECT count(*) FROM job_runs WHERE status = 'queued' AND attempt = 0`),
		"both processes planned before the first run fell due")
	require.GreaterOrEqual(t, runs, 20, "a run per slice of each definition")
	// Due now, and a wake-up that reaches both processes at the commit: they claim together.
	_, err = conn.Exec(t.Context(), `
WITH due AS (UPDATE job_runs SET next_attempt_at = now() RETURNING 1)
SELECT pg_notify($1, ''), (SELECT count(*) FROM due)`, replicator.NotifyChannel)
	require.NoError(t, err)

	waitFor(t, dbURL, allRunsSucceeded)
	require.Equal(t, runs, queryInt(t, conn, `SELECT count(*) FROM job_runs`), "no run added or lost")
	require.Zero(t, queryInt(t, conn, `SELECT count(*) FROM job_runs WHERE attempt <> 1`), "no run claimed twice")

	// Count the executions: each process counts the runs it claimed and finished.
	done := waitMetric(t, procs, float64(runs), "backfill_orchestrator_runs_completed_total")
	require.Equal(t, float64(runs), done, "every run executed exactly once across the two processes")
	require.Equal(t, float64(runs), sumMetric(t, procs, "backfill_orchestrator_runs_claimed_total"), "and claimed once")
	require.Equal(t, done, sumMetric(t, procs, "backfill_orchestrator_runs_completed_total", "outcome", "success"), "only successes")
	for i, p := range procs {
		n := p.metric(t, "backfill_orchestrator_runs_completed_total")
		t.Logf("process %d ran %v of the %d runs", i+1, n, runs)
		require.Positive(t, n, "both processes took part")
	}
	requireWrittenOnce(t, conn)
	requireBarsComplete(t, conn, cutoff, time.Now())
}

// TestFaultPostgresRestartMidBackfill stops and starts PostgreSQL while runs are fetching: the
// serve process lives on, reconnects, and the backfill completes with every bar once.
func TestFaultPostgresRestartMidBackfill(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	// A cluster of the test's own: the shared one serves the other tests.
	port, err := pgtest.FreePort()
	require.NoError(t, err)
	cfg := pglocal.Config{DataDir: pgtest.DataDir(t), Port: port, Ephemeral: true, BinDir: os.Getenv("BACKFILL_PG_BIN")}
	cluster, err := pglocal.Start(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cluster.Stop(ctx)
	})
	dbURL := cluster.URL("postgres")
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	require.NoError(t, err)
	setup, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	_, err = migrator.Migrate(t.Context(), setup)
	require.NoError(t, err)
	insertDefs(t, setup, []faultDef{{"RSTA", market.M15, 14}, {"RSTB", market.M15, 14}, {"RSTA", market.H1, 45}})
	require.NoError(t, setup.Close(t.Context()))

	cutoff := time.Now()
	p := startBackfill(t, bin, nil, "serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--no-replicator", "--log-level", "warn",
		"--provider", "synthetic", "--synthetic-latency", "1s", "--concurrency", "3", "--lease", "2s", "--tick", "10m",
		// A write cut by the restart is retried: soon, to keep the test short.
		"--retry-delay", "200ms")
	waitFor(t, dbURL, `SELECT count(*) >= 3 FROM job_runs WHERE status = 'running'`)

	stopCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, cluster.Stop(stopCtx), "fast shutdown: the server ends every session")
	cluster, err = pglocal.Start(t.Context(), cfg)
	require.NoError(t, err)

	waitFor(t, dbURL, allRunsSucceeded)
	code, body := getStatus(t, p.api+"/readyz")
	require.Equal(t, http.StatusOK, code, "the process lives on and reaches the database again: %s", body)
	require.Contains(t, p.stderr.String(), "listen connection lost", "the restart did hit the process")
	requireBarsComplete(t, testConn(t, dbURL), cutoff, time.Now())
}

// alpacaFake answers GET /v2/stocks/bars as Alpaca market data v2 does: the recorded 15-minute
// body, moved to the requested start and split into two pages (next_page_token, then null),
// unless the symbol's script says otherwise for this try of a slice:
//
//	RATE   429 with Retry-After: 1 on the first try, then bars
//	FLAKY  500, then 503 with an HTML body, then bars
//	SLOW   no answer on the first try (the fetch times out), then bars
//	BAD    422 with Alpaca's recorded error body, every time
//
// and any other symbol gets its bars at once.
type alpacaFake struct {
	bars    []map[string]any // the recorded bars
	badBody []byte           // the recorded 422 body
	stop    chan struct{}    // ends hanging answers

	mu       sync.Mutex
	tries    map[string]int // first-page requests by symbol and start
	requests map[string]int // requests by symbol
	refused  int            // requests without the keys or to another path
}

const alpacaNextToken = "RkFVTFR8MTVNaW58cGFnZTI=" // opaque, as Alpaca's are

func newAlpacaFake(t *testing.T) *alpacaFake {
	t.Helper()
	body, err := os.ReadFile("../../orchestrator/marketdata/testdata/alpaca/bars-multi-AMZN-15Min-reshaped-final.json")
	require.NoError(t, err)
	var recorded struct {
		Bars map[string][]map[string]any `json:"bars"`
	}
	require.NoError(t, json.Unmarshal(body, &recorded))
	f := &alpacaFake{bars: recorded.Bars["AMZN"], stop: make(chan struct{}), tries: map[string]int{}, requests: map[string]int{}}
	require.Len(t, f.bars, 5)
	f.badBody, err = os.ReadFile("../../orchestrator/marketdata/testdata/alpaca/error-422-invalid-timeframe.json")
	require.NoError(t, err)
	return f
}

func (f *alpacaFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	symbol := q.Get("symbols")
	f.mu.Lock()
	if r.URL.Path != "/v2/stocks/bars" || r.Header.Get("APCA-API-KEY-ID") != "fault-key-id" || r.Header.Get("APCA-API-SECRET-KEY") != "fault-secret" {
		f.refused++
		f.mu.Unlock()
		writeBody(w, http.StatusForbidden, "application/json", []byte(`{"message":"forbidden"}`))
		return
	}
	f.requests[symbol]++
	try := 0
	if q.Get("page_token") == "" {
		f.tries[symbol+"|"+q.Get("start")]++
		try = f.tries[symbol+"|"+q.Get("start")]
	}
	f.mu.Unlock()

	switch {
	case symbol == "RATE" && try == 1:
		w.Header().Set("Retry-After", "1")
		writeBody(w, http.StatusTooManyRequests, "application/json", []byte(`{"message":"too many requests."}`))
		return
	case symbol == "FLAKY" && try == 1:
		writeBody(w, http.StatusInternalServerError, "application/json", []byte(`{"message":"internal server error"}`))
		return
	case symbol == "FLAKY" && try == 2:
		writeBody(w, http.StatusServiceUnavailable, "text/html", []byte("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"))
		return
	case symbol == "SLOW" && try == 1:
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	case symbol == "BAD":
		writeBody(w, http.StatusUnprocessableEntity, "application/json", f.badBody)
		return
	}

	start, err := time.Parse(time.RFC3339, q.Get("start"))
	step := map[string]time.Duration{"15Min": 15 * time.Minute, "1Hour": time.Hour, "4Hour": 4 * time.Hour}[q.Get("timeframe")]
	if err != nil || step == 0 {
		writeBody(w, http.StatusBadRequest, "application/json", []byte(`{"code":40010001,"message":"invalid start or timeframe"}`))
		return
	}
	first, last, next := 0, 2, any(alpacaNextToken)
	if tok := q.Get("page_token"); tok != "" {
		if tok != alpacaNextToken {
			writeBody(w, http.StatusBadRequest, "application/json", []byte(`{"code":40010001,"message":"invalid page token"}`))
			return
		}
		first, last, next = 2, len(f.bars), nil
	}
	// Bars sit on the timeframe's grid, the first one after start: start has whole seconds,
	// the range asked for may not.
	aligned := start.Add(time.Second).Truncate(step)
	if aligned.Before(start.Add(time.Second)) {
		aligned = aligned.Add(step)
	}
	page := make([]map[string]any, 0, last-first)
	for i := first; i < last; i++ {
		b := maps.Clone(f.bars[i])
		b["t"] = aligned.Add(time.Duration(i) * step).Format(time.RFC3339)
		page = append(page, b)
	}
	out, _ := json.Marshal(map[string]any{"bars": map[string]any{symbol: page}, "next_page_token": next})
	writeBody(w, http.StatusOK, "application/json", out)
}

func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *alpacaFake) counts() (tries map[string]int, requests map[string]int, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.tries), maps.Clone(f.requests), f.refused
}

// faultRun is one job_runs row as the provider test reads it.
type faultRun struct {
	Symbol, Status, Code, Message string
	Attempt, Rows                 int
	From                          time.Time
}

func readRuns(t *testing.T, conn *pgx.Conn) []faultRun {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT symbol, status, coalesce(error_code, ''), coalesce(error_message, ''),
		attempt, rows_written, slice_from FROM job_runs ORDER BY symbol, slice_from`)
	require.NoError(t, err)
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (faultRun, error) {
		var r faultRun
		return r, row.Scan(&r.Symbol, &r.Status, &r.Code, &r.Message, &r.Attempt, &r.Rows, &r.From)
	})
	require.NoError(t, err)
	return runs
}

// TestFaultProviderErrors runs `backfill serve --provider alpaca` against a local server that
// speaks Alpaca's bars API and answers with 429, 5xx, no answer at all, and a permanent 422:
// the runs are retried as specified, visibly in job_runs and in /metrics.
func TestFaultProviderErrors(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	fake := newAlpacaFake(t)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(fake.stop) }) // before Close, which waits for hanging answers

	dbURL := pgtest.URL(t)
	conn := testConn(t, dbURL)
	symbols := []string{"OKAY", "RATE", "FLAKY", "SLOW", "BAD"}
	var defs []faultDef
	for _, s := range symbols {
		defs = append(defs, faultDef{s, market.M15, 1})
	}
	insertDefs(t, conn, defs)

	p := startBackfill(t, bin, []string{"APCA_API_DATA_URL=" + srv.URL, "APCA_API_KEY_ID=fault-key-id", "APCA_API_SECRET_KEY=fault-secret"},
		"serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--no-replicator", "--log-level", "warn",
		"--provider", "alpaca", "--concurrency", "5", "--tick", "10m",
		// One symbol a request: the fake scripts its answers per symbol.
		"--max-batch", "1",
		// 20 requests a second: the limiter still paces the two pages of a slice, and no fetch
		// waits long enough for its limiter waits to reach the timeout.
		"--provider-rate", "1200", "--retry-delay", "1s", "--fetch-timeout", "2s")

	// Watch job_runs until every run of an enabled definition is done, remembering each state
	// a run went through: the retries are visible while they wait.
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		runs := readRuns(t, conn)
		for _, r := range runs {
			seen[fmt.Sprintf("%s %s attempt=%d %s", r.Symbol, r.Status, r.Attempt, r.Code)] = true
		}
		if len(runs) > 0 && queryInt(t, conn, `SELECT count(*) FROM job_runs r JOIN job_definitions d ON d.id = r.job_def_id
			WHERE d.enabled AND r.status IN ('queued', 'running')`) == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "runs still pending after 30s: %v", runs)
		<-tick.C
	}
	t.Logf("states seen: %v", slices.Sorted(maps.Keys(seen)))
	require.True(t, seen["RATE queued attempt=0 http_429"], "a 429 queues the run again without using an attempt")
	require.True(t, seen["FLAKY queued attempt=1 http_500"], "a 500 is retried")
	require.True(t, seen["FLAKY queued attempt=2 http_503"], "and so is a 503")
	require.True(t, slices.ContainsFunc(slices.Collect(maps.Keys(seen)), func(s string) bool { return strings.HasPrefix(s, "SLOW queued attempt=1 ") }),
		"a fetch that timed out is retried")

	runs := readRuns(t, conn)
	n := map[string]int{}
	for _, r := range runs {
		n[r.Symbol]++
		switch r.Symbol {
		case "BAD":
			if r.Attempt == 0 {
				continue // a second slice of the definition, never claimed: it was disabled meanwhile
			}
			require.Equal(t, faultRun{Symbol: "BAD", Status: "failed", Code: "42210000", Message: r.Message, Attempt: 1, From: r.From}, r,
				"a permanent error fails the run at once")
			require.Contains(t, r.Message, "invalid timeframe", "Alpaca's message is kept")
		default:
			wantAttempt := map[string]int{"OKAY": 1, "RATE": 1, "FLAKY": 3, "SLOW": 2}[r.Symbol]
			require.Equal(t, faultRun{Symbol: r.Symbol, Status: "success", Attempt: wantAttempt, Rows: 5, From: r.From}, r)
		}
	}
	require.Len(t, n, len(symbols), "every definition planned")
	var enabled bool
	var reason string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT enabled, coalesce(disabled_reason, '') FROM job_definitions WHERE symbol = 'BAD'`).Scan(&enabled, &reason))
	require.False(t, enabled)
	require.True(t, strings.HasPrefix(reason, "permanent provider error: "), reason)
	require.Contains(t, reason, "invalid timeframe")
	badClaimed := queryInt(t, conn, `SELECT count(*) FROM job_runs WHERE symbol = 'BAD' AND attempt > 0`)
	require.Positive(t, badClaimed)
	succeeded := n["OKAY"] + n["RATE"] + n["FLAKY"] + n["SLOW"]
	require.Equal(t, 5*succeeded, queryInt(t, conn, `SELECT count(*) FROM ohlc_bars_v2 WHERE provider = 'alpaca'`), "both pages of every slice stored")

	tries, requests, refused := fake.counts()
	require.Zero(t, refused, "keys sent, path right")
	for key, n := range tries {
		symbol, _, _ := strings.Cut(key, "|")
		want := map[string]int{"OKAY": 1, "RATE": 2, "FLAKY": 3, "SLOW": 2, "BAD": 1}[symbol]
		require.Equal(t, want, n, "first-page tries of %s", key)
	}
	require.Equal(t, badClaimed, requests["BAD"], "a permanent error is not retried")
	require.Equal(t, 2*n["OKAY"], requests["OKAY"], "two pages")

	require.Equal(t, float64(succeeded), p.waitMetric(t, float64(succeeded), "backfill_orchestrator_runs_completed_total", "outcome", "success"))
	for _, c := range []struct {
		want   int
		name   string
		labels []string
	}{
		{n["RATE"], "backfill_orchestrator_runs_completed_total", []string{"outcome", "deferred"}},
		{2*n["FLAKY"] + n["SLOW"], "backfill_orchestrator_runs_completed_total", []string{"outcome", "retried"}},
		{badClaimed, "backfill_orchestrator_runs_completed_total", []string{"outcome", "disabled"}},
		{0, "backfill_orchestrator_runs_completed_total", []string{"outcome", "failed"}},
		{n["RATE"], "backfill_provider_errors_total", []string{"provider", "alpaca", "kind", "rate_limited"}},
		{badClaimed, "backfill_provider_errors_total", []string{"provider", "alpaca", "kind", "permanent"}},
	} {
		require.Equal(t, float64(c.want), p.metric(t, c.name, c.labels...), "%s%v", c.name, c.labels)
	}
	// The 500 and the 503 of each FLAKY slice; a fetch cut short by --fetch-timeout is counted
	// by the orchestrator as retried, but not (yet) as a provider error.
	retryable := p.metric(t, "backfill_provider_errors_total", "provider", "alpaca", "kind", "retryable")
	require.GreaterOrEqual(t, retryable, float64(2*n["FLAKY"]))
	require.LessOrEqual(t, retryable, float64(2*n["FLAKY"]+n["SLOW"]))
	require.Positive(t, p.metric(t, "backfill_provider_rate_limit_waits_total", "provider", "alpaca"), "the client-side limiter paced requests")
	require.Positive(t, p.metric(t, "backfill_provider_rate_limit_wait_seconds_total", "provider", "alpaca"))
}
