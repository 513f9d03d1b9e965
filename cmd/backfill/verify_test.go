package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/replicator"
)

// backfilledSymbol defines an m15 backfill of 10 days for symbol on the database at dbURL,
// wakes the orchestrator and waits until its window is covered. It returns the date (New York)
// of an ended session inside the window that is not the newest: the one a test empties.
func backfilledSymbol(t *testing.T, dbURL, symbol string) (conn *pgx.Conn, session market.Session) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(t.Context()) })
	_, err = conn.Exec(t.Context(), `
WITH s AS (INSERT INTO symbols (ticker) VALUES ($1) RETURNING id)
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority) SELECT 'fetch_intraday', $1, id, 'm15', 10, 300 FROM s`, symbol)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `SELECT pg_notify($1, '')`, replicator.NotifyChannel)
	require.NoError(t, err)
	waitFor(t, dbURL, `SELECT covered_at IS NOT NULL FROM job_definitions WHERE symbol = $1`, symbol)

	var now time.Time
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT now()`).Scan(&now))
	var ended []market.Session
	for _, s := range market.NYSE().Sessions(now.AddDate(0, 0, -9), now) {
		if !s.Close.After(now) {
			ended = append(ended, s)
		}
	}
	require.GreaterOrEqual(t, len(ended), 2, "10 days hold at least two ended sessions")
	return conn, ended[len(ended)-2]
}

func deleteSession(t *testing.T, conn *pgx.Conn, symbol string, s market.Session) {
	t.Helper()
	tag, err := conn.Exec(t.Context(), `
DELETE FROM ohlc_bars_v2 b USING symbols s
WHERE s.id = b.symbol_id AND s.ticker = $1 AND b.timeframe = 'm15' AND b.ts >= $2 AND b.ts < $3`, symbol, s.Open, s.Close)
	require.NoError(t, err)
	require.Positive(t, tag.RowsAffected())
}

// TestVerifyNamesTheHoleAndRepairsIt: `backfill verify SYMBOL` exits 0 on a complete backfill; after
// one session's m15 bars are deleted with SQL it names that session and exits 1; --repair queues
// its fetch, and once that ran verify exits 0 again. The server's own periodic check is slowed
// down (--check-interval 1h) so that verify is what finds the hole here.
func TestVerifyNamesTheHoleAndRepairsIt(t *testing.T) {
	t.Parallel()
	apiURL, dbURL, _ := startServe(t, "--provider", "synthetic", "--check-interval", "1h")
	conn, session := backfilledSymbol(t, dbURL, "VRFY")

	r := runCmd(t.Context(), nil, "verify", "VRFY", "--url", apiURL)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	m := regexp.MustCompile(`(?m)^VRFY\s+m15\s+sessions expected\s+(\d+)\s+fetched\s+(\d+)\s+complete\s+(\d+) \(100\.0 %\)$`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	require.Equal(t, m[1], m[2])
	require.Equal(t, m[1], m[3])
	require.Contains(t, r.stdout, "1 definitions, 0 holes (provider synthetic")

	deleteSession(t, conn, "VRFY", session)
	r = runCmd(t.Context(), nil, "verify", "VRFY", "--timeframe", "m15", "--url", apiURL)
	require.Equal(t, 1, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf("  hole %s missing 0/26 bars  open\n", session.Day()))
	require.Contains(t, r.stderr, "1 sessions lack their bars")
	// Nothing was queued without --repair.
	var repairs int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM job_runs WHERE triggered_by = 'repair'`).Scan(&repairs))
	require.Zero(t, repairs)

	r = runCmd(t.Context(), nil, "verify", "VRFY", "--repair", "--url", apiURL)
	require.Equal(t, 1, r.code, "the hole is still there when the repair is queued: stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "queued 1 repair runs")
	require.Contains(t, r.stdout, fmt.Sprintf("  hole %s missing 0/26 bars  repairing (repairs 1)\n", session.Day()))
	waitFor(t, dbURL, `SELECT count(*) = 1 FROM job_runs WHERE triggered_by = 'repair' AND status = 'success'`)
	waitFor(t, dbURL, `SELECT count(*) = 26 FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id
		WHERE s.ticker = 'VRFY' AND b.ts >= $1 AND b.ts < $2`, session.Open, session.Close)

	r = runCmd(t.Context(), nil, "verify", "--url", apiURL)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "1 definitions, 0 holes")
}

// TestHoleHealsWithoutAnOperator: with the server's periodic check every second, a deleted
// session is found (the found counter rises), re-fetched and healed on its own, and verify then
// exits 0.
func TestHoleHealsWithoutAnOperator(t *testing.T) {
	t.Parallel()
	apiURL, dbURL, _ := startServe(t, "--provider", "synthetic", "--check-interval", "1s")
	conn, session := backfilledSymbol(t, dbURL, "HEAL")
	deleteSession(t, conn, "HEAL", session)
	waitFor(t, dbURL, `SELECT count(*) = 1 FROM job_runs WHERE triggered_by = 'repair' AND status = 'success'`)
	waitFor(t, dbURL, `SELECT NOT EXISTS (SELECT 1 FROM coverage_holes) AND count(*) = 26 FROM ohlc_bars_v2 b
		JOIN symbols s ON s.id = b.symbol_id WHERE s.ticker = 'HEAL' AND b.ts >= $1 AND b.ts < $2`, session.Open, session.Close)
	metric := func(name string) float64 {
		resp, err := http.Get(apiURL + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
		require.NotNil(t, m, name)
		v, err := strconv.ParseFloat(string(m[1]), 64)
		require.NoError(t, err)
		return v
	}
	require.Equal(t, 1.0, metric(`backfill_coverage_holes_found_total{kind="missing",timeframe="m15"}`))
	require.Equal(t, 1.0, metric(`backfill_coverage_holes_healed_total{timeframe="m15"}`))
	require.Equal(t, 1.0, metric(`backfill_coverage_repairs_queued_total`))
	r := runCmd(t.Context(), nil, "verify", "HEAL", "--url", apiURL)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
}

// TestVerifyBadInput: bad flags exit 2; an unknown symbol and a server without an orchestrator are
// errors that say why (exit 1), and nothing is written.
func TestVerifyBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--timeframe", "m5"}, `--timeframe "m5"`},
		{[]string{"--url", "localhost:1"}, "must start with http://"},
		{[]string{"--timeout", "0s"}, "--timeout must be positive"},
	} {
		r := runCmd(t.Context(), nil, append([]string{"verify"}, tc.args...)...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		require.Contains(t, r.stderr, tc.want)
	}
	apiURL, _, _ := startServe(t) // --provider none
	r := runCmd(t.Context(), nil, "verify", "--url", apiURL)
	require.Equal(t, 1, r.code)
	requireOneLineError(t, r, "runs no orchestrator")

	apiURL, dbURL, _ := startServe(t, "--provider", "synthetic", "--check-interval", "1h")
	r = runCmd(t.Context(), nil, "verify", "NOPE", "--url", apiURL)
	require.Equal(t, 1, r.code)
	requireOneLineError(t, r, "unknown symbol(s): NOPE")
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer conn.Close(t.Context())
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM coverage_completeness) + (SELECT count(*) FROM job_runs)`).Scan(&n))
	require.Zero(t, n)
}
