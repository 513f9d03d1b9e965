package control_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/control"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	pool := &pgxpool.Pool{}
	for _, tc := range []struct {
		name string
		cfg  control.Config
		want string // "" for valid
	}{
		{"minimal", control.Config{Pool: pool}, ""},
		{"no pool", control.Config{}, "Pool is required"},
		{"negative watchers", control.Config{Pool: pool, MaxWatchers: -1}, "MaxWatchers"},
		{"negative buffer", control.Config{Pool: pool, WatchBuffer: -1}, "WatchBuffer"},
		{"missing slice size", control.Config{Pool: pool, SliceSizes: orchestrator.SliceSizes{market.H1: time.Hour}}, "slice size for m15"},
		{"fractional slice size", control.Config{Pool: pool, SliceSizes: func() orchestrator.SliceSizes {
			s := orchestrator.DefaultSliceSizes()
			s[market.D1] = 1500 * time.Millisecond
			return s
		}()}, "slice size for d1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := control.New(tc.cfg)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// run is a job run inserted for a test.
type run struct {
	id, defID string
}

// addRun creates the symbol and its h1 definition when missing, and a run of status on slice
// k of a one-hour grid.
func addRun(t *testing.T, pool *pgxpool.Pool, symbol, status string, k int) run {
	t.Helper()
	var r run
	require.NoError(t, pool.QueryRow(t.Context(), `
WITH s AS (
  INSERT INTO symbols (ticker) VALUES ($1)
  ON CONFLICT (ticker) DO UPDATE SET ticker = EXCLUDED.ticker
  RETURNING id
), d AS (
  INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days)
  SELECT 'fetch_intraday', $1, s.id, 'h1', 7 FROM s
  ON CONFLICT (symbol, timeframe, job_type) DO UPDATE SET symbol = EXCLUDED.symbol
  RETURNING id
)
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, status)
SELECT d.id, $1, 'h1', 'fetch_intraday',
       timestamptz '2026-01-01 00:00Z' + make_interval(hours => $3),
       timestamptz '2026-01-01 01:00Z' + make_interval(hours => $3), $2
FROM d
RETURNING id::text, job_def_id::text`, symbol, status, k).Scan(&r.id, &r.defID))
	return r
}

func TestTriggerAnnouncesChangesOnly(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	conn := pgtest.Listen(t, pool, control.EventChannel)
	r := addRun(t, pool, "AAPL", "queued", 0)
	_, err := pool.Exec(t.Context(), `UPDATE job_runs SET lease_expires_at = now(), heartbeat_at = now() WHERE id = $1`, r.id)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `UPDATE job_runs SET status = 'queued', error_message = 'same status' WHERE id = $1`, r.id)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `UPDATE job_runs SET status = 'running', attempt = 1 WHERE id = $1`, r.id)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `UPDATE job_runs SET status = 'success', rows_written = 7 WHERE id = $1`, r.id)
	require.NoError(t, err)

	// Commit order: the insert, then the two state changes. The heartbeat and the update that
	// changed neither status nor rows_written sent nothing, or they would come in between.
	var got []control.Event
	for range 3 {
		ev, err := control.ParseEvent(pgtest.NextNotification(t, conn))
		require.NoError(t, err)
		got = append(got, ev)
	}
	require.Equal(t, []string{"", "queued", "running"}, []string{got[0].PreviousStatus, got[1].PreviousStatus, got[2].PreviousStatus})
	require.Equal(t, []string{"queued", "running", "success"}, []string{got[0].Run.Status, got[1].Run.Status, got[2].Run.Status})
	require.Equal(t, int32(7), got[2].BarsWritten)
	require.Equal(t, int32(0), got[1].BarsWritten)
	require.Equal(t, int32(1), got[2].Run.Attempt)
	for _, ev := range got {
		require.Equal(t, r.id, ev.Run.ID)
		require.Equal(t, r.defID, ev.Run.JobDefID)
		require.Equal(t, "AAPL", ev.Run.Symbol)
		require.Equal(t, "h1", ev.Run.Timeframe)
		require.True(t, ev.Run.SliceFrom.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), ev.Run.SliceFrom)
		require.True(t, ev.Run.SliceTo.Equal(time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)), ev.Run.SliceTo)
		require.WithinDuration(t, time.Now(), ev.At, time.Minute)
	}
}

func TestTriggerNeverFailsAWrite(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	conn := pgtest.Listen(t, pool, control.EventChannel)
	// A run edited by hand to an absurd symbol, failing with an absurd error code: the payload is
	// cut so NOTIFY's 8000-byte limit cannot fail the write.
	long := strings.Repeat("X", 10000)
	r := addRun(t, pool, "AAPL", "running", 0)
	_, err := pool.Exec(t.Context(), `UPDATE job_runs SET symbol = $2 WHERE id = $1`, r.id, long)
	require.NoError(t, err)
	_, err = pool.Exec(t.Context(), `UPDATE job_runs SET status = 'failed', error_code = $2, error_message = $2 WHERE id = $1`, r.id, long)
	require.NoError(t, err)
	pgtest.NextNotification(t, conn) // the insert
	payload := pgtest.NextNotification(t, conn)
	require.Less(t, len(payload), 1000)
	ev, err := control.ParseEvent(payload)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("X", 64), ev.Run.ErrorCode)
	require.Equal(t, strings.Repeat("X", 64), ev.Run.Symbol)
	require.Empty(t, ev.Run.ErrorMessage, "the message is not sent")
}

func TestParseEventRejectsForeignPayloads(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{
		"", "hello", `{}`, `{"id":"x"}`,
		`{"id":"x","status":"queued","slice_from":"yesterday","slice_to":"2026-01-01T00:00:00Z","at":"2026-01-01T00:00:00Z"}`,
	} {
		_, err := control.ParseEvent(payload)
		require.Error(t, err, payload)
	}
}

// watch runs s.Watch in the background and returns once it listens.
type watch struct {
	done   chan error
	cancel context.CancelFunc
}

func startWatch(t *testing.T, s *control.Service, symbol string, send func(control.Event) error) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watch{done: make(chan error, 1), cancel: cancel}
	listening := make(chan struct{})
	go func() {
		w.done <- s.Watch(ctx, control.WatchFilter{Symbol: symbol}, func() error { close(listening); return nil }, send)
	}()
	select {
	case <-listening:
	case err := <-w.done:
		t.Fatalf("watch ended before listening: %v", err)
	}
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// watchConnections counts the watchers' connections the server still has on the test's database.
func watchConnections(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
		control.WatchApplicationName).Scan(&n))
	return n
}

// eventually polls cond every 10ms for at most 30s: how a test waits for the server to end a
// backend after its client closed the connection, which it does asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30s: %s", what)
		}
		<-tick.C
	}
}

func TestWatchDeliversInCommitOrderAndFilters(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	reg := prometheus.NewRegistry()
	s, err := control.New(control.Config{Pool: pool, Registerer: reg})
	require.NoError(t, err)
	all := make(chan control.Event, 100)
	aapl := make(chan control.Event, 100)
	startWatch(t, s, "", func(ev control.Event) error { all <- ev; return nil })
	startWatch(t, s, " aapl ", func(ev control.Event) error { aapl <- ev; return nil })
	require.Equal(t, 2, watchConnections(t, pool))
	require.Equal(t, 2.0, metric(t, reg, "backfill_control_watchers"))

	a := addRun(t, pool, "AAPL", "queued", 0)
	m := addRun(t, pool, "MSFT", "queued", 0)
	_, err = pool.Exec(t.Context(), `UPDATE job_runs SET status = 'running' WHERE id = $1`, a.id)
	require.NoError(t, err)

	want := []string{a.id + " queued", m.id + " queued", a.id + " running"}
	for _, w := range want {
		ev := <-all
		require.Equal(t, w, ev.Run.ID+" "+ev.Run.Status)
	}
	for _, w := range []string{want[0], want[2]} {
		ev := <-aapl
		require.Equal(t, w, ev.Run.ID+" "+ev.Run.Status)
	}
}

func TestWatchEndsWithItsContextAndReleasesTheConnection(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	s, err := control.New(control.Config{Pool: pool, MaxWatchers: 1})
	require.NoError(t, err)
	w := startWatch(t, s, "", func(control.Event) error { return nil })

	// The cap: a second watch is refused at once, without a connection.
	err = s.Watch(t.Context(), control.WatchFilter{}, func() error { t.Error("listening"); return nil }, nil)
	require.ErrorIs(t, err, control.ErrTooManyWatchers)

	w.cancel()
	require.ErrorIs(t, <-w.done, context.Canceled)
	w.done <- nil // for the cleanup
	eventually(t, "the watch connection ends", func() bool { return watchConnections(t, pool) == 0 })

	// The slot is free again.
	startWatch(t, s, "", func(control.Event) error { return nil })
}

func TestWatchDropsAClientThatFallsBehind(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	reg := prometheus.NewRegistry()
	s, err := control.New(control.Config{Pool: pool, Registerer: reg, WatchBuffer: 2})
	require.NoError(t, err)
	stuck := make(chan struct{})
	sending := make(chan struct{}, 1)
	w := startWatch(t, s, "", func(control.Event) error {
		select {
		case sending <- struct{}{}:
		default:
		}
		<-stuck // a client that stopped reading
		return errors.New("client gone")
	})
	r := addRun(t, pool, "AAPL", "queued", 0)
	<-sending
	// With the first event stuck in send, the buffer takes two more; the third overflows.
	for i := 1; i <= 3; i++ {
		_, err = pool.Exec(t.Context(), `UPDATE job_runs SET rows_written = $2 WHERE id = $1`, r.id, i)
		require.NoError(t, err)
	}
	eventually(t, "the reader overflows", func() bool { return metric(t, reg, "backfill_control_watch_overflows_total") == 1 })
	// The database connection goes at once, while the client is still stuck.
	eventually(t, "the watch connection ends", func() bool { return watchConnections(t, pool) == 0 })
	require.Equal(t, 1.0, metric(t, reg, "backfill_control_watchers"), "the stream itself ends when send returns")

	close(stuck)
	err = <-w.done
	w.done <- nil
	require.ErrorContains(t, err, "client gone")
	require.Equal(t, 0.0, metric(t, reg, "backfill_control_watchers"))
	require.Equal(t, 0.0, metric(t, reg, "backfill_control_watch_events_total"), "no send succeeded")
}

// metric reads an unlabelled gauge or counter from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		require.Len(t, f.GetMetric(), 1, name)
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
