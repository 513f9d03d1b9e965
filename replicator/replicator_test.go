package replicator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Fixed users of the rule cases.
const (
	alice = "00000000-0000-4000-8000-00000000000a"
	bob   = "00000000-0000-4000-8000-00000000000b"
	carol = "00000000-0000-4000-8000-00000000000c"
)

func TestNoTriggerOnTracking(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	var triggers []string
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT coalesce(array_agg(tgname), '{}') FROM pg_trigger
WHERE tgrelid = 'public.user_symbol_tracking'::regclass AND NOT tgisinternal`).Scan(&triggers))
	require.Empty(t, triggers, "job definitions come from the replicator, not from a trigger")
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	ok := replicator.Config{DatabaseURL: "postgres://u@127.0.0.1:1/db"}
	for _, tc := range []struct {
		name string
		edit func(*replicator.Config)
		want string
	}{
		{"missing URL", func(c *replicator.Config) { c.DatabaseURL = "" }, "DatabaseURL is required"},
		{"slot with capitals", func(c *replicator.Config) { c.SlotName = "Backfill" }, "SlotName"},
		{"slot with a quote", func(c *replicator.Config) { c.SlotName = "x'; DROP" }, "SlotName"},
		{"slot too long", func(c *replicator.Config) { c.SlotName = strings.Repeat("a", 64) }, "SlotName"},
		{"publication with a dash", func(c *replicator.Config) { c.Publication = "my-pub" }, "Publication"},
		{"receive timeout below status interval", func(c *replicator.Config) {
			c.StatusInterval, c.ReceiveTimeout = 10*time.Second, 5*time.Second
		}, "ReceiveTimeout"},
		{"negative backoff", func(c *replicator.Config) { c.MaxBackoff = -time.Second }, "negative"},
		{"bad URL", func(c *replicator.Config) { c.DatabaseURL = "postgres://%zz" }, "parse DatabaseURL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := replicator.New(cfg)
			require.ErrorIs(t, err, replicator.ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
	r, err := replicator.New(ok)
	require.NoError(t, err, "defaults fill the rest")
	require.NoError(t, r.Stop(t.Context()), "Stop before Start is a no-op")
	_, err = r.Status(t.Context())
	require.ErrorIs(t, err, replicator.ErrNotStarted)

	reg := prometheus.NewRegistry()
	ok.Registerer = reg
	_, err = replicator.New(ok)
	require.NoError(t, err)
	_, err = replicator.New(ok)
	require.ErrorContains(t, err, "WrapRegistererWith", "a second replicator on the same registry is refused")
}

func TestStartFailsFast(t *testing.T) {
	t.Parallel()
	t.Run("unreachable database", func(t *testing.T) {
		t.Parallel()
		port, err := pgtest.FreePort()
		require.NoError(t, err)
		r, err := replicator.New(replicator.Config{DatabaseURL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=5", port)})
		require.NoError(t, err)
		began := time.Now()
		err = r.Start(t.Context())
		require.Error(t, err)
		require.Less(t, time.Since(began), 10*time.Second)
		require.NoError(t, r.Stop(t.Context()))
	})
	t.Run("missing publication", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		cfg := e.config(t)
		cfg.Publication = "nope"
		r, err := replicator.New(cfg)
		require.NoError(t, err)
		require.ErrorContains(t, r.Start(t.Context()), `publication "nope" does not exist`)
	})
	t.Run("wal_level replica", func(t *testing.T) {
		t.Parallel()
		pc := startPrivateCluster(t, map[string]string{"wal_level": "replica"})
		r, err := replicator.New(replicator.Config{DatabaseURL: pc.cluster.URL("postgres")})
		require.NoError(t, err)
		err = r.Start(t.Context())
		require.ErrorIs(t, err, replicator.ErrNotLogical)
		require.ErrorContains(t, err, `"replica"`)
	})
}

// step is one write of a rule case and the definitions of the case's tickers it must lead to.
type step struct {
	sql string
	// direct marks a write the replicator does not see (no tracking row changes): no waiting.
	direct bool
	want   map[string]string // "TICKER/tf" -> def.String(); absent keys must not exist
	check  func(t *testing.T, e *env, before, after map[string]def)
}

// TestRule runs the rule's cases through a real slot, one after another on one database and one
// replicator (each case has tickers of its own; the rule is per symbol).
func TestRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, fmt.Sprintf("INSERT INTO auth.users (id) VALUES ('%s'), ('%s'), ('%s')", alice, bob, carol))
	r := e.start(t, e.config(t))

	const (
		on  = "tracking enabled"
		off = "tracking disabled(no longer tracked)"
	)
	intraday := func(state string, p, w int) string { return fmt.Sprintf("%s p%d w%d fetch_intraday", state, p, w) }
	historical := func(state string, p, w int) string { return fmt.Sprintf("%s p%d w%d fetch_historical", state, p, w) }

	cases := []struct {
		name    string
		tickers []string
		steps   []step
	}{
		{"insert creates intraday definitions with default windows", []string{"AAA"}, []step{
			{sql: trackSQL(alice, "AAA", "watchlist", 300, "m15", "h1", "h4"), want: map[string]string{
				"AAA/m15": intraday(on, 300, 30), "AAA/h1": intraday(on, 300, 90), "AAA/h4": intraday(on, 300, 365)}},
		}},
		{"d1 and w1 create fetch_historical definitions", []string{"BBB"}, []step{
			{sql: trackSQL(alice, "BBB", "recent_search", 100, "d1", "w1"), want: map[string]string{
				"BBB/d1": historical(on, 100, 730), "BBB/w1": historical(on, 100, 730)}},
		}},
		{"priority is the highest tracker's and falls when trackers go", []string{"CCC"}, []step{
			{sql: trackSQL(alice, "CCC", "recent_search", 100, "h1"), want: map[string]string{"CCC/h1": intraday(on, 100, 90)}},
			{sql: trackSQL(bob, "CCC", "watchlist", 300, "h1", "h4"), want: map[string]string{
				"CCC/h1": intraday(on, 300, 90), "CCC/h4": intraday(on, 300, 365)}},
			{sql: trackSQL(carol, "CCC", "chart_view", 200, "h1"), want: map[string]string{
				"CCC/h1": intraday(on, 300, 90), "CCC/h4": intraday(on, 300, 365)}},
			{sql: untrackSQL(bob, "CCC", "watchlist"), want: map[string]string{
				"CCC/h1": intraday(on, 200, 90), "CCC/h4": intraday(off, 300, 365)}},
			{sql: untrackSQL(carol, "CCC", "chart_view"), want: map[string]string{
				"CCC/h1": intraday(on, 100, 90), "CCC/h4": intraday(off, 300, 365)}},
			{sql: untrackSQL(alice, "CCC", "recent_search"), want: map[string]string{
				"CCC/h1": intraday(off, 100, 90), "CCC/h4": intraday(off, 300, 365)}},
			{sql: trackSQL(alice, "CCC", "chart_view", 200, "h4"), want: map[string]string{
				"CCC/h1": intraday(off, 100, 90), "CCC/h4": intraday(on, 200, 365)}},
		}},
		{"updates raise and lower priority and drop and re-add timeframes", []string{"DDD"}, []step{
			{sql: trackSQL(alice, "DDD", "chart_view", 200, "m15", "h1", "h4"), want: map[string]string{
				"DDD/m15": intraday(on, 200, 30), "DDD/h1": intraday(on, 200, 90), "DDD/h4": intraday(on, 200, 365)}},
			{sql: "UPDATE user_symbol_tracking SET priority = 300 WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = 'DDD')",
				want: map[string]string{"DDD/m15": intraday(on, 300, 30), "DDD/h1": intraday(on, 300, 90), "DDD/h4": intraday(on, 300, 365)}},
			{sql: "UPDATE user_symbol_tracking SET priority = 150, timeframes = '{m15,h1}' WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = 'DDD')",
				want: map[string]string{"DDD/m15": intraday(on, 150, 30), "DDD/h1": intraday(on, 150, 90), "DDD/h4": intraday(off, 300, 365)}},
			{sql: "UPDATE user_symbol_tracking SET timeframes = '{m15,h1,h4,d1}' WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = 'DDD')",
				want: map[string]string{"DDD/m15": intraday(on, 150, 30), "DDD/h1": intraday(on, 150, 90), "DDD/h4": intraday(on, 150, 365),
					"DDD/d1": historical(on, 150, 730)}},
		}},
		{"a definition the provider refused for good stays disabled while tracked", []string{"PPP"}, []step{
			{sql: trackSQL(alice, "PPP", "recent_search", 100, "h1"), want: map[string]string{"PPP/h1": intraday(on, 100, 90)}},
			{sql: "UPDATE job_definitions SET enabled = false, disabled_reason = 'permanent provider error: unknown symbol' WHERE symbol = 'PPP'",
				direct: true, want: map[string]string{"PPP/h1": intraday("tracking disabled(permanent provider error: unknown symbol)", 100, 90)}},
			{sql: trackSQL(bob, "PPP", "watchlist", 300, "h1"),
				want: map[string]string{"PPP/h1": intraday("tracking disabled(permanent provider error: unknown symbol)", 300, 90)}},
			{sql: "UPDATE job_definitions SET enabled = true, disabled_reason = NULL WHERE symbol = 'PPP'", direct: true,
				want: map[string]string{"PPP/h1": intraday(on, 300, 90)}},
		}},
		{"a definition an operator disabled stays disabled while tracked", []string{"OPR"}, []step{
			{sql: trackSQL(alice, "OPR", "recent_search", 100, "h1"), want: map[string]string{"OPR/h1": intraday(on, 100, 90)}},
			{sql: "UPDATE job_definitions SET enabled = false, disabled_reason = 'disabled by operator' WHERE symbol = 'OPR'",
				direct: true, want: map[string]string{"OPR/h1": intraday("tracking disabled(disabled by operator)", 100, 90)}},
			{sql: trackSQL(bob, "OPR", "watchlist", 300, "h1"),
				want: map[string]string{"OPR/h1": intraday("tracking disabled(disabled by operator)", 300, 90)}},
		}},
		{"SQL-edited windows stick and new defaults apply to new definitions only", []string{"EEE", "EEF"}, []step{
			{sql: trackSQL(alice, "EEE", "chart_view", 200, "h1"), want: map[string]string{"EEE/h1": intraday(on, 200, 90)}},
			{sql: "UPDATE job_definitions SET window_days = 60 WHERE symbol = 'EEE' AND timeframe = 'h1'", direct: true,
				want: map[string]string{"EEE/h1": intraday(on, 200, 60)}},
			{sql: trackSQL(bob, "EEE", "watchlist", 300, "h1"), want: map[string]string{"EEE/h1": intraday(on, 300, 60)}},
			{sql: untrackSQL(bob, "EEE", "watchlist") + untrackSQL(alice, "EEE", "chart_view"), want: map[string]string{"EEE/h1": intraday(off, 300, 60)}},
			{sql: "UPDATE timeframe_settings SET default_window_days = 45 WHERE timeframe = 'h1'", direct: true,
				want: map[string]string{"EEE/h1": intraday(off, 300, 60)}},
			{sql: trackSQL(alice, "EEE", "watchlist", 300, "h1") + trackSQL(alice, "EEF", "watchlist", 300, "h1"),
				want: map[string]string{"EEE/h1": intraday(on, 300, 60), "EEF/h1": intraday(on, 300, 45)}},
			{sql: "UPDATE timeframe_settings SET default_window_days = 90 WHERE timeframe = 'h1'", direct: true,
				want: map[string]string{"EEE/h1": intraday(on, 300, 60), "EEF/h1": intraday(on, 300, 45)}},
		}},
		{"seed and manual definitions are untouched", []string{"GGG"}, []step{
			{sql: symbolSQL("GGG") + `
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin)
SELECT 'fetch_intraday', 'GGG', id, 'h1', 90, 150, true, 'seed' FROM symbols WHERE ticker = 'GGG';
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin, disabled_reason)
SELECT 'fetch_intraday', 'GGG', id, 'h4', 10, 50, false, 'manual', 'paused by ops' FROM symbols WHERE ticker = 'GGG';`,
				direct: true, want: map[string]string{
					"GGG/h1": "seed enabled p150 w90 fetch_intraday", "GGG/h4": "manual disabled(paused by ops) p50 w10 fetch_intraday"}},
			{sql: trackSQL(alice, "GGG", "watchlist", 300, "m15", "h1", "h4"), want: map[string]string{
				"GGG/m15": intraday(on, 300, 30),
				"GGG/h1":  "seed enabled p150 w90 fetch_intraday", "GGG/h4": "manual disabled(paused by ops) p50 w10 fetch_intraday"},
				check: sameRows("GGG/h1", "GGG/h4")},
			{sql: untrackSQL(alice, "GGG", "watchlist"), want: map[string]string{
				"GGG/m15": intraday(off, 300, 30),
				"GGG/h1":  "seed enabled p150 w90 fetch_intraday", "GGG/h4": "manual disabled(paused by ops) p50 w10 fetch_intraday"},
				check: sameRows("GGG/h1", "GGG/h4")},
		}},
		{"anonymous rows (NULL user) count like any other", []string{"HHH"}, []step{
			{sql: trackSQL("", "HHH", "chart_view", 200, "m15"), want: map[string]string{"HHH/m15": intraday(on, 200, 30)}},
			{sql: trackSQL("", "HHH", "watchlist", 300, "m15"), want: map[string]string{"HHH/m15": intraday(on, 300, 30)}},
			{sql: untrackSQL("", "HHH", "watchlist"), want: map[string]string{"HHH/m15": intraday(on, 200, 30)}},
			{sql: untrackSQL("", "HHH", "chart_view"), want: map[string]string{"HHH/m15": intraday(off, 200, 30)}},
		}},
		{"deleting a user from auth.users cascades and disables", []string{"III"}, []step{
			{sql: "INSERT INTO auth.users (id) VALUES ('00000000-0000-4000-8000-0000000000dd');" +
				trackSQL("00000000-0000-4000-8000-0000000000dd", "III", "watchlist", 300, "h1", "w1"),
				want: map[string]string{"III/h1": intraday(on, 300, 90), "III/w1": historical(on, 300, 730)}},
			{sql: "DELETE FROM auth.users WHERE id = '00000000-0000-4000-8000-0000000000dd'",
				want: map[string]string{"III/h1": intraday(off, 300, 90), "III/w1": historical(off, 300, 730)}},
		}},
		{"a row moved to another symbol re-derives both", []string{"JJJ", "KKK"}, []step{
			{sql: trackSQL(alice, "JJJ", "watchlist", 300, "h1") + symbolSQL("KKK"), want: map[string]string{"JJJ/h1": intraday(on, 300, 90)}},
			{sql: `UPDATE user_symbol_tracking SET symbol_id = (SELECT id FROM symbols WHERE ticker = 'KKK')
WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = 'JJJ')`,
				want: map[string]string{"JJJ/h1": intraday(off, 300, 90), "KKK/h1": intraday(on, 300, 90)}},
		}},
		{"setting origin to tracking hands a definition over", []string{"LLL"}, []step{
			{sql: symbolSQL("LLL") + `
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, origin)
SELECT 'fetch_intraday', 'LLL', id, 'h1', 10, 50, 'manual' FROM symbols WHERE ticker = 'LLL'`,
				direct: true, want: map[string]string{"LLL/h1": "manual enabled p50 w10 fetch_intraday"}},
			{sql: trackSQL(alice, "LLL", "chart_view", 200, "h1"), want: map[string]string{"LLL/h1": "manual enabled p50 w10 fetch_intraday"}},
			{sql: "UPDATE job_definitions SET origin = 'tracking' WHERE symbol = 'LLL'", direct: true,
				want: map[string]string{"LLL/h1": intraday(on, 50, 10)}},
			{sql: trackSQL(alice, "LLL", "watchlist", 300, "h1"), want: map[string]string{"LLL/h1": intraday(on, 300, 10)}},
		}},
		{"a change that changes nothing writes nothing", []string{"MMM"}, []step{
			{sql: trackSQL(alice, "MMM", "watchlist", 300, "m15", "h1"), want: map[string]string{
				"MMM/m15": intraday(on, 300, 30), "MMM/h1": intraday(on, 300, 90)}},
			{sql: "UPDATE user_symbol_tracking SET updated_at = now() WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = 'MMM')",
				want:  map[string]string{"MMM/m15": intraday(on, 300, 30), "MMM/h1": intraday(on, 300, 90)},
				check: sameRows("MMM/m15", "MMM/h1")},
			{sql: trackSQL(bob, "MMM", "recent_search", 100, "m15"), want: map[string]string{
				"MMM/m15": intraday(on, 300, 30), "MMM/h1": intraday(on, 300, 90)},
				check: sameRows("MMM/m15", "MMM/h1")},
		}},
		{"deleting a symbol takes its tracking and definitions with it", []string{"NNN"}, []step{
			{sql: trackSQL(alice, "NNN", "watchlist", 300, "h1"), want: map[string]string{"NNN/h1": intraday(on, 300, 90)}},
			{sql: "DELETE FROM symbols WHERE ticker = 'NNN'", want: map[string]string{}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i, st := range tc.steps {
				before := e.defs(t)
				if st.direct {
					e.exec(t, st.sql)
				} else {
					waitApplied(t, r, e.write(t, st.sql))
				}
				after := e.defs(t)
				got := map[string]string{}
				for k, d := range after {
					for _, tk := range tc.tickers {
						if strings.HasPrefix(k, tk+"/") {
							got[k] = d.String()
						}
					}
				}
				require.Equal(t, st.want, got, "step %d: %s", i+1, st.sql)
				if st.check != nil {
					st.check(t, e, before, after)
				}
			}
		})
	}
	e.requireRule(t)
	require.Zero(t, skippedTxns(t, r))
}

// sameRows checks that a step did not write the definitions at all (same row version).
func sameRows(keys ...string) func(t *testing.T, e *env, before, after map[string]def) {
	return func(t *testing.T, _ *env, before, after map[string]def) {
		t.Helper()
		for _, k := range keys {
			require.Equal(t, before[k].xmin, after[k].xmin, "%s was rewritten", k)
			require.Equal(t, before[k].updatedAt, after[k].updatedAt, "%s was rewritten", k)
		}
	}
}

func TestTruncateDisablesEveryTrackingDefinition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t, e.config(t))
	e.exec(t, symbolSQL("SEED")+`
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, origin)
SELECT 'fetch_intraday', 'SEED', id, 'h1', 90, 150, 'seed' FROM symbols WHERE ticker = 'SEED'`)
	waitApplied(t, r, e.write(t, trackSQL("", "AAA", "watchlist", 300, "m15", "h1")+
		trackSQL("", "BBB", "chart_view", 200, "d1")+trackSQL("", "SEED", "watchlist", 300, "h1", "h4")))
	e.requireRule(t)

	lsn := e.write(t, "TRUNCATE user_symbol_tracking")
	waitApplied(t, r, lsn)
	e.requireRule(t)
	defs := e.defs(t)
	require.Len(t, defs, 5)
	for k, d := range defs {
		if k == "SEED/h1" {
			require.Equal(t, "seed enabled p150 w90 fetch_intraday", d.String())
			continue
		}
		require.False(t, d.enabled, k)
	}
	require.Equal(t, 1.0, metric(t, r, "backfill_replicator_changes_applied_total", "operation", "truncate"))

	waitApplied(t, r, e.write(t, trackSQL("", "BBB", "chart_view", 200, "d1")))
	e.requireRule(t)
	require.True(t, e.defs(t)["BBB/d1"].enabled)
}

// TestLargeTransaction inserts 10,000 tracking rows in one transaction, then deletes them in
// another: the replicator applies them in parts of MaxPendingSymbols symbols (bounded memory)
// and records the transaction once.
func TestLargeTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t, e.config(t)) // MaxPendingSymbols: the default, 1000
	// 5,000 symbols, each tracked anonymously from the watchlist (m15, h1, h4) and the chart view
	// (h1 for odd ones, d1 for even ones): 10,000 rows, 17,500 definitions.
	lsn := e.write(t, `
INSERT INTO symbols (ticker) SELECT 'L' || i FROM generate_series(1, 5000) AS i;
INSERT INTO user_symbol_tracking (user_id, symbol_id, source, priority, timeframes)
SELECT NULL, id, 'watchlist', 300, '{m15,h1,h4}' FROM symbols WHERE ticker LIKE 'L%';
INSERT INTO user_symbol_tracking (user_id, symbol_id, source, priority, timeframes)
SELECT NULL, id, 'chart_view', 200, CASE WHEN substr(ticker, 2)::int % 2 = 0 THEN '{d1}'::text[] ELSE '{h1}' END
FROM symbols WHERE ticker LIKE 'L%';`)
	waitApplied(t, r, lsn)
	var rows, defs, historical, p300 int
	require.NoError(t, e.pool.QueryRow(t.Context(), `
SELECT (SELECT count(*) FROM user_symbol_tracking),
       count(*), count(*) FILTER (WHERE job_type = 'fetch_historical'), count(*) FILTER (WHERE priority = 300)
FROM job_definitions WHERE enabled AND origin = 'tracking'`).Scan(&rows, &defs, &historical, &p300))
	require.Equal(t, 10_000, rows)
	require.Equal(t, 17_500, defs)
	require.Equal(t, 2_500, historical)
	require.Equal(t, 15_000, p300, "m15, h1 and h4 at the watchlist's 300; d1 at 200")
	e.requireRule(t)
	require.Equal(t, 1.0, appliedTxns(t, r), "one upstream transaction, recorded once")
	require.Equal(t, 10_000.0, metric(t, r, "backfill_replicator_changes_applied_total", "operation", "insert"))
	require.GreaterOrEqual(t, metric(t, r, "backfill_replicator_applies_total", "kind", "partial"), 9.0,
		"10,000 symbol touches in parts of at most 1,000")

	waitApplied(t, r, e.write(t, "DELETE FROM user_symbol_tracking"))
	require.NoError(t, e.pool.QueryRow(t.Context(),
		"SELECT count(*) FROM job_definitions WHERE NOT enabled AND disabled_reason = 'no longer tracked'").Scan(&defs))
	require.Equal(t, 17_500, defs)
	e.requireRule(t)
	require.Equal(t, 2.0, appliedTxns(t, r))
}

func TestNotifiesInTheApplyTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := listen(t, e.url)
	r := e.start(t, e.config(t))
	rec := l.wait(t, func(n note) bool { return n.Kind == "reconcile" })
	require.Equal(t, e.slot, rec.Slot)
	require.NotNil(t, rec.LSN, "a new slot's reconcile records its consistent point")

	lsn := e.write(t, trackSQL("", "AAA", "watchlist", 300, "m15", "h1", "h4"))
	n := l.wait(t, func(n note) bool { return n.Kind == "stream" })
	require.Equal(t, 3, n.Inserted)
	require.NotNil(t, n.LSN)
	got, err := pglogrepl.ParseLSN(*n.LSN)
	require.NoError(t, err)
	require.Greater(t, got, lsn)
	waitApplied(t, r, lsn)
	st, err := r.Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, got, st.AppliedLSN)
}

func TestStatusAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t, e.config(t))
	waitLeader(t, r)
	lsn := e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1"))
	waitApplied(t, r, lsn)

	st, err := r.Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, e.slot, st.SlotName)
	require.True(t, st.Active)
	require.True(t, st.SlotExists)
	require.Positive(t, st.ActivePID)
	require.Contains(t, []string{"reserved", "extended"}, st.WALStatus)
	require.Greater(t, st.AppliedLSN, lsn)
	require.NotZero(t, st.ConfirmedFlushLSN)
	require.GreaterOrEqual(t, st.LagBytes, int64(0))
	require.WithinDuration(t, time.Now(), st.LastAppliedAt, time.Minute)
	eventually(t, "the slot to confirm the applied transaction", func() (bool, error) {
		st, err := r.Status(t.Context())
		return st.ConfirmedFlushLSN >= st.AppliedLSN, err
	})

	require.Equal(t, 1.0, metric(t, r, "backfill_replicator_leader"))
	require.Equal(t, 1.0, metric(t, r, "backfill_replicator_changes_received_total", "operation", "insert"))
	require.Equal(t, 1.0, metric(t, r, "backfill_replicator_changes_applied_total", "operation", "insert"))
	require.Equal(t, 1.0, metric(t, r, "backfill_replicator_reconciles_total", "reason", "created"))
	require.Equal(t, 1.0, metric(t, r, "backfill_replicator_apply_latency_seconds"), "one observation")
	require.Positive(t, metric(t, r, "backfill_replicator_last_applied_timestamp_seconds"))
	require.Zero(t, metric(t, r, "backfill_replicator_reconnects_total"))
	problems, err := testutil.GatherAndLint(r.reg)
	require.NoError(t, err)
	require.Empty(t, problems)
	for _, name := range []string{"backfill_replicator_slot_lag_bytes", "backfill_replicator_applies_total"} {
		n, err := testutil.GatherAndCount(r.reg, name)
		require.NoError(t, err)
		require.Positive(t, n, name)
	}
}

// TestIdleSlotPinsNoWAL: while the tracking table is quiet and the rest of the database is not,
// the slot's confirmed position follows the server's WAL.
func TestIdleSlotPinsNoWAL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t, e.config(t))
	waitApplied(t, r, e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1")))
	// symbols is not published: WAL the replicator never sees as changes.
	e.exec(t, symbolSQL("X1", "X2", "X3"))
	var s string
	require.NoError(t, e.pool.QueryRow(t.Context(), "SELECT pg_current_wal_lsn()::text").Scan(&s))
	target, err := pglogrepl.ParseLSN(s)
	require.NoError(t, err)
	eventually(t, "the idle slot to advance past "+s, func() (bool, error) {
		st, err := r.Status(t.Context())
		return st.ConfirmedFlushLSN >= target, err
	})
}

func TestStopIsIdempotentAndBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.build(t, e.config(t))
	require.NoError(t, r.Start(t.Context()))
	require.Error(t, r.Start(t.Context()), "Start may be called once")
	waitLeader(t, r)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Stop(ctx))
	require.NoError(t, r.Stop(ctx))
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	_, err := r.Status(ctx)
	require.ErrorIs(t, err, replicator.ErrNotStarted)
	require.ErrorIs(t, r.WaitApplied(ctx, pglogrepl.LSN(1<<62)), replicator.ErrNotStarted)
	require.Zero(t, metric(t, r, "backfill_replicator_leader"))
	// goleak in TestMain (pgtest.Main) checks that nothing is left running.
}

func TestStopsWithItsContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.build(t, e.config(t))
	ctx, cancel := context.WithCancel(t.Context())
	require.NoError(t, r.Start(ctx))
	waitLeader(t, r)
	cancel()
	select {
	case <-r.Done():
	case <-time.After(waitLimit):
		t.Fatal("replicator still running after its context ended")
	}
	require.NoError(t, r.Stop(t.Context()), "a controlled stop is not an error")
}

// TestReEnableIsANewRequest: a definition re-enabled by tracking starts its backfill milestones
// over, so the orchestrator's latency metrics measure from the new request.
func TestReEnableIsANewRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t, e.config(t))
	waitApplied(t, r, e.write(t, trackSQL("", "RRR", "watchlist", 300, "h1")))
	var first time.Time
	require.NoError(t, e.pool.QueryRow(t.Context(), "SELECT requested_at FROM job_definitions WHERE symbol = 'RRR'").Scan(&first))
	e.exec(t, "UPDATE job_definitions SET first_bars_at = now(), covered_at = now() WHERE symbol = 'RRR'")

	waitApplied(t, r, e.write(t, untrackSQL("", "RRR", "watchlist")))
	waitApplied(t, r, e.write(t, trackSQL("", "RRR", "chart_view", 200, "h1")))
	var again time.Time
	var firstBars, covered *time.Time
	var enabled bool
	require.NoError(t, e.pool.QueryRow(t.Context(), "SELECT enabled, requested_at, first_bars_at, covered_at FROM job_definitions WHERE symbol = 'RRR'").
		Scan(&enabled, &again, &firstBars, &covered))
	require.True(t, enabled)
	require.True(t, again.After(first), "requested again")
	require.Nil(t, firstBars)
	require.Nil(t, covered)
}
