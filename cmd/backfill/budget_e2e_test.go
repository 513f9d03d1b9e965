package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/orchestrator/marketdata/alpacafake"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// TestTwoReplicasShareTheProviderBudget: 200 symbols × m15/h1/h4 synced to the watchlist at
// once, fetched by two `backfill serve --provider alpaca` processes from a local imitation of
// Alpaca that enforces the free plan (200 requests a minute, 429 + Retry-After beyond it):
// every definition gets its bars and its whole window, no response is a 429 (one budget in the
// database for both), no request covers only closed-market time, and the requests stay near
// the floor of one per 10,000 bars.
func TestTwoReplicasShareTheProviderBudget(t *testing.T) {
	t.Parallel()
	fake, err := alpacafake.New(alpacafake.Config{Rate: 200})
	require.NoError(t, err)
	fakeURL, err := fake.Start()
	require.NoError(t, err)
	t.Cleanup(fake.Close)

	bin := buildBinary(t)
	dbURL := pgtest.URL(t)
	conn := testConn(t, dbURL)
	env := []string{"APCA_API_DATA_URL=" + fakeURL, "APCA_API_KEY_ID=fake-key-id", "APCA_API_SECRET_KEY=fake-secret"}
	slot := fmt.Sprintf("budget_e2e_%d", freePort(t))
	var procs []*serveProcess
	for range 2 {
		procs = append(procs, startBackfill(t, bin, env, "serve", "--database-url", dbURL, "--listen", "127.0.0.1:0",
			"--replication-slot", slot, "--log-level", "warn", "--provider", "alpaca", "--provider-rate", "200"))
	}

	// 200 symbols in two requests of the most one request may name.
	var symbols []string
	for i := range 200 {
		symbols = append(symbols, fmt.Sprintf("%q", "B"+string(rune('A'+i/26%26))+string(rune('A'+i%26))))
	}
	for part := range 2 {
		body := fmt.Sprintf(`{"symbols":[%s],"source":"watchlist","timeframes":["m15","h1","h4"]}`, strings.Join(symbols[part*100:part*100+100], ","))
		req, err := http.NewRequest(http.MethodPost, procs[part].api+"/functions/v1/sync-user-symbols", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+server.LocalAnonKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	waitForLong(t, dbURL, `SELECT count(*) = 600 AND bool_and(covered_at IS NOT NULL) FROM job_definitions WHERE origin = 'tracking'`)

	st := fake.Stats()
	bars := queryInt(t, conn, `SELECT count(*) FROM ohlc_bars_v2`)
	floor := (bars + 9999) / 10000
	t.Logf("fake: %+v; bars %d, floor %d requests, %.2f × floor", st, bars, floor, float64(st.Accepted)/float64(floor))
	require.Zero(t, queryInt(t, conn, `SELECT count(*) FROM job_definitions WHERE origin = 'tracking' AND first_bars_at IS NULL`),
		"every definition got its first bars")
	require.Zero(t, st.RateLimited, "no 429: the two processes share one budget")
	require.LessOrEqual(t, st.MaxInWindow, 200, "no minute held more than the plan")
	require.Zero(t, st.ClosedOnly, "no request asked for closed-market time only")
	require.LessOrEqual(t, float64(st.Accepted), 1.2*float64(floor), "multi-symbol requests near the floor of one per 10,000 bars")
	for _, p := range procs {
		require.Positive(t, p.metric(t, "backfill_provider_budget_requests_total"), "both processes fetched")
	}
}
