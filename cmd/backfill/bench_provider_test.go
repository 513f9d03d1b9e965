package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBenchProviderSmall(t *testing.T) {
	t.Parallel()
	// A tiny run of every part on its own throw-away cluster proves the scenario end to end
	// (fakes, replicas sharing the budget, the simulated session, the generated history,
	// cleanup); the figures are for people, except that the budget must never be exceeded and
	// every definition must get bars. The session runs at 1200× to stay within half a minute.
	env := map[string]string{"BACKFILL_PG_BIN": os.Getenv("BACKFILL_PG_BIN")}
	r := runCmd(t.Context(), env, "bench", "provider", "--symbols", "5", "--replicas", "2", "--rate", "600",
		"--fresh-symbols", "5", "--scale", "1200", "--db-symbols", "50", "--log-level", "warn")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	t.Log("\n" + r.stdout)
	for _, heading := range []string{
		"machine: ", "settings: --symbols 5 --rate 600 --replicas 2",
		"Part 1 — budget", "The original's design, computed, not run", "Goals",
		"Part 2 — freshness", "session 09:30:00–16:00:00 ET: ",
		"Part 3 — database cost", "(a) EnqueueAll, nothing to plan (3)", "(d) Refresh at an m15 close",
		"claim latency", "steady state: one session hour",
	} {
		require.Contains(t, r.stdout, heading)
	}
	// N, defs = 15, bars, floor req, floor/tf, requests, refresh, req/floor, req/floor-tf, 429 = 0,
	// zero-bar, closed-only,
	// floor time, wall time, time/floor, no bars = 0.
	require.Regexp(t, `(?m)^\s*5\s+15\s+[1-9]\d*\s+[1-9]\d*\s+[1-9]\d*\s+[1-9]\d*\s+\d+\s+\d+\.\d\d\s+\d+\.\d\d\s+0\s+\d+\s+\d+\s+\d+\.\ds\s+\d+\.\ds\s+\d+\.\d\d\s+0\s*$`, r.stdout)
	// The goals' row: 0 × 429 and no definition without bars.
	require.Regexp(t, `(?m)^5\s+\S+ (yes|no)\s+\S+ (yes|no)\s+0 yes\s+0 yes\s*$`, r.stdout)
	// The session's lags, sampled every simulated minute 09:30–16:00; their values
	// depend on the machine's speed at 1200×, so they are not asserted.
	require.Regexp(t, `(?m)^m15\s+\d+\s+\d+s\s+\d+s\s+\d+s`, r.stdout)
	require.Regexp(t, `(?m)^h1\s+\d+\s+\d+s\s+\d+s\s+\d+s`, r.stdout)
	require.NotContains(t, r.stdout, "warning:")
	require.NotContains(t, r.stderr, "level=ERROR")
}
