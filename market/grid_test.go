package market_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestGridSessionBars: the bar starts of a session per provider grid, timeframe and hours, on
// the New York clock across a DST change and on an early close.
func TestGridSessionBars(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	ny := cal.Location()
	tests := []struct {
		name        string
		grid        market.Grid
		date        string
		tf          market.Timeframe
		n           int
		first, last string // New York wall clock
	}{
		{"regular m15", market.SyntheticGrid(market.RegularHours), "2026-03-06", market.M15, 26, "09:30", "15:45"},
		{"regular m15 after DST", market.SyntheticGrid(market.RegularHours), "2026-03-09", market.M15, 26, "09:30", "15:45"},
		{"regular h1 from the clock hour", market.SyntheticGrid(market.RegularHours), "2026-03-09", market.H1, 7, "09:00", "15:00"},
		{"regular h4", market.SyntheticGrid(market.RegularHours), "2026-03-09", market.H4, 2, "08:00", "12:00"},
		{"early close m15", market.SyntheticGrid(market.RegularHours), "2026-11-27", market.M15, 14, "09:30", "12:45"},
		{"early close h1", market.SyntheticGrid(market.RegularHours), "2026-11-27", market.H1, 4, "09:00", "12:00"},
		{"alpaca extended m15", market.AlpacaGrid(), "2026-03-09", market.M15, 64, "04:00", "19:45"},
		{"alpaca extended early close m15", market.AlpacaGrid(), "2026-11-27", market.M15, 52, "04:00", "16:45"},
		{"massive extended h1", market.MassiveGrid(), "2021-12-01", market.H1, 16, "04:00", "19:00"},
		{"extended h4", market.AlpacaGrid(), "2026-07-01", market.H4, 4, "04:00", "16:00"},
		{"d1 at midnight", market.AlpacaGrid(), "2026-07-01", market.D1, 1, "00:00", "00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := time.ParseInLocation(time.DateOnly, tt.date, ny)
			require.NoError(t, err)
			s, ok := cal.SessionOn(d.Date())
			require.True(t, ok)
			bars := tt.grid.SessionBars(cal, s, tt.tf)
			require.Len(t, bars, tt.n)
			require.Equal(t, tt.first, bars[0].In(ny).Format("15:04"))
			require.Equal(t, tt.last, bars[len(bars)-1].In(ny).Format("15:04"))
			for _, b := range bars {
				require.Equal(t, time.UTC, b.Location())
			}
		})
	}
}

// TestGridWeeks: the w1 bar is stamped on the week's Monday, holiday or not, and given once.
func TestGridWeeks(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	g := market.AlpacaGrid()
	got := g.Starts(cal, market.W1, utc("2026-01-12T00:00:00Z"), utc("2026-02-02T00:00:00Z"))
	require.Equal(t, []time.Time{utc("2026-01-12T05:00:00Z"), utc("2026-01-19T05:00:00Z"), utc("2026-01-26T05:00:00Z")}, got)
	// The MLK week's bar is returned by its first session, the Tuesday.
	tue, _ := cal.SessionOn(2026, time.January, 20)
	require.Equal(t, []time.Time{utc("2026-01-19T05:00:00Z")}, g.SessionBars(cal, tue, market.W1))
	wed, _ := cal.SessionOn(2026, time.January, 21)
	require.Empty(t, g.SessionBars(cal, wed, market.W1))
}

// TestGridAnyAndEndsSession: closed-market ranges hold no bar; a range ends a session when it
// holds the session's last bar and that bar has closed.
func TestGridAnyAndEndsSession(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	g := market.AlpacaGrid()
	tests := []struct {
		name      string
		tf        market.Timeframe
		from, to  string
		now       string
		any, ends bool
	}{
		{"weekend", market.M15, "2026-11-28T00:00:00Z", "2026-11-30T09:00:00Z", "2026-11-30T09:00:00Z", false, false},
		{"Thanksgiving", market.M15, "2026-11-26T05:00:00Z", "2026-11-27T05:00:00Z", "2026-11-27T05:00:00Z", false, false},
		{"night", market.H1, "2026-12-02T01:00:00Z", "2026-12-02T09:00:00Z", "2026-12-02T09:00:00Z", false, false},
		{"refresh inside the session", market.M15, "2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z", "2026-12-02T16:00:00Z", true, false},
		{"refresh after the close", market.M15, "2026-12-02T23:00:00Z", "2026-12-03T02:00:00Z", "2026-12-03T02:00:00Z", true, true},
		{"last bar still forming", market.M15, "2026-12-02T23:00:00Z", "2026-12-03T00:50:00Z", "2026-12-03T00:50:00Z", true, false},
		{"backfill of past sessions", market.H4, "2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z", "2026-12-04T00:00:00Z", true, true},
		{"empty", market.M15, "2026-12-02T15:00:00Z", "2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z", false, false},
		{"bad timeframe", "m5", "2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z", "2026-12-02T16:00:00Z", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			from, to, now := utc(tt.from), utc(tt.to), utc(tt.now)
			require.Equal(t, tt.any, g.Any(cal, tt.tf, from, to))
			require.Equal(t, tt.any, len(g.Starts(cal, tt.tf, from, to)) > 0, "Any agrees with Starts")
			require.Equal(t, tt.ends, g.EndsSession(cal, tt.tf, from, to, now))
		})
	}
}

func TestGridFor(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"alpaca", "massive"} {
		g, err := market.GridFor(name, 0)
		require.NoError(t, err)
		require.Equal(t, name, g.Provider)
		require.Equal(t, market.ExtendedHours, g.Hours)
		require.False(t, g.Exact)
	}
	g, err := market.GridFor("synthetic", market.RegularHours)
	require.NoError(t, err)
	require.True(t, g.Exact)
	_, err = market.GridFor("synthetic", 0)
	require.Error(t, err)
	_, err = market.GridFor("yahoo", market.RegularHours)
	require.ErrorContains(t, err, `"yahoo"`)
	h, err := market.ParseHours("extended")
	require.NoError(t, err)
	require.Equal(t, "extended", h.String())
	_, err = market.ParseHours("all")
	require.Error(t, err)
}

func TestLastClosedAndNextClose(t *testing.T) {
	t.Parallel()
	ny := market.NYSE()
	ext := market.AlpacaGrid()
	reg := market.SyntheticGrid(market.RegularHours)
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, ny.Location())
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name      string
		g         market.Grid
		tf        market.Timeframe
		now       string
		lastStart string // New York time
		nextEnd   string
	}{
		{"m15 mid-session", ext, market.M15, "2026-12-02 10:20", "2026-12-02 10:00", "2026-12-02 10:30"},
		{"m15 exactly at a boundary", ext, market.M15, "2026-12-02 10:30", "2026-12-02 10:15", "2026-12-02 10:45"},
		{"m15 overnight: the after-hours close, then the pre-market", ext, market.M15, "2026-12-02 23:00", "2026-12-02 19:45", "2026-12-03 04:15"},
		{"m15 regular hours over a weekend", reg, market.M15, "2026-12-05 12:00", "2026-12-04 15:45", "2026-12-07 09:45"},
		{"h1 Thanksgiving to the early close", reg, market.H1, "2026-11-26 12:00", "2026-11-25 15:00", "2026-11-27 10:00"},
		{"h1 early close", reg, market.H1, "2026-11-27 14:00", "2026-11-27 12:00", "2026-11-30 10:00"},
		{"h4 extended", ext, market.H4, "2026-12-02 13:00", "2026-12-02 08:00", "2026-12-02 16:00"},
		{"d1 closes at midnight", ext, market.D1, "2026-12-02 10:00", "2026-12-01 00:00", "2026-12-03 00:00"},
		{"d1 over a holiday", ext, market.D1, "2026-12-26 10:00", "2026-12-24 00:00", "2026-12-29 00:00"},
		{"w1", ext, market.W1, "2026-12-02 10:00", "2026-11-23 00:00", "2026-12-07 00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := at(tc.now)
			start, end, ok := tc.g.LastClosed(ny, tc.tf, now)
			if !ok || !start.Equal(at(tc.lastStart)) || end.After(now) || !end.Equal(ny.BarEnd(tc.tf, start)) {
				t.Fatalf("LastClosed = %v–%v %v, want start %v", start.In(ny.Location()), end.In(ny.Location()), ok, tc.lastStart)
			}
			next, ok := tc.g.NextClose(ny, tc.tf, now)
			if !ok || !next.Equal(at(tc.nextEnd)) {
				t.Fatalf("NextClose = %v %v, want %v", next.In(ny.Location()), ok, tc.nextEnd)
			}
		})
	}
	// market.Crypto closes a bar every quarter hour, day and night.
	c := market.Crypto()
	now := time.Date(2026, 12, 5, 3, 7, 0, 0, time.UTC)
	if s, _, ok := ext.LastClosed(c, market.M15, now); !ok || !s.Equal(time.Date(2026, 12, 5, 2, 45, 0, 0, time.UTC)) {
		t.Fatalf("crypto LastClosed = %v", s)
	}
	if e, ok := ext.NextClose(c, market.M15, now); !ok || !e.Equal(time.Date(2026, 12, 5, 3, 15, 0, 0, time.UTC)) {
		t.Fatalf("crypto NextClose = %v", e)
	}
}
