package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

// startServe runs `backfill serve` in-process on a migrated test database until the test ends,
// with extra flags after the test's own.
func startServe(t *testing.T, extra ...string) (apiURL, dbURL string, stop func() int) {
	t.Helper()
	dbURL = pgtest.URL(t)
	ctx, cancel := context.WithCancel(t.Context())
	out := newLineWaiter(`api: (http://\S+)`)
	done := make(chan int, 1)
	var stderr lockedBuffer
	go func() {
		// Slot names are cluster-wide and the test databases share a cluster: one slot per test.
		slot := fmt.Sprintf("serve_test_%d", slotSeq.Add(1))
		args := append([]string{"serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--replication-slot", slot}, extra...)
		done <- run(ctx, args, func(string) string { return "" }, out, &stderr)
	}()
	select {
	case m := <-out.match:
		apiURL = strings.TrimPrefix(m, "api: ")
	case code := <-done:
		cancel()
		t.Fatalf("serve exited with %d: %s", code, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return apiURL, dbURL, stop
}

var slotSeq atomic.Int64

// waitFor polls the database until query returns true, for at most 30 s: how a test waits for
// the replicator, which works asynchronously.
func waitFor(t *testing.T, dbURL, query string, args ...any) {
	t.Helper()
	waitForWithin(t, 30*time.Second, dbURL, query, args...)
}

// waitForLong is waitFor for work paced by a provider's rate limit: at most 3 minutes.
func waitForLong(t *testing.T, dbURL, query string, args ...any) {
	t.Helper()
	waitForWithin(t, 3*time.Minute, dbURL, query, args...)
}

func waitForWithin(t *testing.T, limit time.Duration, dbURL, query string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		require.NoError(t, conn.QueryRow(t.Context(), query, args...).Scan(&ok))
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still false after %s: %s", limit, query)
		}
		<-tick.C
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeTokenAndSync(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	apiURL, dbURL, stop := startServe(t)

	code, body := getStatus(t, apiURL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	tok := runCmd(ctx, nil, "token", "--role", "authenticated", "--database-url", dbURL)
	require.Equal(t, 0, tok.code, tok.stderr)
	token := strings.TrimSpace(tok.stdout)
	require.Equal(t, 2, strings.Count(token, "."), "a JWT")

	r := runCmd(ctx, nil, "sync", "AAPL", "msft", "--url", apiURL, "--access-token", token, "--timeframes", "h1,d1")
	require.Equal(t, 0, r.code, r.stderr)
	require.JSONEq(t, `{"success":true,"symbols_tracked":2,"symbols_requested":2,"timeframes":2,"jobs_updated":4,"priority":300,"source":"watchlist"}`, r.stdout)

	// The replicator running inside serve turns the tracking rows into job definitions.
	waitFor(t, dbURL, `SELECT count(*) = 4 FROM job_definitions
		WHERE origin = 'tracking' AND enabled AND priority = 300 AND symbol IN ('AAPL', 'MSFT') AND timeframe IN ('h1', 'd1')`)

	// Anonymous (the default key), then untrack it again.
	r = runCmd(ctx, map[string]string{"BACKFILL_URL": apiURL}, "sync", "--source", "chart_view", "NVDA")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCmd(ctx, map[string]string{"BACKFILL_URL": apiURL}, "sync", "NVDA", "--source", "chart_view", "--delete")
	require.Equal(t, 0, r.code, r.stderr)
	var untrack map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &untrack))
	require.EqualValues(t, 1, untrack["symbols_untracked"])

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var rows int
	var users []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*), array_agg(DISTINCT coalesce(user_id::text, 'anon')) FROM user_symbol_tracking").Scan(&rows, &users))
	require.Equal(t, 2, rows)
	require.Len(t, users, 1)
	require.NotEqual(t, "anon", users[0])

	// Errors reach the command line as one line with the server's message.
	r = runCmd(ctx, nil, "sync", "AAPL", "--url", apiURL, "--source", "favourites")
	requireOneLineError(t, r, "400 Invalid source. Must be: watchlist, recent_search, or chart_view")
	r = runCmd(ctx, nil, "sync", "--url", apiURL)
	require.Equal(t, 2, r.code)
	r = runCmd(ctx, nil, "token", "--role", "admin")
	require.Equal(t, 2, r.code)

	require.Equal(t, 0, stop(), "a controlled stop is not an error")
	_, err = http.Get(apiURL + "/healthz")
	require.Error(t, err, "the listener is closed after shutdown")
}

func TestServeBadInput(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := freePort(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no database", []string{"serve"}, 2, "--database-url is required"},
		{"unreachable database", []string{"serve", "--database-url", fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/postgres", port), "--listen", "127.0.0.1:0", "--connect-timeout", "2s"}, 1,
			fmt.Sprintf("connect to database 127.0.0.1:%d", port)},
		{"port in use", []string{"serve", "--database-url", "postgresql://127.0.0.1/x", "--listen", ln.Addr().String()}, 1, "listen on " + ln.Addr().String()},
		{"public secret for a hosted project", []string{"serve", "--database-url", pgtest.URL(t), "--listen", "127.0.0.1:0",
			"--supabase-url", "https://abc.supabase.co", "--jwt-secret", "super-secret-jwt-token-with-at-least-32-characters-long"}, 2,
			"the public local-development jwt secret cannot protect https://abc.supabase.co"},
		{"no watchers", []string{"serve", "--database-url", pgtest.URL(t), "--listen", "127.0.0.1:0", "--max-watchers", "0"}, 2,
			"--max-watchers must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t.Context(), nil, tc.args...)
			require.Equal(t, tc.code, r.code, r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}
}

func TestBenchSyncSmoke(t *testing.T) {
	t.Parallel()
	// A short run against a real server proves the scenario works end to end; the figures
	// themselves are for people, not assertions.
	apiURL, _, _ := startServe(t)
	r := runCmd(t.Context(), nil, "bench", "sync", "--url", apiURL, "--duration", "300ms", "--clients", "2", "--path", "both")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^\s+function\s+[1-9]\d*\s+\d+\s+\S+ms\s+\S+ms\s+\S+ms\s+\S+ms\s+0\s*$`, r.stdout)
	require.Regexp(t, `(?m)^\s+connect\s+[1-9]\d*\s+\d+\s+\S+ms\s+\S+ms\s+\S+ms\s+\S+ms\s+0\s*$`, r.stdout)

	r = runCmd(t.Context(), nil, "bench", "sync", "--path", "smoke-signals")
	require.Equal(t, 2, r.code)
	r = runCmd(t.Context(), nil, "bench", "nope")
	require.Equal(t, 2, r.code)
}
