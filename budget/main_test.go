package budget

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// replicaPool opens a second pool on pool's database: the connections of another process.
func replicaPool(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// fakeClock moves only when the test moves it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t0 time.Time) *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// t0 is an instant of the fake clocks, far from the wall clock on purpose: a statement that
// used the database's now() would give waits of months.
var t0 = time.Date(2031, 3, 14, 15, 0, 0, 0, time.UTC)

// newBudget makes a budget for a test, failing it on error.
func newBudget(t *testing.T, cfg Config) *Budget {
	t.Helper()
	b, err := New(t.Context(), cfg)
	require.NoError(t, err)
	return b
}

// row is the provider_budget row as the tests look at it.
type row struct {
	Rate, Burst, Tokens float64
	UpdatedAt           time.Time
	PausedUntil         *time.Time
}

func budgetRow(t *testing.T, pool *pgxpool.Pool, provider string) row {
	t.Helper()
	var r row
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT rate_per_second, burst, tokens, updated_at, paused_until
FROM provider_budget WHERE provider = $1`, provider).Scan(&r.Rate, &r.Burst, &r.Tokens, &r.UpdatedAt, &r.PausedUntil))
	return r
}
