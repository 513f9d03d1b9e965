package freshness

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

// newYork is the NYSE calendar's zone.
var newYork = market.NYSE().Location()

// ny is an instant of 2026 on the New York wall clock.
func ny(month time.Month, day, hour, minute int) time.Time {
	return time.Date(2026, month, day, hour, minute, 0, 0, newYork).UTC()
}

// session is the tests' clock: Wednesday 2026-12-02 10:20 New York (15:20Z), inside the regular
// session. The newest m15 bar closed by then is 10:00–10:15, the newest h1 bar 09:00–10:00.
var session = ny(time.December, 2, 10, 20)

func lastEndOn(cal *market.Calendar, grid market.Grid, tf market.Timeframe) lastEndFunc {
	return func(t time.Time) (time.Time, bool) {
		_, end, ok := grid.LastClosed(cal, tf, t)
		return end, ok
	}
}

func TestLag(t *testing.T) {
	t.Parallel()
	nyse, crypto := market.NYSE(), market.Crypto()
	extended, regular := market.AlpacaGrid(), market.SyntheticGrid(market.RegularHours)
	for _, c := range []struct {
		name         string
		cal          *market.Calendar
		grid         market.Grid
		tf           market.Timeframe
		now, reached time.Time
		want         time.Duration
	}{
		{"m15 fetched after the newest close", nyse, extended, market.M15, session, ny(12, 2, 10, 16), 0},
		{"m15 fetched at the newest close", nyse, extended, market.M15, session, ny(12, 2, 10, 15), 0},
		{"m15 one bar behind", nyse, extended, market.M15, session, ny(12, 2, 10, 5), 900 * time.Second},
		{"m15 one bar behind, a second short", nyse, extended, market.M15, session, ny(12, 2, 10, 15).Add(-time.Second), 900 * time.Second},
		{"m15 two bars behind", nyse, extended, market.M15, session, ny(12, 2, 9, 59), 1800 * time.Second},
		{"m15 through the previous evening's close", nyse, extended, market.M15, session, ny(12, 1, 20, 0), 14*time.Hour + 15*time.Minute},
		{"m15 fetched beyond now", nyse, extended, market.M15, session, session.Add(time.Hour), 0},
		{"m15 at night, through the close", nyse, extended, market.M15, ny(12, 2, 23, 0), ny(12, 2, 20, 0), 0},
		{"m15 at night, short of the close", nyse, extended, market.M15, ny(12, 2, 23, 0), ny(12, 2, 19, 50), 900 * time.Second},
		{"m15 regular hours at night, through 16:00", nyse, regular, market.M15, ny(12, 2, 23, 0), ny(12, 2, 16, 0), 0},
		{"m15 extended hours at night, through 16:00", nyse, extended, market.M15, ny(12, 2, 23, 0), ny(12, 2, 16, 0), 4 * time.Hour},
		{"m15 on Saturday, through Friday's close", nyse, extended, market.M15, ny(12, 5, 12, 0), ny(12, 4, 20, 0), 0},
		{"m15 on Thanksgiving, through Wednesday's close", nyse, extended, market.M15, ny(11, 26, 12, 0), ny(11, 25, 20, 0), 0},
		{"m15 after an early close, through 17:00", nyse, extended, market.M15, ny(11, 27, 18, 0), ny(11, 27, 17, 0), 0},
		{"m15 Monday pre-market, through Friday's close", nyse, extended, market.M15, ny(12, 7, 4, 20), ny(12, 4, 20, 0), 56*time.Hour + 15*time.Minute},
		{"h1 fetched after the newest close", nyse, extended, market.H1, session, ny(12, 2, 10, 16), 0},
		{"h1 one bar behind", nyse, extended, market.H1, session, ny(12, 2, 9, 30), time.Hour},
		{"d1 through Tuesday's extended close", nyse, extended, market.D1, session, ny(12, 1, 20, 0), 24 * time.Hour},
		{"d1 through Tuesday's bar end", nyse, extended, market.D1, session, ny(12, 2, 0, 0), 0},
		{"crypto m15 two bars behind", crypto, extended, market.M15, session, time.Date(2026, 12, 2, 14, 50, 0, 0, time.UTC), 1800 * time.Second},
		{"crypto m15 on Saturday night", crypto, extended, market.M15, time.Date(2026, 12, 5, 23, 5, 0, 0, time.UTC),
			time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC), time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.want, lag(lastEndOn(c.cal, c.grid, c.tf), c.now, c.reached))
		})
	}
}

// TestLagWithoutClosedBar covers what the calendar cannot answer.
func TestLagWithoutClosedBar(t *testing.T) {
	t.Parallel()
	now := session
	never := func(time.Time) (time.Time, bool) { return time.Time{}, false }
	require.Zero(t, lag(never, now, now.Add(-time.Hour)), "nothing closed: nothing to lag")

	le := now.Add(-5 * time.Minute)
	onlyRecent := func(t time.Time) (time.Time, bool) {
		if t.Before(le) {
			return time.Time{}, false
		}
		return le, true
	}
	require.Equal(t, 30*24*time.Hour, lag(onlyRecent, now, le.Add(-30*24*time.Hour)), "no bar closed before reached: from reached")
}

// TestClosesRemembersExactly: the remembered answers, asked at any second of a minute, are the
// grid's own, for every timeframe and both calendars, and the generations forget what is unused.
func TestClosesRemembersExactly(t *testing.T) {
	t.Parallel()
	grid := market.AlpacaGrid()
	c := newCloses(grid)
	rng := rand.New(rand.NewPCG(1, 2))
	from := ny(11, 20, 0, 0)
	span := int64(21 * 24 * time.Hour)
	for _, cal := range []*market.Calendar{market.NYSE(), market.Crypto()} {
		for _, tf := range market.Timeframes() {
			for range 300 {
				at := from.Add(time.Duration(rng.Int64N(span)))
				// Ask the second before, at and after a whole minute too: the edges of the key.
				for _, tt := range []time.Time{at, at.Truncate(time.Minute), at.Truncate(time.Minute).Add(-time.Nanosecond)} {
					_, wantEnd, wantOK := grid.LastClosed(cal, tf, tt)
					end, ok := c.lastEnd(cal, tf, tt)
					require.Equal(t, wantOK, ok, "%s %s %s", cal.Name(), tf, tt)
					require.True(t, wantEnd.Equal(end), "%s %s %s: %s, want %s", cal.Name(), tf, tt, end, wantEnd)
				}
			}
		}
	}

	key := closeKey{calendar: "XNYS", tf: market.M15, minute: session.Unix() / 60}
	c.next()
	c.lastEnd(market.NYSE(), market.M15, session)
	c.next()
	require.Contains(t, c.prev, key, "kept one generation")
	c.next()
	require.NotContains(t, c.prev, key, "forgotten after a generation unused")
	require.NotContains(t, c.cur, key)
}

func TestNearestRank(t *testing.T) {
	t.Parallel()
	s := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Second
		}
		return out
	}
	for _, c := range []struct {
		ls       []time.Duration
		p50, p99 time.Duration
	}{
		{nil, 0, 0},
		{s(7), 7 * time.Second, 7 * time.Second},
		{s(0, 900, 1800, 51300), 900 * time.Second, 51300 * time.Second},
		{s(1, 2, 3, 4, 5), 3 * time.Second, 5 * time.Second},
	} {
		t.Run(fmt.Sprint(c.ls), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.p50, nearestRank(c.ls, 50))
			require.Equal(t, c.p99, nearestRank(c.ls, 99))
		})
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Second
	}
	require.Equal(t, 99*time.Second, nearestRank(hundred, 99))
	require.Equal(t, 50*time.Second, nearestRank(hundred, 50))
}

// BenchmarkEvaluate is a sample's computation for 30,000 series whose fetches reached as many
// different instants of the last day: the first sample walks the calendar for each distinct
// minute, the next ones reuse the answers.
func BenchmarkEvaluate(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	all := make([]series, 30000)
	for i := range all {
		reached := session.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
		sym := fmt.Sprintf("S%05d", i)
		if i%10 == 0 {
			sym += "/USD"
		}
		all[i] = series{symbol: sym, tf: market.Timeframes()[i%len(market.Timeframes())], fetched: true, reached: reached}
	}
	sampler := func() *Sampler {
		return &Sampler{nyse: market.NYSE(), crypto: market.Crypto(), closes: newCloses(market.AlpacaGrid())}
	}
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sampler().evaluate(session, all)
		}
	})
	b.Run("next", func(b *testing.B) {
		s := sampler()
		s.evaluate(session, all)
		b.ReportAllocs()
		for b.Loop() {
			s.evaluate(session, all)
		}
	})
}
