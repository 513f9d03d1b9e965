package replicator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pglocal"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 30 * time.Second

var slotSeq atomic.Int64

// uniqueSlot returns a slot name for the test: slot names are cluster-wide, databases are not.
func uniqueSlot(t *testing.T) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", slotSeq.Add(1))
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 60 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// env is a migrated database with a pool for the test's own writes and a slot name.
type env struct {
	url  string
	pool *pgxpool.Pool
	slot string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := pgtest.URL(t)
	return envOn(t, url)
}

func envOn(t *testing.T, url string) *env {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &env{url: url, pool: pool, slot: uniqueSlot(t)}
}

// testLogger writes the replicator's lines into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// config is a replicator config for tests: quick status updates, short backoff.
func (e *env) config(t *testing.T) replicator.Config {
	return replicator.Config{
		DatabaseURL:    e.url,
		SlotName:       e.slot,
		StatusInterval: 200 * time.Millisecond,
		ReceiveTimeout: 5 * time.Second,
		MaxBackoff:     300 * time.Millisecond,
		Logger:         testLogger(t),
	}
}

type running struct {
	*replicator.Replicator
	reg *prometheus.Registry
}

// start starts a replicator with cfg (a fresh registry unless cfg has one) and waits until it
// streams: from then on the slot exists and every write reaches the replicator as a change
// (before, the reconcile may be what catches it). It stops it when the test ends, waiting
// until the slot is free so the database can be dropped.
func (e *env) start(t *testing.T, cfg replicator.Config, hooks ...func(*replicator.Replicator)) running {
	t.Helper()
	r := e.startStandby(t, cfg, hooks...)
	waitLeader(t, r)
	return r
}

// startStandby starts a replicator without waiting for it to lead.
func (e *env) startStandby(t *testing.T, cfg replicator.Config, hooks ...func(*replicator.Replicator)) running {
	t.Helper()
	r := e.build(t, cfg, hooks...)
	require.NoError(t, r.Start(t.Context()))
	return r
}

func (e *env) build(t *testing.T, cfg replicator.Config, hooks ...func(*replicator.Replicator)) running {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Registerer == nil {
		cfg.Registerer = reg
	}
	r, err := replicator.New(cfg)
	require.NoError(t, err)
	for _, h := range hooks {
		h(r)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
		e.waitSlotFree(t, cfg.SlotName)
	})
	return running{Replicator: r, reg: reg}
}

// waitSlotFree waits until no walsender holds the slot: a walsender ends a moment after its
// client closed the connection, and DROP DATABASE refuses a database with an active slot.
func (e *env) waitSlotFree(t *testing.T, slot string) {
	t.Helper()
	eventually(t, "slot "+slot+" released", func() (bool, error) {
		var active bool
		err := e.pool.QueryRow(context.Background(),
			"SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active)
		return !active, err
	})
}

// eventually polls cond every 20ms until it holds, failing the test after waitLimit.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		<-tick.C
	}
}

// write runs sql (one or more statements) in one transaction and returns an LSN inside it: a
// replicator that applied a transaction ending at or after it has applied this one.
func (e *env) write(t *testing.T, sql string, args ...any) pglogrepl.LSN {
	t.Helper()
	ctx := context.Background()
	var lsn pglogrepl.LSN
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		var s string
		if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
			return err
		}
		var err error
		lsn, err = pglogrepl.ParseLSN(s)
		return err
	})
	require.NoError(t, err, sql)
	return lsn
}

// exec runs sql outside the replication's interest (nothing to wait for).
func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := e.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func waitApplied(t *testing.T, r running, lsn pglogrepl.LSN) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(t, r.WaitApplied(ctx, lsn))
}

// waitProgress waits until replication_progress says lsn is applied, whichever replica did it.
func (e *env) waitProgress(t *testing.T, lsn pglogrepl.LSN) {
	t.Helper()
	eventually(t, "progress at "+lsn.String(), func() (bool, error) {
		var ok bool
		err := e.pool.QueryRow(context.Background(),
			"SELECT coalesce(bool_or(applied_lsn >= $2::text::pg_lsn), false) FROM replication_progress WHERE slot_name = $1",
			e.slot, lsn.String()).Scan(&ok)
		return ok, err
	})
}

// waitLeader waits until r streams.
func waitLeader(t *testing.T, r running) {
	t.Helper()
	eventually(t, "leadership", func() (bool, error) {
		st, err := r.Status(context.Background())
		return st.Active, err
	})
}

// metric reads a counter or gauge of r by name and label values.
func metric(t *testing.T, r running, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func appliedTxns(t *testing.T, r running) float64 {
	return metric(t, r, "backfill_replicator_transactions_total", "result", "applied")
}

func skippedTxns(t *testing.T, r running) float64 {
	return metric(t, r, "backfill_replicator_transactions_total", "result", "skipped")
}

// symbolSQL creates tickers that do not exist yet.
func symbolSQL(tickers ...string) string {
	return fmt.Sprintf("INSERT INTO symbols (ticker) SELECT unnest('{%s}'::text[]) ON CONFLICT (ticker) DO NOTHING;\n",
		strings.Join(tickers, ","))
}

// trackSQL inserts (or updates) the tracking row of user ("" = anonymous) for ticker and source.
func trackSQL(user, ticker, source string, priority int, timeframes ...string) string {
	u := "NULL"
	if user != "" {
		u = "'" + user + "'::uuid"
	}
	return symbolSQL(ticker) + fmt.Sprintf(`INSERT INTO user_symbol_tracking (user_id, symbol_id, source, priority, timeframes)
SELECT %s, id, '%s', %d, '{%s}' FROM symbols WHERE ticker = '%s'
ON CONFLICT ON CONSTRAINT user_symbol_tracking_user_symbol_source_key
DO UPDATE SET priority = EXCLUDED.priority, timeframes = EXCLUDED.timeframes;`,
		u, source, priority, strings.Join(timeframes, ","), ticker)
}

// untrackSQL deletes the tracking row of user ("" = anonymous) for ticker and source.
func untrackSQL(user, ticker, source string) string {
	u := "IS NULL"
	if user != "" {
		u = "= '" + user + "'::uuid"
	}
	return fmt.Sprintf(`DELETE FROM user_symbol_tracking
WHERE user_id %s AND source = '%s' AND symbol_id = (SELECT id FROM symbols WHERE ticker = '%s');`, u, source, ticker)
}

// def is a job definition as the tests compare it.
type def struct {
	symbolID   string
	jobType    string
	window     int
	priority   int
	enabled    bool
	origin     string
	reason     *string
	updatedAt  time.Time
	xmin       uint32
	timeframe  string
	symbolName string
}

func (d def) String() string {
	state := "enabled"
	if !d.enabled {
		state = "disabled"
		if d.reason != nil {
			state += "(" + *d.reason + ")"
		}
	} else if d.reason != nil {
		state += "(" + *d.reason + ")"
	}
	return fmt.Sprintf("%s %s p%d w%d %s", d.origin, state, d.priority, d.window, d.jobType)
}

// defs loads every job definition, keyed "TICKER/timeframe".
func (e *env) defs(t *testing.T) map[string]def {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `
SELECT symbol, timeframe, job_type, symbol_id::text, window_days, priority, enabled, origin, disabled_reason,
       updated_at, xmin::text::bigint
FROM job_definitions`)
	require.NoError(t, err)
	out := map[string]def{}
	var d def
	var xmin int64
	_, err = pgx.ForEachRow(rows, []any{&d.symbolName, &d.timeframe, &d.jobType, &d.symbolID, &d.window, &d.priority,
		&d.enabled, &d.origin, &d.reason, &d.updatedAt, &xmin}, func() error {
		d.xmin = uint32(xmin)
		out[d.symbolName+"/"+d.timeframe] = d
		d.reason = nil
		return nil
	})
	require.NoError(t, err)
	return out
}

// requireRule checks the whole database against the rule, computed here in Go from the
// tracking rows (independently of the replicator's SQL):
//   - every (symbol, timeframe) some row lists has a definition with the timeframe's job type;
//     an origin 'tracking' one is enabled, without disabled_reason, at the highest priority;
//   - every origin 'tracking' definition nobody lists is disabled as 'no longer tracked'.
func (e *env) requireRule(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	jobTypes := map[string]string{}
	rows, err := e.pool.Query(ctx, "SELECT timeframe, job_type FROM timeframe_settings")
	require.NoError(t, err)
	var tf, jt string
	_, err = pgx.ForEachRow(rows, []any{&tf, &jt}, func() error { jobTypes[tf] = jt; return nil })
	require.NoError(t, err)

	want := map[string]int{} // "TICKER/tf" -> priority
	rows, err = e.pool.Query(ctx, "SELECT s.ticker, u.priority, u.timeframes FROM user_symbol_tracking u JOIN symbols s ON s.id = u.symbol_id")
	require.NoError(t, err)
	var ticker string
	var prio int
	var tfs []string
	_, err = pgx.ForEachRow(rows, []any{&ticker, &prio, &tfs}, func() error {
		for _, tf := range tfs {
			k := ticker + "/" + tf
			if p, ok := want[k]; !ok || prio > p {
				want[k] = prio
			}
		}
		return nil
	})
	require.NoError(t, err)

	defs := e.defs(t)
	var problems []string
	for k, p := range want {
		d, ok := defs[k]
		switch {
		case !ok:
			problems = append(problems, k+": tracked, no definition")
		case d.jobType != jobTypes[d.timeframe]:
			problems = append(problems, fmt.Sprintf("%s: job type %s, want %s", k, d.jobType, jobTypes[d.timeframe]))
		case d.origin == "tracking" && d.reason != nil &&
			(strings.HasPrefix(*d.reason, "permanent provider error:") || strings.HasPrefix(*d.reason, "disabled by operator")):
			// The provider refused it for good, or an operator disabled it: it stays disabled,
			// its priority still follows.
			if d.enabled || d.priority != p {
				problems = append(problems, fmt.Sprintf("%s: %s, want disabled by the provider at p%d", k, d, p))
			}
		case d.origin == "tracking" && (!d.enabled || d.reason != nil || d.priority != p):
			problems = append(problems, fmt.Sprintf("%s: %s, want enabled at p%d", k, d, p))
		}
	}
	for k, d := range defs {
		if _, ok := want[k]; ok || d.origin != "tracking" {
			continue
		}
		if d.enabled || d.reason == nil || *d.reason != "no longer tracked" {
			problems = append(problems, fmt.Sprintf("%s: %s, nobody tracks it", k, d))
		}
	}
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
	}
	require.Empty(t, problems, "job definitions break the rule")
}

// note is a decoded notification on replicator.NotifyChannel.
type note struct {
	Slot     string  `json:"slot"`
	Kind     string  `json:"kind"`
	LSN      *string `json:"lsn"`
	Inserted int     `json:"inserted"`
	Updated  int     `json:"updated"`
	Disabled int     `json:"disabled"`
}

// listener collects the notifications of a database.
type listener struct {
	mu      sync.Mutex
	notes   []note
	changed chan struct{}
}

func listen(t *testing.T, url string) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "LISTEN "+replicator.NotifyChannel)
	require.NoError(t, err)
	l := &listener{changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			var nt note
			if err := json.Unmarshal([]byte(n.Payload), &nt); err != nil {
				nt.Kind = "unparsable: " + n.Payload
			}
			l.mu.Lock()
			l.notes = append(l.notes, nt)
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = conn.Close(context.Background())
	})
	return l
}

// wait returns the first notification that satisfies pred, waiting for it.
func (l *listener) wait(t *testing.T, pred func(note) bool) note {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for _, n := range l.notes {
			if pred(n) {
				l.mu.Unlock()
				return n
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("no matching notification in %s", waitLimit)
		}
	}
}

func filter(notes []note, keep func(note) bool) []note {
	var out []note
	for _, n := range notes {
		if keep(n) {
			out = append(out, n)
		}
	}
	return out
}

func (l *listener) all() []note {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]note(nil), l.notes...)
}

// requireIncreasingLSNs checks that no upstream transaction was applied twice: every stream
// apply records a later LSN than the one before.
func requireIncreasingLSNs(t *testing.T, notes []note) {
	t.Helper()
	var last pglogrepl.LSN
	for _, n := range notes {
		if n.Kind != "stream" {
			continue
		}
		require.NotNil(t, n.LSN)
		lsn, err := pglogrepl.ParseLSN(*n.LSN)
		require.NoError(t, err)
		require.Greater(t, lsn, last, "a stream apply recorded %s after %s: a transaction was applied twice", lsn, last)
		last = lsn
	}
}

// privateCluster starts a cluster of the test's own (to stop, restart or break), migrated.
type privateCluster struct {
	cfg     pglocal.Config
	cluster *pglocal.Cluster
}

func startPrivateCluster(t *testing.T, settings map[string]string) *privateCluster {
	t.Helper()
	port, err := pgtest.FreePort()
	require.NoError(t, err)
	pc := &privateCluster{cfg: pglocal.Config{
		DataDir:   pgtest.DataDir(t),
		Port:      port,
		Ephemeral: true,
		BinDir:    os.Getenv("BACKFILL_PG_BIN"),
		Settings:  settings,
	}}
	pc.start(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = pc.cluster.Stop(ctx)
	})
	return pc
}

func (pc *privateCluster) start(t *testing.T) {
	t.Helper()
	c, err := pglocal.Start(t.Context(), pc.cfg)
	require.NoError(t, err)
	pc.cluster = c
}

func (pc *privateCluster) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(t, pc.cluster.Stop(ctx))
}

func (pc *privateCluster) migrate(t *testing.T) string {
	t.Helper()
	url := pc.cluster.URL("postgres")
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	m, err := supabase.NewMigrator(supabase.MigratorConfig{})
	require.NoError(t, err)
	_, err = m.Migrate(t.Context(), conn)
	require.NoError(t, err)
	return url
}
