package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBenchBackfillSmoke(t *testing.T) {
	t.Parallel()
	// A short run on its own throw-away cluster proves the scenario end to end (template,
	// orchestrator, coverage, figures, cleanup); the figures are for people, not assertions. Every
	// run must succeed and every bar be stored once, though.
	env := map[string]string{"BACKFILL_PG_BIN": os.Getenv("BACKFILL_PG_BIN")}
	r := runCmd(t.Context(), env, "bench", "backfill", "--latencies", "0s", "--concurrency", "5",
		"--tickers", "2", "--timeout", "1m", "--log-level", "warn")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	t.Log("\n" + r.stdout)
	// latency, conc, defs = 6, runs, failed = 0, makespan, bound, bars, bars/s, writer bars/s, original, speed-up.
	require.Regexp(t, `(?m)^\s*0s\s+5\s+6\s+[1-9]\d*\s+0\s+\d+\.\d{3}s\s+0\.000s\s+[1-9]\d*\s+\d+\s+\d+\s+\d+ min\s+\d+×\s*$`, r.stdout)
	// latency, conc, first, all busy, def p50, def p99, run p50, run p99.
	require.Regexp(t, `(?m)^\s*0s\s+5(\s+\d+\.\d\dms){6}\s*$`, r.stdout)
	require.Contains(t, r.stdout, "its own 2 h intraday slices")
	require.Contains(t, r.stdout, "tracking committed", "through tracking and the replicator by default")
	// latency, conc, samples = 20 (the default), p50, p99, max.
	require.Regexp(t, `(?m)^\s*0s\s+5\s+20(\s+\d+\.\d\dms){3}\s*$`, r.stdout, "idle pickups timed")
	require.NotContains(t, r.stdout, "warning:")
	require.NotContains(t, r.stderr, "level=ERROR")

	// The orchestrator alone, the definitions inserted directly.
	r = runCmd(t.Context(), env, "bench", "backfill", "--via", "definitions", "--latencies", "0s", "--concurrency", "2",
		"--tickers", "1", "--timeout", "1m", "--log-level", "warn")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "the seed's definitions committed")
	require.Regexp(t, `(?m)^\s*0s\s+2\s+3\s+[1-9]\d*\s+0\s+\d+\.\d{3}s`, r.stdout)
}

func TestBenchBackfillBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"negative latency", nil, []string{"--latencies", "-1s"}, "--latencies"},
		{"not a latency", nil, []string{"--latencies", "0s,fast"}, "--latencies"},
		{"zero concurrency", nil, []string{"--concurrency", "0"}, "--concurrency"},
		{"not a concurrency", nil, []string{"--concurrency", "5,many"}, "--concurrency"},
		{"too many tickers", nil, []string{"--tickers", "21"}, "--tickers"},
		{"no tickers", nil, []string{"--tickers", "0"}, "--tickers"},
		{"zero timeout", nil, []string{"--timeout", "0s"}, "--timeout"},
		{"unknown way", nil, []string{"--via", "carrier-pigeon"}, "--via"},
		{"negative pickups", nil, []string{"--pickups", "-1"}, "--pickups"},
		{"bad env value", map[string]string{"BACKFILL_BENCH_TICKERS": "all"}, nil, `BACKFILL_BENCH_TICKERS="all"`},
		{"stray argument", nil, []string{"extra"}, `unexpected argument "extra"`},
		{"unknown flag", nil, []string{"--frobnicate"}, "frobnicate"},
		{"bad log level", nil, []string{"--log-level", "loud"}, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t.Context(), tc.env, append([]string{"bench", "backfill"}, tc.args...)...)
			require.Equal(t, 2, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
			require.NotContains(t, r.stdout, "Backfill: makespan", "nothing measured")
		})
	}

	r := runCmd(t.Context(), nil, "bench", "backfill", "--help")
	require.Equal(t, 0, r.code)
	require.True(t, strings.HasPrefix(r.stdout, "Usage: backfill bench backfill"), r.stdout)
	flagsHelp := r.stdout[strings.Index(r.stdout, "Flags:"):]
	require.Equal(t, strings.Count(flagsHelp, "\n  -"), strings.Count(flagsHelp, "(env BACKFILL_"), "every flag names its variable")

	r = runCmd(t.Context(), nil, "bench", "frobnicate")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "backfill")
}
