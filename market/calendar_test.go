package market_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

func dates(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format(time.DateOnly)
	}
	return out
}

// TestNYSEPublishedCalendar checks the rules against the holidays and early closes the exchange
// published (nyse.com/markets/hours-calendars) for 2023–2028, written out by hand: observed
// dates (2026-07-03, 2027-06-18, 2027-07-05, 2027-12-24), New Year's Day 2028 on a Saturday
// (not observed on 2027-12-31) and the unscheduled closure of 2025-01-09.
func TestNYSEPublishedCalendar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		year     int
		closures []string
		early    []string
	}{
		{2023, []string{"2023-01-02", "2023-01-16", "2023-02-20", "2023-04-07", "2023-05-29", "2023-06-19", "2023-07-04", "2023-09-04", "2023-11-23", "2023-12-25"},
			[]string{"2023-07-03", "2023-11-24"}},
		{2024, []string{"2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27", "2024-06-19", "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25"},
			[]string{"2024-07-03", "2024-11-29", "2024-12-24"}},
		{2025, []string{"2025-01-01", "2025-01-09", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26", "2025-06-19", "2025-07-04", "2025-09-01", "2025-11-27", "2025-12-25"},
			[]string{"2025-07-03", "2025-11-28", "2025-12-24"}},
		{2026, []string{"2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19", "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25"},
			[]string{"2026-11-27", "2026-12-24"}},
		{2027, []string{"2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31", "2027-06-18", "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24"},
			[]string{"2027-11-26"}},
		{2028, []string{"2028-01-17", "2028-02-21", "2028-04-14", "2028-05-29", "2028-06-19", "2028-07-04", "2028-09-04", "2028-11-23", "2028-12-25"},
			[]string{"2028-07-03", "2028-11-24"}},
	}
	cal := market.NYSE()
	for _, tt := range tests {
		t.Run(time.Date(tt.year, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006"), func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, c := range cal.Closures(tt.year) {
				got = append(got, c.Date.Format(time.DateOnly))
				require.Equal(t, c.Date.Format(time.DateOnly) == "2025-01-09", c.Unscheduled, c.Name)
				require.NotEmpty(t, c.Name)
			}
			require.Equal(t, tt.closures, got)
			require.Equal(t, tt.early, dates(cal.EarlyCloses(tt.year)))
			for _, d := range tt.closures {
				day, _ := time.ParseInLocation(time.DateOnly, d, cal.Location())
				_, ok := cal.SessionOn(day.Date())
				require.False(t, ok, "no session on %s", d)
			}
		})
	}
	open, _ := cal.SessionOn(2027, time.December, 31)
	require.False(t, open.Early, "2027-12-31 is a full session: New Year's Day 2028 is not observed")
	require.Equal(t, "2027-12-31", open.Day())
}

// TestNYSEUnscheduledClosures: every full-day closure since 2000 that no rule gives.
func TestNYSEUnscheduledClosures(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	for _, d := range []string{"2001-09-11", "2001-09-12", "2001-09-13", "2001-09-14", "2004-06-11", "2007-01-02",
		"2012-10-29", "2012-10-30", "2018-12-05", "2025-01-09"} {
		day, err := time.ParseInLocation(time.DateOnly, d, cal.Location())
		require.NoError(t, err)
		closed, why := cal.Closed(day.Date())
		require.True(t, closed, d)
		require.NotEmpty(t, why, d)
	}
	for _, d := range []string{"2001-09-10", "2001-09-17", "2004-06-10", "2007-01-03", "2012-10-31", "2018-12-04", "2025-01-08", "2025-01-10"} {
		day, _ := time.ParseInLocation(time.DateOnly, d, cal.Location())
		_, ok := cal.SessionOn(day.Date())
		require.True(t, ok, "%s trades", d)
	}
}

// TestNYSESessionHours: regular and extended hours in UTC across the DST change and on an early
// close; the session's date is midnight New York.
func TestNYSESessionHours(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	tests := []struct {
		date                           string
		open, close, extOpen, extClose string
		early                          bool
	}{
		{"2026-03-06", "2026-03-06T14:30:00Z", "2026-03-06T21:00:00Z", "2026-03-06T09:00:00Z", "2026-03-07T01:00:00Z", false}, // EST
		{"2026-03-09", "2026-03-09T13:30:00Z", "2026-03-09T20:00:00Z", "2026-03-09T08:00:00Z", "2026-03-10T00:00:00Z", false}, // EDT
		{"2026-11-27", "2026-11-27T14:30:00Z", "2026-11-27T18:00:00Z", "2026-11-27T09:00:00Z", "2026-11-27T22:00:00Z", true},
		{"2026-07-02", "2026-07-02T13:30:00Z", "2026-07-02T20:00:00Z", "2026-07-02T08:00:00Z", "2026-07-03T00:00:00Z", false},
	}
	for _, tt := range tests {
		day, _ := time.ParseInLocation(time.DateOnly, tt.date, cal.Location())
		s, ok := cal.SessionOn(day.Date())
		require.True(t, ok, tt.date)
		require.Equal(t, []time.Time{utc(tt.open), utc(tt.close), utc(tt.extOpen), utc(tt.extClose)},
			[]time.Time{s.Open, s.Close, s.ExtOpen, s.ExtClose}, tt.date)
		require.Equal(t, tt.early, s.Early, tt.date)
		require.True(t, s.Date.Equal(day), tt.date)
		require.False(t, s.Projected)
	}
}

func TestNYSESessionsNextPrevious(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	// Thanksgiving week 2026: Monday to Wednesday and the early close on Friday.
	var got []string
	for _, s := range cal.Sessions(utc("2026-11-23T05:00:00Z"), utc("2026-11-28T05:00:00Z")) {
		got = append(got, s.Day())
	}
	require.Equal(t, []string{"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27"}, got)
	require.Empty(t, cal.Sessions(utc("2026-11-28T05:00:00Z"), utc("2026-11-30T05:00:00Z")), "a weekend")
	require.Empty(t, cal.Sessions(utc("2026-11-24T12:00:00Z"), utc("2026-11-24T12:00:00Z")), "an empty range")
	// The boundaries are the extended session's: a range ending at ExtOpen or starting at ExtClose
	// misses it.
	s, _ := cal.SessionOn(2026, time.December, 2)
	require.Empty(t, cal.Sessions(s.ExtOpen.Add(-time.Hour), s.ExtOpen))
	require.Len(t, cal.Sessions(s.ExtOpen.Add(-time.Hour), s.ExtOpen.Add(time.Nanosecond)), 1)
	require.Empty(t, cal.Sessions(s.ExtClose, s.ExtClose.Add(time.Hour)))

	// Good Friday 2026-04-03: after Thursday's after-hours, the next session is Monday's; on
	// Saturday the previous one is Thursday's.
	next, ok := cal.Next(utc("2026-04-03T01:00:00Z"))
	require.True(t, ok)
	require.Equal(t, "2026-04-06", next.Day())
	prev, ok := cal.Previous(utc("2026-04-04T15:00:00Z"))
	require.True(t, ok)
	require.Equal(t, "2026-04-02", prev.Day())
	in, ok := cal.SessionAt(utc("2026-04-02T15:00:00Z"))
	require.True(t, ok)
	require.Equal(t, "2026-04-02", in.Day())
}

// TestNYSEProjection: after the last published year the rules go on, flagged.
func TestNYSEProjection(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	last, ok := cal.SessionOn(market.LastPublishedYear, time.December, 29)
	require.True(t, ok)
	require.False(t, last.Projected)
	s, ok := cal.SessionOn(2029, time.November, 23)
	require.True(t, ok)
	require.True(t, s.Projected)
	require.True(t, s.Early, "the day after Thanksgiving 2029")
	closed, why := cal.Closed(2029, time.November, 22)
	require.True(t, closed)
	require.Equal(t, "Thanksgiving Day", why)
}

func TestCrypto(t *testing.T) {
	t.Parallel()
	c := market.Crypto()
	require.True(t, market.For("BTC/USD").Crypto())
	require.False(t, market.For("AAPL").Crypto())
	for _, d := range []string{"2026-12-25", "2026-12-26", "2026-11-26"} {
		day, _ := time.Parse(time.DateOnly, d)
		s, ok := c.SessionOn(day.Date())
		require.True(t, ok, d)
		require.Equal(t, day, s.Date)
		require.Equal(t, day.AddDate(0, 0, 1), s.Close)
		require.Equal(t, s.Open, s.ExtOpen)
	}
	require.Empty(t, c.Closures(2026))
	require.Empty(t, c.EarlyCloses(2026))
	require.Len(t, c.Sessions(utc("2026-12-04T00:00:00Z"), utc("2026-12-11T00:00:00Z")), 7)
	bars := market.SyntheticGrid(market.RegularHours).Starts(c, market.H1, utc("2026-12-05T00:00:00Z"), utc("2026-12-07T00:00:00Z"))
	require.Len(t, bars, 48, "a weekend of hourly crypto bars")
}
