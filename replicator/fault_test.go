package replicator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/replicator"
)

// terminateWalsender kills the walsender that holds the slot and returns its pid.
func (e *env) terminateWalsender(t *testing.T) int32 {
	t.Helper()
	var pid int32
	eventually(t, "a walsender on "+e.slot, func() (bool, error) {
		err := e.pool.QueryRow(context.Background(),
			"SELECT coalesce(max(active_pid), 0) FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&pid)
		return pid != 0, err
	})
	var ok bool
	require.NoError(t, e.pool.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
	require.True(t, ok)
	return pid
}

func (e *env) slotConfirmed(t *testing.T) pglogrepl.LSN {
	t.Helper()
	var s string
	require.NoError(t, e.pool.QueryRow(context.Background(),
		"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&s))
	lsn, err := pglogrepl.ParseLSN(s)
	require.NoError(t, err)
	return lsn
}

func (e *env) recordedLSN(t *testing.T) pglogrepl.LSN {
	t.Helper()
	var s string
	require.NoError(t, e.pool.QueryRow(context.Background(),
		"SELECT applied_lsn::text FROM replication_progress WHERE slot_name = $1", e.slot).Scan(&s))
	lsn, err := pglogrepl.ParseLSN(s)
	require.NoError(t, err)
	return lsn
}

// TestConnectionKilledMidStream kills the walsender while a large transaction is being applied
// in parts, and keeps writing while the replicator reconnects.
func TestConnectionKilledMidStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := listen(t, e.url)
	cfg := e.config(t)
	cfg.MaxPendingSymbols = 100
	r := e.start(t, cfg)
	waitLeader(t, r)

	e.write(t, `
INSERT INTO symbols (ticker) SELECT 'K' || i FROM generate_series(1, 1500) AS i;
INSERT INTO user_symbol_tracking (user_id, symbol_id, source, priority, timeframes)
SELECT NULL, id, 'watchlist', 300, '{h1,d1}' FROM symbols WHERE ticker LIKE 'K%';`)
	l.wait(t, func(n note) bool { return n.Kind == "partial" })
	pid := e.terminateWalsender(t)
	t.Logf("terminated walsender %d after the first partial apply", pid)

	var last pglogrepl.LSN
	for i := range 5 {
		last = e.write(t, trackSQL("", fmt.Sprintf("S%d", i), "chart_view", 200, "m15")+
			untrackSQL("", fmt.Sprintf("K%d", i+1), "watchlist"))
	}
	waitApplied(t, r, last)
	e.requireRule(t)
	require.Equal(t, 6.0, appliedTxns(t, r), "each upstream transaction applied exactly once")
	require.GreaterOrEqual(t, metric(t, r, "backfill_replicator_reconnects_total"), 1.0)
	require.GreaterOrEqual(t, metric(t, r, "backfill_replicator_reconciles_total", "reason", "reconnect"), 1.0)
	requireIncreasingLSNs(t, l.all())
}

// TestStoppedAfterApplyingBeforeConfirming: a replicator commits a transaction's effects and
// its LSN, then stops without ever confirming it to the slot. The next one is handed the
// transaction again and must skip it.
func TestStoppedAfterApplyingBeforeConfirming(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := listen(t, e.url)
	first := e.build(t, e.config(t), func(r *replicator.Replicator) {
		replicator.SetConfirmHook(r, func(pglogrepl.LSN) bool { return false })
	})
	require.NoError(t, first.Start(t.Context()))
	waitLeader(t, first)
	lsn := e.write(t, trackSQL("", "AAA", "watchlist", 300, "m15", "h1", "h4"))
	waitApplied(t, first, lsn)
	require.NoError(t, first.Stop(t.Context()))
	e.waitSlotFree(t, e.slot)

	recorded := e.recordedLSN(t)
	require.Greater(t, recorded, lsn)
	require.Less(t, e.slotConfirmed(t), recorded, "the slot was never told: it will replay the transaction")
	require.Equal(t, 1.0, appliedTxns(t, first))

	second := e.start(t, e.config(t))
	next := e.write(t, trackSQL("", "BBB", "watchlist", 300, "h1"))
	waitApplied(t, second, next)
	e.requireRule(t)
	require.Equal(t, 1.0, skippedTxns(t, second), "the replayed transaction is skipped by its LSN")
	require.Equal(t, 1.0, appliedTxns(t, second), "only the new one is applied")
	require.Equal(t, 2.0, metric(t, second, "backfill_replicator_changes_received_total", "operation", "insert"),
		"received the replay and the new insert")
	require.Equal(t, 1.0, metric(t, second, "backfill_replicator_changes_applied_total", "operation", "insert"),
		"applied only the new one")
	// NOTIFY reaches the listening session after the apply commits: wait for it to arrive.
	isStream := func(n note) bool { return n.Kind == "stream" }
	eventually(t, "both stream notifications", func() (bool, error) {
		return len(filter(l.all(), isStream)) >= 2, nil
	})
	// (Exactly-once is asserted by the counters above; the notifications only have to show
	// both applies, in LSN order.)
	requireIncreasingLSNs(t, l.all())
	eventually(t, "the slot to confirm past the replay", func() (bool, error) {
		return e.slotConfirmed(t) >= recorded, nil
	})
}

// TestSlotDroppedWhileDown: rows written while the slot is gone are caught by the reconcile
// that follows the slot's re-creation.
func TestSlotDroppedWhileDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.start(t, e.config(t))
	waitApplied(t, first, e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1")+trackSQL("", "BBB", "watchlist", 300, "h4")))
	require.NoError(t, first.Stop(t.Context()))
	e.waitSlotFree(t, e.slot)
	e.exec(t, "SELECT pg_drop_replication_slot($1)", e.slot)

	// Written while nothing listens and no slot keeps the changes.
	e.write(t, untrackSQL("", "AAA", "watchlist")+trackSQL("", "CCC", "chart_view", 200, "d1")+
		"UPDATE user_symbol_tracking SET priority = 100 WHERE symbol_id = (SELECT id FROM symbols WHERE ticker = 'BBB')")

	second := e.start(t, e.config(t))
	e.requireRule(t)
	defs := e.defs(t)
	require.False(t, defs["AAA/h1"].enabled)
	require.True(t, defs["CCC/d1"].enabled)
	require.Equal(t, 100, defs["BBB/h4"].priority)
	require.Equal(t, 1.0, metric(t, second, "backfill_replicator_reconciles_total", "reason", "created"))

	// And it streams on from there.
	waitApplied(t, second, e.write(t, untrackSQL("", "CCC", "chart_view")))
	e.requireRule(t)
}

// TestSlotInvalidatedWhileDown: max_slot_wal_keep_size invalidates a slot that fell behind
// (wal_status 'lost'); the replicator drops it, creates it again and reconciles.
func TestSlotInvalidatedWhileDown(t *testing.T) {
	t.Parallel()
	pc := startPrivateCluster(t, map[string]string{"max_slot_wal_keep_size": "1MB"})
	e := envOn(t, pc.migrate(t))
	first := e.start(t, e.config(t))
	waitApplied(t, first, e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1")))
	require.NoError(t, first.Stop(t.Context()))
	e.waitSlotFree(t, e.slot)

	e.write(t, untrackSQL("", "AAA", "watchlist")+trackSQL("", "BBB", "watchlist", 300, "h4"))
	// Push the slot's restart point out of the kept WAL: switch segments, then checkpoint.
	eventually(t, "the slot to be invalidated", func() (bool, error) {
		for range 3 {
			if _, err := e.pool.Exec(t.Context(), "SELECT pg_logical_emit_message(false, 'test', 'x'); SELECT pg_switch_wal();"); err != nil {
				return false, err
			}
		}
		if _, err := e.pool.Exec(t.Context(), "CHECKPOINT"); err != nil {
			return false, err
		}
		var status string
		err := e.pool.QueryRow(t.Context(), "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&status)
		return status == "lost", err
	})

	second := e.start(t, e.config(t))
	e.requireRule(t)
	require.Equal(t, 1.0, metric(t, second, "backfill_replicator_reconciles_total", "reason", "lost"))
	require.False(t, e.defs(t)["AAA/h1"].enabled)
	require.True(t, e.defs(t)["BBB/h4"].enabled)
	waitApplied(t, second, e.write(t, trackSQL("", "CCC", "watchlist", 300, "m15")))
	e.requireRule(t)
}

// TestPostgresRestart stops and starts the server under a running replicator.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	pc := startPrivateCluster(t, nil)
	e := envOn(t, pc.migrate(t))
	r := e.start(t, e.config(t))
	waitApplied(t, r, e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1", "h4")))

	pc.stop(t)
	pc.start(t)
	e.pool.Reset() // the test's own connections died with the server

	e.write(t, trackSQL("", "BBB", "chart_view", 200, "w1"))
	last := e.write(t, untrackSQL("", "AAA", "watchlist"))
	waitApplied(t, r, last)
	e.requireRule(t)
	require.Equal(t, 3.0, appliedTxns(t, r), "each upstream transaction applied exactly once")
	require.GreaterOrEqual(t, metric(t, r, "backfill_replicator_reconnects_total"), 1.0)
	require.GreaterOrEqual(t, metric(t, r, "backfill_replicator_reconciles_total", "reason", "reconnect"), 1.0)
	waitLeader(t, r)
}

// TestTakeover runs two replicators on one slot: one streams, the other stands by and takes
// over within seconds when the first stops, or when its connection is killed.
func TestTakeover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start(t, e.config(t))
	waitLeader(t, a)
	b := e.startStandby(t, e.config(t))

	lsn := e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1"))
	waitApplied(t, a, lsn)
	st, err := b.Status(t.Context())
	require.NoError(t, err)
	require.False(t, st.Active, "the second one stands by")
	require.True(t, st.SlotExists)
	require.Positive(t, st.ActivePID, "held by the first one's walsender")
	require.Zero(t, metric(t, b, "backfill_replicator_leader"))
	require.Equal(t, 1.0, metric(t, a, "backfill_replicator_leader"))

	stopped := time.Now()
	require.NoError(t, a.Stop(t.Context()))
	waitLeader(t, b)
	took := time.Since(stopped)
	t.Logf("took over in %s", took)
	require.Less(t, took, 5*time.Second)

	lsn = e.write(t, trackSQL("", "BBB", "watchlist", 300, "h4"))
	waitApplied(t, b, lsn)
	e.requireRule(t)
	require.Equal(t, 1.0, appliedTxns(t, a))
	require.Equal(t, 1.0, appliedTxns(t, b))
	require.Zero(t, skippedTxns(t, b), "the first one had confirmed what it applied")

	// A third replica stands by; the leader's connection is killed: whoever gets the slot
	// first leads, and every transaction is still applied once.
	c := e.startStandby(t, e.config(t))
	e.terminateWalsender(t)
	lsn = e.write(t, untrackSQL("", "AAA", "watchlist"))
	e.waitProgress(t, lsn)
	eventually(t, "a leader", func() (bool, error) {
		sb, err := b.Status(t.Context())
		if err != nil {
			return false, err
		}
		sc, err := c.Status(t.Context())
		return sb.Active != sc.Active, err
	})
	e.requireRule(t)
	require.Equal(t, 2.0, appliedTxns(t, b)+appliedTxns(t, c), "the new transaction applied once")
}

// TestProgressAheadOfWAL: a replication_progress row from another server's history (a restored
// or replaced database) lies beyond the WAL; skipping by it would skip everything.
func TestProgressAheadOfWAL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.start(t, e.config(t))
	waitApplied(t, first, e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1")))
	require.NoError(t, first.Stop(t.Context()))
	e.waitSlotFree(t, e.slot)
	e.exec(t, "UPDATE replication_progress SET applied_lsn = 'FFFFFFF/0' WHERE slot_name = $1", e.slot)

	second := e.start(t, e.config(t))
	require.Less(t, e.recordedLSN(t), pglogrepl.LSN(0xFFFFFFF<<32), "reset to the slot's position")
	waitApplied(t, second, e.write(t, trackSQL("", "BBB", "watchlist", 300, "h4")))
	e.requireRule(t)
	require.Equal(t, 1.0, appliedTxns(t, second))
	require.Zero(t, skippedTxns(t, second))
}

// TestConfirmsOnlyAfterCommit holds the apply lock so a transaction's effects cannot commit:
// meanwhile the slot's confirmed position must not pass the transaction, whatever keepalives
// and status updates go by; once the effects commit, it does. The apply waits longer than the
// server's wal_sender_timeout (1s here): status updates keep going during it, so the server
// does not drop the connection.
func TestConfirmsOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config(t)
	cfg.DatabaseURL += "?wal_sender_timeout=1000"
	r := e.start(t, cfg)
	waitApplied(t, r, e.write(t, trackSQL("", "AAA", "watchlist", 300, "h1")))

	conn, err := pgx.Connect(t.Context(), e.url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", replicator.ApplyLockKey)
	require.NoError(t, err)

	lsn := e.write(t, trackSQL("", "BBB", "watchlist", 300, "h4"))
	e.exec(t, symbolSQL("X1", "X2")) // other WAL: keepalives with a later WAL end
	require.Never(t, func() bool { return e.slotConfirmed(t) >= lsn }, 2500*time.Millisecond, 50*time.Millisecond,
		"confirmed before the effects were committed")
	_, found := e.defs(t)["BBB/h4"]
	require.False(t, found)

	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", replicator.ApplyLockKey)
	require.NoError(t, err)
	waitApplied(t, r, lsn)
	eventually(t, "the slot to confirm the transaction", func() (bool, error) { return e.slotConfirmed(t) >= lsn, nil })
	e.requireRule(t)
	require.Equal(t, 2.0, appliedTxns(t, r))
	require.Zero(t, metric(t, r, "backfill_replicator_reconnects_total"), "the walsender never timed out")
}
