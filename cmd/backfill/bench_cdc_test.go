package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBenchCDCSmoke(t *testing.T) {
	t.Parallel()
	// A short run on its own throw-away cluster proves the scenario works end to end (replicator,
	// sustained step, trigger on scratch databases, cleanup); the figures are for people, not
	// assertions. No row may be missing, though: that is the replicator's promise.
	env := map[string]string{"BACKFILL_PG_BIN": os.Getenv("BACKFILL_PG_BIN")}
	r := runCmd(t.Context(), env, "bench", "cdc", "--rates", "50", "--duration", "1s",
		"--max-duration", "1s", "--max-writers", "2", "--writers", "2", "--wait", "20s", "--log-level", "warn")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	t.Log("\n" + r.stdout)
	// rate, rows, achieved/s, p50, p90, p99, max, commit p50, p99, max, missing = 0.
	require.Regexp(t, `(?m)^\s*50/s\s+[1-9]\d*\s+\d+\.\d(\s+\d+\.\d\dms){7}\s+0\s*$`, r.stdout)
	// writers, rows, written/s, applied/s, behind, lag, caught up in, catch-up/s, p50, p99, max,
	// commit p99, missing = 0.
	require.Regexp(t, `(?m)^\s*2\s+[1-9]\d*\s+\d+\.\d\s+\d+\.\d\s+\d+\s+\S+B\s+\d+\.\d\dms\s+\d+\.\d(\s+\d+\.\d\dms){4}\s+0\s*$`, r.stdout)
	for _, design := range []string{"none", "trigger", "replicator"} {
		require.Regexp(t, `(?m)^\s*`+design+`\s+.+\s+[1-9]\d*\s+\d+\.\d(\s+\d+\.\d\dms){4}\s*$`, r.stdout)
	}
	require.Contains(t, r.stdout, "the trigger adds")
	require.NotContains(t, r.stderr, "level=ERROR")
}

func TestBenchCDCBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"zero rate", nil, []string{"--rates", "0"}, "--rates"},
		{"not a rate", nil, []string{"--rates", "100,fast"}, "--rates"},
		{"empty rates", nil, []string{"--rates", ""}, "--rates"},
		{"negative duration", nil, []string{"--duration", "-1s"}, "--duration > 0"},
		{"no writers", nil, []string{"--writers", "0"}, "--writers"},
		{"bad env value", map[string]string{"BACKFILL_BENCH_MAX_DURATION": "long"}, nil, `BACKFILL_BENCH_MAX_DURATION="long"`},
		{"stray argument", nil, []string{"extra"}, `unexpected argument "extra"`},
		{"unknown flag", nil, []string{"--frobnicate"}, "frobnicate"},
		{"bad log level", nil, []string{"--log-level", "loud"}, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t.Context(), tc.env, append([]string{"bench", "cdc"}, tc.args...)...)
			require.Equal(t, 2, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
			require.NotContains(t, r.stdout, "tracking row ->", "nothing measured")
		})
	}

	r := runCmd(t.Context(), nil, "bench", "cdc", "--help")
	require.Equal(t, 0, r.code)
	require.True(t, strings.HasPrefix(r.stdout, "Usage: backfill bench cdc"), r.stdout)
	flagsHelp := r.stdout[strings.Index(r.stdout, "Flags:"):]
	require.Equal(t, strings.Count(flagsHelp, "\n  -"), strings.Count(flagsHelp, "(env BACKFILL_"), "every flag names its variable")
}
