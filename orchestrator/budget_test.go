package orchestrator

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/orchestrator/marketdata/alpacafake"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// A symbol Alpaca refuses inside a multi-symbol request fails alone: its definition is disabled
// with the provider's reason, its batch-mates are fetched (one request with every symbol, one
// without the refused one) and covered.
func TestRejectedSymbolFailsAlone(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	fake, err := alpacafake.New(alpacafake.Config{Reject: func(s string) bool { return s == "BADX" }})
	require.NoError(t, err)
	url, err := fake.Start()
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	alpaca, err := marketdata.NewAlpaca(marketdata.AlpacaConfig{BaseURL: url, KeyID: "fake-key-id", SecretKey: "fake-secret", RequestsPerMinute: 6000})
	require.NoError(t, err)

	good := []string{"GOODA", "GOODB", "GOODC", "GOODD"}
	for _, s := range append([]string{"BADX"}, good...) {
		addDef(t, pool, s, market.H1, 300, 10)
	}
	events := make(chan done, 100)
	// In the middle of an h1 slice, so the five windows are one slice, one batch, whatever the date.
	clock := runningClock(midSlice(SliceSizesFor(alpaca.PageLimit())[market.H1]))
	o := startOrchestrator(t, Config{Pool: pool, Provider: alpaca, Concurrency: 1, Tick: time.Hour, Now: clock}, events, nil)
	got := waitIdle(t, pool, events, o)

	outcomes := map[string]Outcome{}
	for _, d := range got {
		outcomes[d.run.Symbol] = d.outcome
	}
	require.Equal(t, Disabled, outcomes["BADX"], "refused: failed for good, its definition disabled")
	var reason string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT disabled_reason FROM job_definitions WHERE symbol = 'BADX'`).Scan(&reason))
	require.Contains(t, reason, "invalid symbol: BADX")
	for _, s := range good {
		require.Equal(t, Succeeded, outcomes[s], s)
		var covered bool
		var bars int
		require.NoError(t, pool.QueryRow(t.Context(), `
SELECT d.covered_at IS NOT NULL, (SELECT count(*) FROM ohlc_bars_v2 b WHERE b.symbol_id = d.symbol_id)
FROM job_definitions d WHERE d.symbol = $1`, s).Scan(&covered, &bars))
		require.True(t, covered, "%s covered", s)
		require.Positive(t, bars, "%s has bars", s)
	}
	st := fake.Stats()
	require.EqualValues(t, 1, st.Rejected, "one request named the refused symbol")
	require.EqualValues(t, 1, st.Accepted, "one request for the rest of the batch")
}

// refreshFlood answers at a fixed pace, one call at a time: the provider budget as the scarce
// resource. It counts the calls by purpose.
type refreshFlood struct {
	*fakeProvider
	pace     time.Duration
	refresh  atomic.Int64
	backfill atomic.Int64
}

func (f *refreshFlood) Bars(ctx context.Context, req marketdata.Request) ([]marketdata.Bar, error) {
	if req.Purpose == marketdata.PurposeRefresh {
		f.refresh.Add(1)
	} else {
		f.backfill.Add(1)
	}
	t := time.NewTimer(f.pace)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	return f.fakeProvider.Bars(ctx, req)
}

// The starvation rule (package doc, "Claim order"): a run that fetches a range for the first
// time is claimed before every refresh, whatever the priorities, so a stream of watchlist
// refreshes that alone fills the provider's budget does not keep a search symbol's first bars
// waiting: they wait only for the calls already in flight (at most Concurrency), never for the
// refreshes queued before them.
func TestWatchlistRefreshesDoNotStarveFirstBars(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	p := &refreshFlood{fakeProvider: &fakeProvider{}, pace: 20 * time.Millisecond}
	for i := range 30 {
		addDef(t, pool, "WL"+string(rune('A'+i)), market.H1, 300, 2)
	}
	events := make(chan done, 10000)
	// No grid: every open slice is stale at every tick, and one symbol per request: 30
	// refreshes every 50 ms against one call per 20 ms is three times what the budget serves.
	o := startOrchestrator(t, Config{Pool: pool, Provider: p, Concurrency: 1, MaxBatch: 1, Tick: 50 * time.Millisecond}, events, nil)
	// The flood is on: refreshes are being served, and the queue never empties.
	deadline := time.After(30 * time.Second)
	for p.refresh.Load() < 60 {
		select {
		case <-events:
		case <-deadline:
			t.Fatal("the watchlist refreshes never started")
		}
	}
	var queued int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM job_runs WHERE status = 'queued' AND triggered_by = 'refresh'`).Scan(&queued))
	require.Positive(t, queued, "refreshes wait in the queue: the budget is full")

	search := addDef(t, pool, "SRCH", market.H1, 100, 2)
	var first done
	var refreshesBetween int
	var queuedAt time.Time
	for first.run.ID == "" {
		select {
		case d := <-events:
			switch {
			case d.run.JobDefID == search.ID:
				first = d
			case !queuedAt.IsZero() && d.run.Purpose == marketdata.PurposeRefresh && d.run.Claimed.After(queuedAt):
				refreshesBetween++
			}
			if queuedAt.IsZero() {
				var at *time.Time
				require.NoError(t, pool.QueryRow(t.Context(), `SELECT min(created_at) FROM job_runs WHERE job_def_id = $1`, search.ID).Scan(&at))
				if at != nil {
					queuedAt = *at
				}
			}
		case <-deadline:
			t.Fatalf("the search symbol's first bars never came (%d refreshes served meanwhile)", p.refresh.Load())
		}
	}
	require.Equal(t, Succeeded, first.outcome)
	require.Equal(t, marketdata.PurposeBackfill, first.run.Purpose)
	require.LessOrEqual(t, refreshesBetween, 1, "claimed after at most the one call in flight (Concurrency 1)")
	require.NoError(t, o.Stop(t.Context()))
}
