package supabase_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

// barsFixture: two symbols with two bars each.
const barsFixture = `
INSERT INTO public.symbols (id, ticker) VALUES
  ('bbbbbbbb-0000-0000-0000-000000000001', 'ONE'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'TWO');
INSERT INTO public.ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider)
SELECT s.id, 'h1', ts, 1, 2, 1, 2, 100, 'synthetic'
FROM public.symbols AS s, (VALUES (timestamptz '2026-01-05 15:00Z'), ('2026-01-05 16:00Z')) AS t (ts);
`

func barsOf(t *testing.T, pool *pgxpool.Pool, ticker string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT count(*) FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id WHERE s.ticker = $1`, ticker).Scan(&n))
	return n
}

// The statement-level checks keep the foreign key's guarantees of bars → symbols.
func TestBarsReferToSymbols(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, barsFixture)
	require.NoError(t, err)

	// An unknown symbol: the whole statement fails with the foreign key's code and name.
	_, err = pool.Exec(ctx, `
INSERT INTO ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider) VALUES
  ('bbbbbbbb-0000-0000-0000-000000000001', 'h1', '2026-01-06 15:00Z', 1, 2, 1, 2, 1, 'synthetic'),
  ('cccccccc-0000-0000-0000-000000000009', 'h1', '2026-01-06 15:00Z', 1, 2, 1, 2, 1, 'synthetic')`)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23503", pgErr.Code)
	require.Equal(t, "ohlc_bars_v2_symbol_id_fkey", pgErr.ConstraintName)
	require.Contains(t, pgErr.Detail, "cccccccc-0000-0000-0000-000000000009")
	require.Equal(t, 2, barsOf(t, pool, "ONE"), "nothing of the statement was written")

	// Moving bars to an unknown symbol fails the same way.
	_, err = pool.Exec(ctx, `UPDATE ohlc_bars_v2 SET symbol_id = 'cccccccc-0000-0000-0000-000000000009' WHERE ts = '2026-01-05 15:00Z' AND symbol_id = 'bbbbbbbb-0000-0000-0000-000000000001'`)
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23503", pgErr.Code)

	// A symbol's id cannot change.
	_, err = pool.Exec(ctx, `UPDATE symbols SET id = gen_random_uuid() WHERE ticker = 'ONE'`)
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23503", pgErr.Code)
	_, err = pool.Exec(ctx, `UPDATE symbols SET description = 'renamed' WHERE ticker = 'ONE'`)
	require.NoError(t, err, "other columns change freely")

	// Deleting a symbol deletes its bars, and only its.
	_, err = pool.Exec(ctx, `DELETE FROM symbols WHERE ticker = 'ONE'`)
	require.NoError(t, err)
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ohlc_bars_v2`).Scan(&left))
	require.Equal(t, 2, left)
	require.Equal(t, 2, barsOf(t, pool, "TWO"))

	// TRUNCATE symbols CASCADE takes the bars along.
	_, err = pool.Exec(ctx, `TRUNCATE symbols CASCADE`)
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ohlc_bars_v2`).Scan(&left))
	require.Zero(t, left)
}

// A symbol deleted while a writer's bars of it are uncommitted waits for the writer, then
// takes the bars along: no bar outlives its symbol.
func TestBarsWriterAndSymbolDeleteRace(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, barsFixture)
	require.NoError(t, err)

	writer, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = writer.Rollback(context.WithoutCancel(ctx)) }()
	_, err = writer.Exec(ctx, `
INSERT INTO ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider)
VALUES ('bbbbbbbb-0000-0000-0000-000000000001', 'h1', '2026-01-07 15:00Z', 1, 2, 1, 2, 1, 'synthetic')`)
	require.NoError(t, err)

	deleted := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, `DELETE FROM symbols WHERE ticker = 'ONE'`)
		deleted <- err
	}()
	// The delete waits on the writer's key-share lock.
	require.Eventually(t, func() bool {
		var waiting bool
		err := pool.QueryRow(ctx, `
SELECT count(*) > 0 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM symbols%'`).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond)
	select {
	case err := <-deleted:
		t.Fatalf("the delete did not wait for the writer: %v", err)
	default:
	}
	require.NoError(t, writer.Commit(ctx))
	require.NoError(t, <-deleted)
	var orphans int
	require.NoError(t, pool.QueryRow(ctx, `
SELECT count(*) FROM ohlc_bars_v2 b WHERE NOT EXISTS (SELECT 1 FROM symbols s WHERE s.id = b.symbol_id)`).Scan(&orphans))
	require.Zero(t, orphans, "the committed bar went with its symbol")

	// The other order: a writer that finds its symbol deleted (and committed) fails.
	_, err = pool.Exec(ctx, `
INSERT INTO ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider)
VALUES ('bbbbbbbb-0000-0000-0000-000000000001', 'h1', '2026-01-08 15:00Z', 1, 2, 1, 2, 1, 'synthetic')`)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr) && pgErr.Code == "23503", "%v", err)
}
