package tracking_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/server/tracking"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNormalizeSymbols(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		err  string
	}{
		{"trims, upper-cases, de-duplicates in order", []string{" aapl", "MSFT", "AAPL ", "brk.b", "btc/usd"}, []string{"AAPL", "MSFT", "BRK.B", "BTC/USD"}, ""},
		{"none", nil, nil, "No symbols provided"},
		{"empty list", []string{}, nil, "No symbols provided"},
		{"blank", []string{"AAPL", "  "}, nil, "Invalid symbol: empty"},
		{"too long", []string{"ABCDEFGHIJKLMNOPQ"}, nil, `Invalid symbol "ABCDEFGHIJKLMNOPQ": longer than 16 characters`},
		{"bad characters", []string{"AA PL"}, nil, `Invalid symbol "AA PL": use letters, digits, '.', '-' or '/'`},
		{"injection", []string{"A'); DROP TABLE symbols;--"}, nil, "longer than 16 characters"},
		{"leading punctuation", []string{"-X"}, nil, `Invalid symbol "-X"`},
		{"too many", make([]string, 101), nil, "Too many symbols: 101 (at most 100 per request)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tracking.NormalizeSymbols(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var inv *tracking.InvalidError
				require.ErrorAs(t, err, &inv)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestNormalizeTimeframes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		err  string
	}{
		{"default", nil, []string{"m15", "h1", "h4"}, ""},
		{"canonical order, de-duplicated, case-folded", []string{"w1", "M15", "d1", "m15"}, []string{"m15", "d1", "w1"}, ""},
		{"unknown named", []string{"m15", "1D"}, nil, `Invalid timeframe "1D". Must be one of: m15, h1, h4, d1, w1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tracking.NormalizeTimeframes(tc.in)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

type trackingRow struct {
	User, Ticker, Source string
	Priority             int
	Timeframes           []string
}

func rows(t *testing.T, db *pgxpool.Pool) []trackingRow {
	t.Helper()
	rs, err := db.Query(t.Context(), `
		SELECT coalesce(u.user_id::text, ''), s.ticker, u.source, u.priority, u.timeframes
		FROM user_symbol_tracking u JOIN symbols s ON s.id = u.symbol_id
		ORDER BY 1, 2, 3`)
	require.NoError(t, err)
	defer rs.Close()
	var out []trackingRow
	for rs.Next() {
		var r trackingRow
		require.NoError(t, rs.Scan(&r.User, &r.Ticker, &r.Source, &r.Priority, &r.Timeframes))
		out = append(out, r)
	}
	require.NoError(t, rs.Err())
	return out
}

func addUser(t *testing.T, db *pgxpool.Pool, id string) {
	t.Helper()
	_, err := db.Exec(t.Context(), "INSERT INTO auth.users (id) VALUES ($1)", id)
	require.NoError(t, err)
}

const alice = "0b7c1f3e-9d2a-4c65-8f10-2a3b4c5d6e7f"

func TestSyncTracksAndCreatesSymbols(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	store := tracking.NewStore(db)
	addUser(t, db, alice)

	res, err := store.Sync(ctx, alice, tracking.SyncRequest{Symbols: []string{"aapl", "AAPL", "btc/usd"}, Source: "watchlist"})
	require.NoError(t, err)
	require.Equal(t, tracking.SyncResult{SymbolsTracked: 2, SymbolsRequested: 3, Timeframes: 3, JobsUpdated: 6, Priority: 300, Source: "watchlist"}, res)

	// Anonymous interest, with explicit timeframes.
	res, err = store.Sync(ctx, "", tracking.SyncRequest{Symbols: []string{"AAPL"}, Source: "chart_view", Timeframes: []string{"d1", "w1"}})
	require.NoError(t, err)
	require.Equal(t, 2, res.JobsUpdated)

	// Interest accumulates: a later request adds timeframes, never removes them.
	_, err = store.Sync(ctx, alice, tracking.SyncRequest{Symbols: []string{"AAPL"}, Source: "watchlist", Timeframes: []string{"d1"}})
	require.NoError(t, err)

	require.Equal(t, []trackingRow{
		{"", "AAPL", "chart_view", 200, []string{"d1", "w1"}},
		{alice, "AAPL", "watchlist", 300, []string{"m15", "h1", "h4", "d1"}},
		{alice, "BTC/USD", "watchlist", 300, []string{"m15", "h1", "h4"}},
	}, rows(t, db))

	var assetType string
	require.NoError(t, db.QueryRow(ctx, "SELECT asset_type FROM symbols WHERE ticker = 'BTC/USD'").Scan(&assetType))
	require.Equal(t, "crypto", assetType)

	var defs int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM job_definitions").Scan(&defs))
	require.Zero(t, defs, "the service writes no job definitions; the replicator does")
}

func TestSyncRepeatedRequestWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	store := tracking.NewStore(db)
	req := tracking.SyncRequest{Symbols: []string{"AAPL"}, Source: "chart_view"}
	_, err := store.Sync(ctx, "", req)
	require.NoError(t, err)
	var xmin1, xmin2 string
	require.NoError(t, db.QueryRow(ctx, "SELECT xmin::text FROM user_symbol_tracking").Scan(&xmin1))
	_, err = store.Sync(ctx, "", req)
	require.NoError(t, err)
	require.NoError(t, db.QueryRow(ctx, "SELECT xmin::text FROM user_symbol_tracking").Scan(&xmin2))
	require.Equal(t, xmin1, xmin2, "the row was not rewritten")
}

func TestSyncBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	store := tracking.NewStore(db)
	for _, req := range []tracking.SyncRequest{
		{Source: "watchlist"},
		{Symbols: []string{"AAPL"}, Source: "favourites"},
		{Symbols: []string{"AAPL"}, Source: "watchlist", Timeframes: []string{"1D"}},
		{Symbols: []string{"AAPL", "NOT VALID"}, Source: "watchlist"},
	} {
		_, err := store.Sync(t.Context(), "", req)
		var inv *tracking.InvalidError
		require.ErrorAs(t, err, &inv, "%+v", req)
	}
	var symbols, tracked int
	require.NoError(t, db.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM symbols), (SELECT count(*) FROM user_symbol_tracking)").Scan(&symbols, &tracked))
	require.Zero(t, symbols)
	require.Zero(t, tracked)
}

func TestSyncUnknownUser(t *testing.T) {
	t.Parallel()
	store := tracking.NewStore(pgtest.DB(t))
	_, err := store.Sync(t.Context(), alice, tracking.SyncRequest{Symbols: []string{"AAPL"}, Source: "watchlist"})
	require.ErrorIs(t, err, tracking.ErrUnknownUser)
}

func TestUntrackAndList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	store := tracking.NewStore(db)
	addUser(t, db, alice)
	for _, src := range []string{"watchlist", "chart_view"} {
		_, err := store.Sync(ctx, alice, tracking.SyncRequest{Symbols: []string{"AAPL", "MSFT"}, Source: src})
		require.NoError(t, err)
	}
	_, err := store.Sync(ctx, "", tracking.SyncRequest{Symbols: []string{"AAPL"}, Source: "watchlist"})
	require.NoError(t, err)

	list, err := store.List(ctx, alice)
	require.NoError(t, err)
	require.Len(t, list, 4)
	require.Equal(t, "AAPL", list[0].Symbol)
	require.Equal(t, "watchlist", list[0].Source)
	require.Equal(t, 300, list[0].Priority)
	require.Equal(t, []string{"m15", "h1", "h4"}, list[0].Timeframes)
	require.Equal(t, map[string]int{"m15": 0, "h1": 0, "h4": 0, "d1": 0, "w1": 0}, list[0].Bars)

	res, err := store.Untrack(ctx, alice, tracking.UntrackRequest{Symbols: []string{"aapl", "TSLA"}, Source: "watchlist"})
	require.NoError(t, err)
	require.Equal(t, tracking.UntrackResult{SymbolsUntracked: 1, SymbolsRequested: 2, Source: "watchlist"}, res)
	require.Equal(t, []trackingRow{
		{"", "AAPL", "watchlist", 300, []string{"m15", "h1", "h4"}},
		{alice, "AAPL", "chart_view", 200, []string{"m15", "h1", "h4"}},
		{alice, "MSFT", "chart_view", 200, []string{"m15", "h1", "h4"}},
		{alice, "MSFT", "watchlist", 300, []string{"m15", "h1", "h4"}},
	}, rows(t, db), "only the caller's watchlist row for AAPL went; the anonymous one stays")

	anon, err := store.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, anon, 1)
}

func TestConcurrentSyncsOneRowPerUserSymbolSource(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.DB(t)
	store := tracking.NewStore(db)
	users := []string{"", alice, "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"}
	for _, u := range users[1:] {
		addUser(t, db, u)
	}
	symbolSets := [][]string{{"AAPL", "MSFT", "NVDA"}, {"NVDA", "TSLA", "AAPL"}, {"MSFT", "TSLA", "NEW1", "NEW2"}}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			_, err := store.Sync(context.WithoutCancel(ctx), users[i%len(users)], tracking.SyncRequest{
				Symbols: symbolSets[i%len(symbolSets)], Source: []string{"watchlist", "chart_view"}[i%2],
			})
			if err != nil {
				errs <- fmt.Errorf("sync %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var total, distinct, symbols int
	require.NoError(t, db.QueryRow(ctx, `
		SELECT count(*), count(DISTINCT (user_id, symbol_id, source)), (SELECT count(*) FROM symbols)
		FROM user_symbol_tracking`).Scan(&total, &distinct, &symbols))
	require.Equal(t, distinct, total)
	require.Equal(t, 6, symbols)
	// Request i goes to user i%3 with symbol set i%3 (3, 3 and 4 symbols) and source i%2, so
	// each user tracks its set from both sources.
	require.Equal(t, (3+3+4)*2, total)
}
