package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDatabasesAreFreshMigratedAndDropped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var names []string
	// Each subtest writes into its own database; the other must not see the row.
	for i := range 2 {
		t.Run("db", func(t *testing.T) {
			pool := pgtest.DB(t)
			var name string
			var symbols int
			require.NoError(t, pool.QueryRow(ctx, "SELECT current_database(), (SELECT count(*) FROM symbols)").Scan(&name, &symbols))
			require.Zero(t, symbols, "migrated, not seeded, and untouched by the other test")
			_, err := pool.Exec(ctx, "INSERT INTO symbols (ticker) VALUES ($1)", []string{"AAPL", "MSFT"}[i])
			require.NoError(t, err)
			names = append(names, name)
		})
	}
	require.Len(t, names, 2)
	require.NotEqual(t, names[0], names[1])

	admin, err := pgx.Connect(ctx, pgtest.Cluster(t).URL("postgres"))
	require.NoError(t, err)
	defer admin.Close(context.Background())
	var left int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left))
	require.Zero(t, left, "dropped when their tests ended")

	var empty int
	require.NoError(t, pgtest.DB(t).QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&empty))
	require.Positive(t, empty)
	emptyConn, err := pgx.Connect(ctx, pgtest.EmptyURL(t))
	require.NoError(t, err)
	defer emptyConn.Close(context.Background())
	require.NoError(t, emptyConn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&empty))
	require.Zero(t, empty, "EmptyURL gives an unmigrated database")
}

// BenchmarkFreshDatabase measures the per-test cost of a fresh migrated database: clone the
// template, open a pool, ping it, close it and drop the database, as DB does for every test.
func BenchmarkFreshDatabase(b *testing.B) {
	cluster := pgtest.Cluster(b) // start the cluster and migrate the template outside the timing
	ctx := b.Context()
	for b.Loop() {
		url, drop, err := pgtest.Clone(ctx, cluster, pgtest.TemplateDB, "bench")
		require.NoError(b, err)
		pool, err := pgxpool.New(ctx, url)
		require.NoError(b, err)
		require.NoError(b, pool.Ping(ctx))
		pool.Close()
		require.NoError(b, drop(ctx))
	}
}
