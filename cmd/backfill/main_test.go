package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// result is what one in-process run of the binary produced.
type result struct {
	code           int
	stdout, stderr string
}

func runCmd(ctx context.Context, env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// requireOneLineError checks the shape of every failure: exit 1, one line on stderr naming the
// problem.
func requireOneLineError(t *testing.T, r result, want string) {
	t.Helper()
	require.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	require.Contains(t, r.stderr, want)
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := pgtest.FreePort()
	require.NoError(t, err)
	return port
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	r := runCmd(t.Context(), nil, "version")
	require.Equal(t, 0, r.code)
	require.Regexp(t, `^backfill \S+ \(revision \S+, go\S+\)\n$`, r.stdout)

	r = runCmd(t.Context(), nil, "--help")
	require.Equal(t, 0, r.code)
	for _, c := range commands() {
		require.Contains(t, r.stdout, c.name)
		h := runCmd(t.Context(), nil, c.name, "--help")
		require.Equal(t, 0, h.code, c.name)
		require.Contains(t, h.stdout, "Usage: backfill "+c.name)
		// Every flag names its environment variable (bench lists scenarios, each with its own flags).
		if i := strings.Index(h.stdout, "Flags:"); i >= 0 {
			flagsHelp := h.stdout[i:]
			require.Equal(t, strings.Count(flagsHelp, "\n  -"), strings.Count(flagsHelp, "(env BACKFILL_"), c.name)
		} else {
			require.Equal(t, "bench", c.name, "only bench has no flags of its own")
		}
	}

	r = runCmd(t.Context(), nil, "frobnicate")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `unknown command "frobnicate"`)
}

func TestMigrateBadInput(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no url", nil, []string{"migrate"}, 2, "--database-url is required"},
		{"unparsable url", nil, []string{"migrate", "--database-url", "postgresql://x:y@host:notaport/db"}, 2, "--database-url"},
		{"unreachable", nil, []string{"migrate", "--database-url", fmt.Sprintf("postgresql://postgres:postgres@127.0.0.1:%d/postgres", port)},
			1, fmt.Sprintf("connect to database 127.0.0.1:%d", port)},
		{"bad env value", map[string]string{"BACKFILL_CONNECT_TIMEOUT": "soon"}, []string{"migrate", "--database-url", "postgresql://127.0.0.1/x"},
			2, `BACKFILL_CONNECT_TIMEOUT="soon" is not a duration`},
		{"stray argument", nil, []string{"migrate", "--database-url", "postgresql://127.0.0.1/x", "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t.Context(), tc.env, tc.args...)
			require.Equal(t, tc.code, r.code, r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			require.Contains(t, r.stderr, tc.want)
			require.NotContains(t, r.stderr, "postgres:postgres@", "no password in messages")
		})
	}
}

func TestMigrateConcurrentProcessesBothSucceed(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	all, err := supabase.Migrations()
	require.NoError(t, err)

	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Go(func() { results[i] = runCmd(t.Context(), nil, "migrate", "--database-url", url) })
	}
	wg.Wait()
	appliedRe := regexp.MustCompile(`(\d+) migration\(s\) applied`)
	total := 0
	for _, r := range results {
		require.Equal(t, 0, r.code, r.stderr)
		m := appliedRe.FindStringSubmatch(r.stdout)
		require.NotNil(t, m, r.stdout)
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	require.Equal(t, len(all), total, "each migration applied once")

	// Env var instead of the flag; seed twice; dry run reports nothing pending.
	env := map[string]string{"BACKFILL_DATABASE_URL": url}
	for range 2 {
		r := runCmd(t.Context(), env, "migrate", "--seed")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "0 migration(s) applied")
		require.Contains(t, r.stdout, "seed applied")
	}
	r := runCmd(t.Context(), env, "migrate", "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "0 migration(s) pending\n", r.stdout)

	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var symbols int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM symbols").Scan(&symbols))
	require.Equal(t, 20, symbols)
}

// lineWaiter is an io.Writer that reports when a line matching a pattern has been written.
type lineWaiter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	re    *regexp.Regexp
	match chan string
}

func newLineWaiter(pattern string) *lineWaiter {
	return &lineWaiter{re: regexp.MustCompile(pattern), match: make(chan string, 1)}
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := w.re.FindString(w.buf.String()); m != "" {
		select {
		case w.match <- m:
		default:
		}
	}
	return len(p), nil
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startDev runs `backfill dev` in-process until the test ends and returns once it is ready.
func startDev(t *testing.T, args ...string) (stdout *lineWaiter, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout = newLineWaiter(`ready in \S+`)
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"dev"}, args...), func(string) string { return "" }, stdout, &stderr)
	}()
	select {
	case <-stdout.match:
	case code := <-done:
		cancel()
		t.Fatalf("dev exited with %d before ready: %s", code, stderr.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("dev not ready after 60s: %s", stderr.String())
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stop
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestDevColdThenWarm(t *testing.T) {
	t.Parallel()
	dir := pgtest.DataDir(t)
	dbPort, apiPort := freePort(t), freePort(t)
	args := []string{"--data-dir", dir, "--db-port", strconv.Itoa(dbPort), "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort)}
	dbURL := fmt.Sprintf("postgresql://postgres:postgres@127.0.0.1:%d/postgres", dbPort)

	for _, phase := range []string{"cold", "warm"} {
		out, stop := startDev(t, args...)
		require.Contains(t, out.String(), "database: "+dbURL, phase)

		code, body := getStatus(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", apiPort))
		require.Equal(t, http.StatusOK, code, body)
		require.JSONEq(t, `{"status":"ready","checks":{"database":"ok"}}`, body)
		code, _ = getStatus(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", apiPort))
		require.Equal(t, http.StatusOK, code)

		conn, err := pgx.Connect(t.Context(), dbURL)
		require.NoError(t, err)
		var walLevel string
		var symbols, seeded int
		require.NoError(t, conn.QueryRow(t.Context(), "SHOW wal_level").Scan(&walLevel))
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM symbols WHERE ticker <> 'ZZZZ'), (SELECT count(*) FROM job_definitions WHERE origin = 'seed')").Scan(&symbols, &seeded))
		require.NoError(t, conn.Close(t.Context()))
		require.Equal(t, "logical", walLevel)
		require.Equal(t, 20, symbols, phase)
		require.Equal(t, 60, seeded, phase)

		if phase == "cold" {
			// The whole path in dev: the function path records interest, the replicator derives
			// the job definitions.
			req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/functions/v1/sync-user-symbols", apiPort),
				strings.NewReader(`{"symbols":["ZZZZ"],"source":"chart_view","timeframes":["m15","d1"]}`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+server.LocalAnonKey)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			waitFor(t, dbURL, `SELECT count(*) = 2 FROM job_definitions WHERE symbol = 'ZZZZ' AND enabled AND priority = 200
				AND ((timeframe = 'm15' AND job_type = 'fetch_intraday') OR (timeframe = 'd1' AND job_type = 'fetch_historical'))`)
			// ...and the orchestrator (synthetic provider in dev) backfills both windows.
			waitFor(t, dbURL, `SELECT count(DISTINCT b.timeframe) = 2 FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id
				WHERE s.ticker = 'ZZZZ' AND b.provider = 'synthetic'`)
			waitFor(t, dbURL, `SELECT bool_and(coverage_days > 20) AND count(*) = 2 FROM get_symbol_timeframe_coverage('ZZZZ')
				WHERE timeframe IN ('m15', 'd1')`)
		}
		require.Equal(t, 0, stop(), phase)
		t.Logf("%s start: %s", phase, out.re.FindString(out.String()))
	}
	_, err := os.Stat(filepath.Join(dir, "pgdata", "PG_VERSION"))
	require.NoError(t, err, "the cluster stays in the data folder")
}

func TestDevRefusesDataDirOfAnotherUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a folder to another user")
	}
	dir := pgtest.DataDir(t)
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, 65534, 65534)) // nobody
	r := runCmd(t.Context(), nil, "dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--db-port", strconv.Itoa(freePort(t)))
	requireOneLineError(t, r, "data folder "+dir+" is owned by")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written into it")
}

func TestDevBadInput(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	busy := ln.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name string
		args func(dir string) []string
		want string
	}{
		{"api port in use", func(dir string) []string {
			return []string{"--data-dir", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", busy), "--db-port", strconv.Itoa(freePort(t))}
		}, fmt.Sprintf("listen on 127.0.0.1:%d", busy)},
		{"database port in use", func(dir string) []string {
			return []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--db-port", strconv.Itoa(busy)}
		}, fmt.Sprintf("database port %d on 127.0.0.1 is already in use", busy)},
		{"missing binaries", func(dir string) []string {
			return []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--db-port", strconv.Itoa(freePort(t)), "--pg-bin", "/nonexistent/bin"}
		}, "not found in /nonexistent/bin: install them (Debian/Ubuntu: apt-get install postgresql)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := pgtest.DataDir(t)
			r := runCmd(t.Context(), nil, append([]string{"dev"}, tc.args(dir)...)...)
			requireOneLineError(t, r, tc.want)
			_, statErr := os.Stat(filepath.Join(dir, "pgdata"))
			require.ErrorIs(t, statErr, os.ErrNotExist, "no cluster left behind")
		})
	}
}
