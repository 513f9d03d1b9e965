package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// The NYSE's published full-day closures and 13:00 early closes (nyse.com/markets/hours-calendars),
// independent of package market's rules; later years come from the calendar's projection.
var (
	publishedClosures = []string{
		"2025-01-01", "2025-01-09", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26", "2025-06-19", "2025-07-04",
		"2025-09-01", "2025-11-27", "2025-12-25",
		"2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19", "2026-07-03", "2026-09-07",
		"2026-11-26", "2026-12-25",
		"2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31", "2027-06-18", "2027-07-05", "2027-09-06",
		"2027-11-25", "2027-12-24",
		"2028-01-17", "2028-02-21", "2028-04-14", "2028-05-29", "2028-06-19", "2028-07-04", "2028-09-04", "2028-11-23",
		"2028-12-25",
	}
	publishedEarlyCloses = []string{"2025-07-03", "2025-11-28", "2025-12-24", "2026-11-27", "2026-12-24", "2027-11-26", "2028-07-03", "2028-11-24"}
)

// TestDevStoresWhatTheProviderWould: `backfill dev` (synthetic provider, as Alpaca, regular
// hours) backfills a newly synced symbol with no bar on a holiday or a weekend, the early closes'
// last m15 bar at 12:45 ET, and clock-aligned hours. Windows are widened to 400 days so that
// holidays and early closes fall inside them whatever today's date.
func TestDevStoresWhatTheProviderWould(t *testing.T) {
	t.Parallel()
	dir := pgtest.DataDir(t)
	dbPort, apiPort := freePort(t), freePort(t)
	startDev(t, "--data-dir", dir, "--db-port", strconv.Itoa(dbPort), "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--no-seed")
	dbURL := fmt.Sprintf("postgresql://postgres:postgres@127.0.0.1:%d/postgres", dbPort)
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer conn.Close(t.Context())
	_, err = conn.Exec(t.Context(), `UPDATE timeframe_settings SET default_window_days = 400 WHERE timeframe IN ('m15', 'h1', 'h4')`)
	require.NoError(t, err)

	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/functions/v1/sync-user-symbols", apiPort),
		strings.NewReader(`{"symbols":["CALX"],"source":"watchlist","timeframes":["m15","h1","h4"]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+server.LocalAnonKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitFor(t, dbURL, `SELECT count(*) = 3 AND bool_and(covered_at IS NOT NULL) FROM job_definitions WHERE symbol = 'CALX'`)

	var now time.Time
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT now()`).Scan(&now))
	ny := market.NYSE().Location()
	type day struct {
		n           int
		first, last string
	}
	days := map[market.Timeframe]map[string]*day{}
	rows, err := conn.Query(t.Context(), `
SELECT b.timeframe, b.ts FROM ohlc_bars_v2 b JOIN symbols s ON s.id = b.symbol_id
WHERE s.ticker = 'CALX' ORDER BY b.timeframe, b.ts`)
	require.NoError(t, err)
	for rows.Next() {
		var tf string
		var ts time.Time
		require.NoError(t, rows.Scan(&tf, &ts))
		local := ts.In(ny)
		require.NotContains(t, []time.Weekday{time.Saturday, time.Sunday}, local.Weekday(), "%s bar at %s", tf, local)
		require.False(t, ts.After(now), "%s bar in the future: %s", tf, ts)
		if tf == "h1" || tf == "h4" {
			require.Zero(t, local.Minute(), "%s bar at %s is not on the clock hour", tf, local)
		}
		if days[market.Timeframe(tf)] == nil {
			days[market.Timeframe(tf)] = map[string]*day{}
		}
		d := days[market.Timeframe(tf)][local.Format(time.DateOnly)]
		if d == nil {
			d = &day{first: local.Format("15:04")}
			days[market.Timeframe(tf)][local.Format(time.DateOnly)] = d
		}
		d.n++
		d.last = local.Format("15:04")
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, days[market.M15])

	closures, earlies := publishedClosures, publishedEarlyCloses
	cal := market.NYSE()
	for y := market.LastPublishedYear + 1; y <= now.Year(); y++ {
		for _, c := range cal.Closures(y) {
			closures = append(closures, c.Date.Format(time.DateOnly))
		}
		for _, e := range cal.EarlyCloses(y) {
			earlies = append(earlies, e.Format(time.DateOnly))
		}
	}
	// The whole days inside every window: from 399 days ago to yesterday.
	inWindow := func(date string) bool {
		d, err := time.ParseInLocation(time.DateOnly, date, ny)
		require.NoError(t, err)
		return d.After(now.AddDate(0, 0, -399)) && d.AddDate(0, 0, 1).Before(now)
	}
	var holidays, early int
	for _, date := range closures {
		if !inWindow(date) {
			continue
		}
		holidays++
		for _, tf := range []market.Timeframe{market.M15, market.H1, market.H4} {
			require.Nil(t, days[tf][date], "%s bars on the closure %s", tf, date)
		}
	}
	for _, date := range earlies {
		if !inWindow(date) {
			continue
		}
		early++
		require.Equal(t, &day{n: 14, first: "09:30", last: "12:45"}, days[market.M15][date], "m15 on the early close %s", date)
		require.Equal(t, &day{n: 4, first: "09:00", last: "12:00"}, days[market.H1][date], "h1 on the early close %s", date)
	}
	require.GreaterOrEqual(t, holidays, 8, "a 400-day window holds a year's holidays")
	require.GreaterOrEqual(t, early, 1, "and at least one early close")
	// An ordinary full session: 26 quarter hours from 09:30, 7 hours from 09:00, 08:00 and 12:00.
	var full string
	for date, d := range days[market.M15] {
		if inWindow(date) && !strings.Contains(strings.Join(earlies, ","), date) {
			full = date
			require.Equal(t, day{n: 26, first: "09:30", last: "15:45"}, *d, "m15 on %s", date)
		}
	}
	require.Equal(t, day{n: 7, first: "09:00", last: "15:00"}, *days[market.H1][full], "h1 on %s", full)
	require.Equal(t, day{n: 2, first: "08:00", last: "12:00"}, *days[market.H4][full], "h4 on %s", full)
}
