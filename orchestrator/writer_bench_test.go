package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// BenchmarkWrite writes one slice per iteration (new bars each time) and reports bars/s: 500
// bars (a month of m15 bars of a stock) and 10,000 (a full provider page).
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{500, 10000} {
		b.Run(fmt.Sprintf("bars=%d", n), func(b *testing.B) { benchmarkWrite(b, n) })
	}
}

func benchmarkWrite(b *testing.B, n int) {
	pool := pgtest.DB(b)
	d := benchDef(b, pool)
	size := time.Duration(n) * 15 * time.Minute
	start := ts("2020-01-02T00:00:00Z")
	i := 0
	for b.Loop() {
		s := Slice{From: start.Add(time.Duration(i) * size), To: start.Add(time.Duration(i+1) * size)}
		i++
		bars := make([]marketdata.Bar, n)
		for k := range bars {
			bars[k] = marketdata.Bar{TS: s.From.Add(time.Duration(k) * 15 * time.Minute), Open: 10, High: 11, Low: 9, Close: 10.5, Volume: 100}
		}
		_, err := pool.Exec(b.Context(), `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to) SELECT id, symbol, timeframe, job_type, $2, $3 FROM job_definitions WHERE id = $1`, d.ID, s.From, s.To)
		require.NoError(b, err)
		runs, err := Claim(b.Context(), pool, dbClock, "bench", time.Minute, 1)
		require.NoError(b, err)
		written, err := Write(b.Context(), pool, dbClock, runs[0], Fetched{Provider: "synthetic", Bars: bars})
		require.NoError(b, err)
		require.EqualValues(b, n, written)
	}
	b.ReportMetric(float64(n*i)/b.Elapsed().Seconds(), "bars/s")
}

func benchDef(b *testing.B, pool *pgxpool.Pool) def {
	d := def{Symbol: "BENCH", Timeframe: market.M15}
	require.NoError(b, pool.QueryRow(b.Context(), `INSERT INTO symbols (ticker) VALUES ('BENCH') RETURNING id::text`).Scan(&d.SymbolID))
	require.NoError(b, pool.QueryRow(b.Context(), `
INSERT INTO job_definitions (job_type, symbol, symbol_id, timeframe, window_days) VALUES ('fetch_intraday', 'BENCH', $1, 'm15', 30) RETURNING id::text`, d.SymbolID).Scan(&d.ID))
	return d
}
