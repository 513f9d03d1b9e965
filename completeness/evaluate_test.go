package completeness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// stored is the Days a complete backfill of [from, now) on grid leaves, keyed as Evaluate reads
// them, minus the dates in drop.
func stored(cal *market.Calendar, grid market.Grid, tf market.Timeframe, from, now time.Time, drop ...string) map[string]Day {
	out := map[string]Day{}
	for _, t := range grid.Starts(cal, tf, from, now) {
		d := t.In(cal.Location()).Format(time.DateOnly)
		day := out[d]
		if day.N == 0 {
			day.First = t
		}
		day.N++
		day.Last = t
		out[d] = day
	}
	for _, d := range drop {
		delete(out, d)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	nyse, crypto := market.NYSE(), market.Crypto()
	exact, alpaca := market.SyntheticGrid(market.RegularHours), market.AlpacaGrid()
	// Friday 2026-12-04 22:00Z, after the regular close; 8 days back is Thursday 11-26 22:00Z:
	// sessions 11-27 (early close), 11-30 … 12-04.
	now := ts("2026-12-04T22:00:00Z")
	window := func(days int) Span { return Span{From: now.Add(-time.Duration(days) * 24 * time.Hour), To: now} }
	all := []Span{window(8)}
	type hole struct {
		date, kind      string
		expected, found int
	}
	tests := []struct {
		name                                    string
		cal                                     *market.Calendar
		grid                                    market.Grid
		in                                      Input
		now                                     time.Time
		expected, fetched, complete, suspicious int
		holes                                   []hole
	}{
		{name: "complete", cal: nyse, grid: exact, now: now,
			in:       Input{Timeframe: market.M15, WindowDays: 8, Covered: all, Days: stored(nyse, exact, market.M15, window(8).From, now)},
			expected: 6, fetched: 6, complete: 6},
		{name: "a session deleted", cal: nyse, grid: exact, now: now,
			in:       Input{Timeframe: market.M15, WindowDays: 8, Covered: all, Days: stored(nyse, exact, market.M15, window(8).From, now, "2026-12-02")},
			expected: 6, fetched: 6, complete: 5, holes: []hole{{"2026-12-02", KindMissing, 26, 0}}},
		{name: "the early close deleted", cal: nyse, grid: exact, now: now,
			in:       Input{Timeframe: market.M15, WindowDays: 8, Covered: all, Days: stored(nyse, exact, market.M15, window(8).From, now, "2026-11-27")},
			expected: 6, fetched: 6, complete: 5, holes: []hole{{"2026-11-27", KindMissing, 14, 0}}},
		{name: "a bar missing on an exact grid", cal: nyse, grid: exact, now: now,
			in: func() Input {
				d := stored(nyse, exact, market.M15, window(8).From, now)
				day := d["2026-12-01"]
				day.N--
				d["2026-12-01"] = day
				return Input{Timeframe: market.M15, WindowDays: 8, Covered: all, Days: d}
			}(),
			expected: 6, fetched: 6, complete: 5, holes: []hole{{"2026-12-01", KindPartial, 26, 25}}},
		{name: "not fetched, a failed run", cal: nyse, grid: exact, now: now,
			in: Input{Timeframe: market.M15, WindowDays: 8, Covered: []Span{{From: window(8).From, To: ts("2026-12-03T00:00:00Z")}},
				Failed: []Span{{From: ts("2026-12-03T00:00:00Z"), To: now}},
				Days:   stored(nyse, exact, market.M15, window(8).From, ts("2026-12-03T00:00:00Z"))},
			expected: 6, fetched: 4, complete: 4, holes: []hole{{"2026-12-03", KindFailed, 26, 0}, {"2026-12-04", KindFailed, 26, 0}}},
		{name: "not fetched, a run pending (and one failed)", cal: nyse, grid: exact, now: now,
			in: Input{Timeframe: market.M15, WindowDays: 8, Covered: []Span{{From: window(8).From, To: ts("2026-12-03T00:00:00Z")}},
				Pending: []Span{{From: ts("2026-12-03T00:00:00Z"), To: now}}, Failed: []Span{{From: ts("2026-12-03T00:00:00Z"), To: now}},
				Days: stored(nyse, exact, market.M15, window(8).From, ts("2026-12-03T00:00:00Z"))},
			expected: 6, fetched: 4, complete: 4},
		{name: "the session in progress is not judged", cal: nyse, grid: exact, now: ts("2026-12-04T17:00:00Z"),
			in:       Input{Timeframe: market.M15, WindowDays: 8, Covered: []Span{{From: ts("2026-11-26T17:00:00Z"), To: ts("2026-12-04T17:00:00Z")}}},
			expected: 5, fetched: 5, complete: 0,
			holes: []hole{{"2026-11-27", KindMissing, 14, 0}, {"2026-11-30", KindMissing, 26, 0}, {"2026-12-01", KindMissing, 26, 0},
				{"2026-12-02", KindMissing, 26, 0}, {"2026-12-03", KindMissing, 26, 0}}},
		{name: "a window starting mid-session counts the starts inside it", cal: nyse, grid: exact, now: ts("2026-12-04T18:00:00Z"),
			// 7 days back is Friday 11-27 18:00Z, the early close itself: nothing of it is left.
			in:       Input{Timeframe: market.M15, WindowDays: 7, Covered: []Span{{From: ts("2026-11-27T18:00:00Z"), To: ts("2026-12-04T18:00:00Z")}}, Days: stored(nyse, exact, market.M15, ts("2026-11-27T18:00:00Z"), ts("2026-12-04T18:00:00Z"))},
			expected: 4, fetched: 4, complete: 4},
		{name: "a real feed: one bar is a complete session", cal: nyse, grid: alpaca, now: now,
			in: Input{Timeframe: market.M15, WindowDays: 8, Covered: all, Days: map[string]Day{
				"2026-11-27": {N: 1, First: ts("2026-11-27T15:00:00Z"), Last: ts("2026-11-27T15:00:00Z")},
				"2026-11-30": {N: 3, First: ts("2026-11-30T09:00:00Z"), Last: ts("2026-11-30T20:00:00Z")},
				"2026-12-01": {N: 2, First: ts("2026-12-01T08:00:00Z"), Last: ts("2026-12-01T15:00:00Z")}, // 03:00 ET: outside
				"2026-12-02": {N: 40, First: ts("2026-12-02T09:00:00Z"), Last: ts("2026-12-03T00:45:00Z")},
				"2026-12-04": {N: 1, First: ts("2026-12-04T16:00:00Z"), Last: ts("2026-12-04T16:00:00Z")},
			}},
			// 12-04's after-hours run to 20:00 ET (01:00Z): not ended, not judged.
			expected: 5, fetched: 5, complete: 4, suspicious: 1, holes: []hole{{"2026-12-03", KindMissing, 64, 0}}},
		{name: "d1", cal: nyse, grid: exact, now: now,
			in:       Input{Timeframe: market.D1, WindowDays: 8, Covered: all, Days: stored(nyse, exact, market.D1, window(8).From, now, "2026-12-01")},
			expected: 5, fetched: 5, complete: 4, holes: []hole{{"2026-12-01", KindMissing, 1, 0}}},
		{name: "w1: only ended weeks", cal: nyse, grid: exact, now: now,
			in:       Input{Timeframe: market.W1, WindowDays: 21, Covered: []Span{window(21)}, Days: stored(nyse, exact, market.W1, window(21).From, now)},
			expected: 2, fetched: 2, complete: 2}, // the weeks of 11-16 and 11-23; 11-30's has not ended
		{name: "crypto around the clock", cal: crypto, grid: exact, now: ts("2026-12-07T00:00:00Z"),
			in: Input{Timeframe: market.H1, WindowDays: 2, Covered: []Span{{From: ts("2026-12-05T00:00:00Z"), To: ts("2026-12-07T00:00:00Z")}},
				Days: stored(crypto, exact, market.H1, ts("2026-12-05T00:00:00Z"), ts("2026-12-07T00:00:00Z"), "2026-12-06")},
			expected: 2, fetched: 2, complete: 1, holes: []hole{{"2026-12-06", KindMissing, 24, 0}}},
		{name: "an invalid timeframe", cal: nyse, grid: exact, now: now, in: Input{Timeframe: "m5", WindowDays: 8}},
		{name: "no window", cal: nyse, grid: exact, now: now, in: Input{Timeframe: market.M15}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := Evaluate(tt.cal, tt.grid, tt.in, tt.now)
			require.Equal(t, []int{tt.expected, tt.fetched, tt.complete, tt.suspicious}, []int{v.Expected, v.Fetched, v.Complete, v.Suspicious})
			var got []hole
			for _, h := range v.Holes {
				got = append(got, hole{h.Date, h.Hole, h.Expected, h.Found})
				require.True(t, h.Range.From.Before(h.Range.To))
			}
			require.Equal(t, tt.holes, got)
			if tt.expected == 0 {
				require.Equal(t, 1.0, v.Completeness())
			} else {
				require.InDelta(t, float64(tt.complete)/float64(tt.expected), v.Completeness(), 1e-9)
			}
		})
	}
}

// TestEvaluateHoleRange: a repair fetches from the session's first bar start to the end of its
// last bar (09:30–16:00 ET in winter; 09:30–13:00 on an early close).
func TestEvaluateHoleRange(t *testing.T) {
	t.Parallel()
	cal, grid := market.NYSE(), market.SyntheticGrid(market.RegularHours)
	now := ts("2026-12-04T22:00:00Z")
	in := Input{Timeframe: market.M15, WindowDays: 8, Covered: []Span{{From: now.AddDate(0, 0, -8), To: now}}}
	v := Evaluate(cal, grid, in, now)
	require.Len(t, v.Holes, 6)
	require.Equal(t, Span{From: ts("2026-11-27T14:30:00Z"), To: ts("2026-11-27T18:00:00Z")}, v.Holes[0].Range)
	require.Equal(t, Span{From: ts("2026-12-02T14:30:00Z"), To: ts("2026-12-02T21:00:00Z")}, v.Holes[3].Range)
	d1 := Evaluate(cal, grid, Input{Timeframe: market.D1, WindowDays: 8, Covered: in.Covered}, now)
	require.Equal(t, Span{From: ts("2026-11-27T05:00:00Z"), To: ts("2026-11-28T05:00:00Z")}, d1.Holes[0].Range)
}

func TestMerge(t *testing.T) {
	t.Parallel()
	sessions := []SessionCheck{{Date: "a"}, {Date: "b"}, {Date: "c"}, {Date: "d"}}
	h := func(date string, from, to int) HoleState {
		base := ts("2026-12-01T00:00:00Z")
		return HoleState{SessionCheck: SessionCheck{Date: date, Range: Span{From: base.Add(time.Duration(from) * time.Hour), To: base.Add(time.Duration(to) * time.Hour)}}}
	}
	got := merge(sessions, []HoleState{h("d", 30, 31), h("a", 0, 1), h("b", 10, 11)})
	base := ts("2026-12-01T00:00:00Z")
	require.Equal(t, []Span{{From: base, To: base.Add(11 * time.Hour)}, {From: base.Add(30 * time.Hour), To: base.Add(31 * time.Hour)}}, got,
		"a and b are next to each other, d is not (c lies between)")
	require.Nil(t, merge(sessions, nil))
}
