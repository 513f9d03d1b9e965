package main

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

// Every provider with a plan gets a shared budget its validation accepts, Massive's 5 a minute
// included (paced one under it: no room for the 95 % pace plus a burst); synthetic has none.
func TestSharedBudgetFitsEveryPlan(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	for _, tc := range []struct {
		provider string
		rate     float64
		want     bool
	}{
		{"alpaca", 0, true}, {"massive", 0, true}, {"alpaca", 10000, true}, {"massive", 2, true}, {"synthetic", 0, false},
	} {
		l, err := sharedBudget(t.Context(), orchConfig{provider: tc.provider, providerRate: tc.rate, providerPace: 0.95}, pool, nil, slog.New(slog.DiscardHandler))
		require.NoError(t, err, "%s at %g", tc.provider, tc.rate)
		require.Equal(t, tc.want, l != nil, tc.provider)
	}
	_, err := sharedBudget(t.Context(), orchConfig{provider: "massive", providerRate: 1, providerPace: 0.95}, pool, nil, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, errUsage, "one request a minute leaves no room for pacing")
	var rate, burst float64
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT rate_per_second * 60, burst FROM provider_budget WHERE provider = 'massive'`).Scan(&rate, &burst))
	require.InDelta(t, 1, rate, 1e-9, "the last process's plan: 2 a minute, paced at 1")
	require.Equal(t, 1.0, burst)
}
