package orchestrator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// gridProvider is the synthetic provider (extended hours, as Alpaca's feed) that records every
// request it gets.
type gridProvider struct {
	*marketdata.Synthetic
	mu   sync.Mutex
	reqs []marketdata.Request
}

func (g *gridProvider) Bars(ctx context.Context, req marketdata.Request) ([]marketdata.Bar, error) {
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	g.mu.Unlock()
	return g.Synthetic.Bars(ctx, req)
}

func (g *gridProvider) BarsMulti(ctx context.Context, req marketdata.MultiRequest) (marketdata.MultiResult, error) {
	g.mu.Lock()
	for _, sym := range req.Symbols {
		g.reqs = append(g.reqs, marketdata.Request{Symbol: sym, Timeframe: req.Timeframe, From: req.From, To: req.To, Purpose: req.Purpose})
	}
	g.mu.Unlock()
	return g.Synthetic.BarsMulti(ctx, req)
}

func (g *gridProvider) requests() []marketdata.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]marketdata.Request(nil), g.reqs...)
}

// TestClosedMarketIsNotRequested: a run whose range holds only closed-market time (a weekend
// after the early close of the Friday after Thanksgiving) is recorded as fetched without a
// request, and no request reaches past the claim, so never into the future.
func TestClosedMarketIsNotRequested(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	// Sunday 2026-11-29, 30 s before 12:00Z, so a window of whole days starts just before a
	// quarter hour. Friday's extended session ended at 17:00 ET (22:00Z).
	start := ts("2026-11-29T11:59:30Z")
	clock := runningClock(start)
	synth, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Hours: market.ExtendedHours, Now: clock})
	require.NoError(t, err)
	p := &gridProvider{Synthetic: synth}
	weekend := addDef(t, pool, "WKND", market.M15, 100, 1) // Saturday 12:00Z to now: closed all along
	week := addDef(t, pool, "WEEK", market.M15, 100, 4)    // from Wednesday: three sessions
	events := make(chan done, 100)
	o := startOrchestrator(t, Config{Pool: pool, Provider: p, Tick: time.Hour, Now: clock}, events, nil)
	got := waitIdle(t, pool, events, o)
	for _, e := range got {
		require.Equal(t, Succeeded, e.outcome, e.run.Symbol)
	}
	end := clock()
	for _, r := range p.requests() {
		require.NotEqual(t, "WKND", r.Symbol, "a closed-market range is not requested: %+v", r)
		require.False(t, r.To.After(end), "a request ends in the future: %+v", r)
	}
	require.NotEmpty(t, p.requests(), "the week's sessions are requested")
	require.Positive(t, testutil.ToFloat64(o.metrics.skipped.WithLabelValues("m15")))

	// Both are covered up to their claim: the skipped one as much as the fetched one.
	for _, d := range []def{weekend, week} {
		c := coverageOf(t, pool, d)
		require.NotNil(t, c.To, d.Symbol)
		require.True(t, c.To.After(start) && !c.To.After(end), "%s covered to %s", d.Symbol, c.To)
	}
	require.Zero(t, countBars(t, pool, weekend))
	// Only the fetch that held a session's last bar asks the completeness check to look again.
	var marked []string
	rows, err := pool.Query(t.Context(), `SELECT s.ticker FROM coverage_dirty m JOIN symbols s ON s.id = m.symbol_id ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var ticker string
		require.NoError(t, rows.Scan(&ticker))
		marked = append(marked, ticker)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"WEEK"}, marked)
	// Wednesday from 12:00Z (07:00 ET) to 20:00 ET, no bar on Thanksgiving, the early close's
	// extended session 04:00–17:00 ET: 13 + 13 hours of quarter hours.
	require.Equal(t, (13+13)*4, countBars(t, pool, week))
}

// scaledClock runs from start at scale times the wall clock's pace: a session in seconds.
func scaledClock(start time.Time, scale float64) func() time.Time {
	began := time.Now()
	return func() time.Time { return start.Add(time.Duration(float64(time.Since(began)) * scale)) }
}

// Open slices are refreshed right after each bar of their timeframe closed (plus Settle), once
// per bar and definition, not on a tick; at night nothing is refreshed at all.
func TestRefreshFollowsTheCalendar(t *testing.T) {
	t.Parallel()
	ny := market.NYSE().Location()
	for _, tc := range []struct {
		name      string
		start     time.Time // New York
		wantAfter []time.Time
	}{
		// A Wednesday session: the m15 bars ending 10:15 and 10:30 (the h1 bar ending 11:00 is
		// beyond the run) each bring one refresh, 2 s after the boundary.
		{"session", time.Date(2026, 12, 2, 10, 9, 0, 0, ny), []time.Time{
			time.Date(2026, 12, 2, 10, 15, 2, 0, ny), time.Date(2026, 12, 2, 10, 30, 2, 0, ny)}},
		// The same night after the 20:00 close: no bar closes until 04:15.
		{"night", time.Date(2026, 12, 2, 20, 21, 0, 0, ny), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.DB(t)
			clock := scaledClock(tc.start.UTC(), 120) // 2 minutes a second
			synth, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Hours: market.ExtendedHours, Now: clock})
			require.NoError(t, err)
			p := &gridProvider{Synthetic: synth}
			addDef(t, pool, "REFA", market.M15, 300, 2)
			addDef(t, pool, "REFB", market.M15, 300, 2)
			events := make(chan done, 1000)
			o := startOrchestrator(t, Config{Pool: pool, Provider: p, Tick: time.Hour, Poll: 20 * time.Millisecond, Lease: time.Hour,
				Settle: 2 * time.Second, Now: clock}, events, nil)
			// Let the clock run 33 minutes: past two m15 closes, short of a third.
			end := tc.start.UTC().Add(33 * time.Minute)
			for clock().Before(end) {
				select {
				case <-events:
				case <-time.After(50 * time.Millisecond):
				}
			}
			require.NoError(t, o.Stop(t.Context()))
			var refreshes []marketdata.Request
			for _, r := range p.requests() {
				require.False(t, r.To.After(clock()), "no request reaches into the future: %+v", r)
				if r.Purpose == marketdata.PurposeRefresh {
					refreshes = append(refreshes, r)
				}
			}
			require.Len(t, refreshes, 2*len(tc.wantAfter), "one refresh per closed bar and definition: %+v", refreshes)
			for i, r := range refreshes {
				after := tc.wantAfter[i/2]
				require.False(t, r.To.Before(after), "refresh %d asked up to %s, before the bar closed and settled (%s)", i, r.To.In(ny), after)
				// Within 5 minutes on this clock: 2.5 s of a loaded machine's time.
				require.True(t, r.To.Before(after.Add(5*time.Minute)), "refresh %d came late: up to %s", i, r.To.In(ny))
			}
		})
	}
}
