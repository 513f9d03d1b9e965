package orchestrator

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
	return t.UTC()
}

func TestSlices(t *testing.T) {
	t.Parallel()
	week := 7 * 24 * time.Hour
	tests := []struct {
		name     string
		size     time.Duration
		from, to string
		want     [][2]string
	}{
		{"empty range", week, "2026-11-20T00:00:00Z", "2026-11-20T00:00:00Z", nil},
		{"reversed range", week, "2026-11-21T00:00:00Z", "2026-11-20T00:00:00Z", nil},
		{"inside one slice", week, "2026-11-20T01:00:00Z", "2026-11-20T02:00:00Z",
			[][2]string{{"2026-11-19T00:00:00Z", "2026-11-26T00:00:00Z"}}},
		{"epoch grid: weeks run Thursday to Thursday", week, "2026-11-19T00:00:00Z", "2026-11-26T00:00:00Z",
			[][2]string{{"2026-11-19T00:00:00Z", "2026-11-26T00:00:00Z"}}},
		{"end on a boundary takes no extra slice", week, "2026-11-18T23:00:00Z", "2026-11-26T00:00:00Z",
			[][2]string{{"2026-11-12T00:00:00Z", "2026-11-19T00:00:00Z"}, {"2026-11-19T00:00:00Z", "2026-11-26T00:00:00Z"}}},
		{"end just past a boundary opens a slice", week, "2026-11-19T00:00:00Z", "2026-11-26T00:00:01Z",
			[][2]string{{"2026-11-19T00:00:00Z", "2026-11-26T00:00:00Z"}, {"2026-11-26T00:00:00Z", "2026-12-03T00:00:00Z"}}},
		{"hourly grid", time.Hour, "2026-11-20T10:30:00Z", "2026-11-20T12:10:00Z",
			[][2]string{{"2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z"}, {"2026-11-20T11:00:00Z", "2026-11-20T12:00:00Z"}, {"2026-11-20T12:00:00Z", "2026-11-20T13:00:00Z"}}},
		{"before the epoch", 24 * time.Hour, "1969-12-31T12:00:00Z", "1970-01-01T01:00:00Z",
			[][2]string{{"1969-12-31T00:00:00Z", "1970-01-01T00:00:00Z"}, {"1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got [][2]string
			for _, s := range Slices(tt.size, ts(tt.from), ts(tt.to)) {
				got = append(got, [2]string{s.From.Format(time.RFC3339), s.To.Format(time.RFC3339)})
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestWindowIsOnTheGridWhateverNow(t *testing.T) {
	t.Parallel()
	sizes := smallSizes()
	require.NoError(t, sizes.validate())
	for _, tf := range market.Timeframes() {
		size := sizes[tf]
		for _, now := range []time.Time{ts("2026-11-26T15:07:13Z"), ts("2026-11-26T15:07:14Z"), ts("2027-03-01T00:00:00Z")} {
			got := Window(size, 30, now)
			require.NotEmpty(t, got, "%s at %s", tf, now)
			for i, s := range got {
				require.Zero(t, s.From.Unix()%int64(size/time.Second), "%s boundary %s on the grid", tf, s.From)
				require.Equal(t, size, s.To.Sub(s.From))
				if i > 0 {
					require.Equal(t, got[i-1].To, s.From, "slices are contiguous")
				}
			}
			require.False(t, got[0].From.After(now.AddDate(0, 0, -30)), "oldest slice reaches the window start")
			require.True(t, got[len(got)-1].Open(now), "newest slice is open")
			require.False(t, got[len(got)-1].From.After(now))
		}
	}
	// Two instants inside the same newest slice give the same newest slice.
	a := Window(sizes[market.H1], 30, ts("2026-11-26T15:07:13Z"))
	b := Window(sizes[market.H1], 30, ts("2026-11-26T15:59:13Z"))
	require.Equal(t, a[len(a)-1], b[len(b)-1])
}

func TestSliceSizesValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		patch func(SliceSizes)
		ok    bool
	}{
		{"defaults", func(SliceSizes) {}, true},
		{"missing", func(s SliceSizes) { delete(s, market.H4) }, false},
		{"zero", func(s SliceSizes) { s[market.H1] = 0 }, false},
		{"fractional second", func(s SliceSizes) { s[market.H1] = 1500 * time.Millisecond }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := smallSizes()
			tt.patch(s)
			if tt.ok {
				require.NoError(t, s.validate())
			} else {
				require.Error(t, s.validate())
			}
		})
	}
}

func TestSliceSizesFor(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		pageLimit int
		want      SliceSizes
	}{
		{"alpaca", 10000, SliceSizes{market.M15: 104 * day, market.H1: 416 * day, market.H4: 1666 * day, market.D1: 3650 * day, market.W1: 3650 * day}},
		{"massive", 50000, SliceSizes{market.M15: 520 * day, market.H1: 2083 * day, market.H4: 3650 * day, market.D1: 3650 * day, market.W1: 3650 * day}},
		{"unknown", 1000, SliceSizes{market.M15: 10 * day, market.H1: 41 * day, market.H4: 166 * day, market.D1: 1000 * day, market.W1: 3650 * day}},
		{"tiny page: at least a day", 5, SliceSizes{market.M15: day, market.H1: day, market.H4: day, market.D1: 5 * day, market.W1: 35 * day}},
		{"no page: treated as one bar", 0, SliceSizes{market.M15: day, market.H1: day, market.H4: day, market.D1: day, market.W1: 7 * day}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := SliceSizesFor(tt.pageLimit)
			require.Equal(t, tt.want, got)
			require.NoError(t, got.validate())
			for _, tf := range market.Timeframes() {
				if got[tf] < maxSliceDays*day && got[tf] > day {
					require.LessOrEqual(t, int(got[tf]/tf.Duration()), max(tt.pageLimit, 1), "%s: one slice of round-the-clock bars fits a page", tf)
				}
			}
		})
	}
	require.Equal(t, SliceSizesFor(1000), DefaultSliceSizes())
}

func TestFetchRange(t *testing.T) {
	t.Parallel()
	s := Slice{From: ts("2026-11-01T00:00:00Z"), To: ts("2026-12-01T00:00:00Z")}
	at := func(v string) *time.Time { x := ts(v); return &x }
	tests := []struct {
		name    string
		tf      market.Timeframe
		covered *time.Time
		want    Slice
	}{
		{"nothing covered", market.M15, nil, s},
		{"covered to mid-slice: from one bar before", market.M15, at("2026-11-26T15:07:00Z"), Slice{From: ts("2026-11-26T14:52:00Z"), To: s.To}},
		{"h1 bar", market.H1, at("2026-11-26T15:07:00Z"), Slice{From: ts("2026-11-26T14:07:00Z"), To: s.To}},
		{"covered less than a bar: whole slice", market.D1, at("2026-11-01T12:00:00Z"), s},
		{"covered whole: asked again, whole slice", market.M15, at("2026-12-01T00:00:00Z"), s},
		{"covered beyond: whole slice", market.M15, at("2026-12-05T00:00:00Z"), s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, fetchRange(s, tt.tf, tt.covered))
		})
	}
}
