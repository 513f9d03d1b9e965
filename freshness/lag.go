package freshness

import (
	"time"

	"github.com/symbolsync/backfill/market"
)

// lastEndFunc answers "where does the newest bar closed by t end", false when none closed within
// the calendar's horizon (market.Grid.LastClosed).
type lastEndFunc func(t time.Time) (end time.Time, ok bool)

// lag is the lag of data fetched through reached at clock now (the package doc): zero when
// reached is at or past the end of the newest bar closed by now, else from the end of the newest
// bar closed by reached to that end.
func lag(lastEnd lastEndFunc, now, reached time.Time) time.Duration {
	le, ok := lastEnd(now)
	if !ok || !reached.Before(le) {
		return 0
	}
	fe, ok := lastEnd(reached)
	if !ok || fe.After(le) {
		// Nothing closed within the horizon before reached: count from reached itself. (fe after
		// le cannot happen with reached before le; the guard keeps the lag from going negative.)
		return le.Sub(reached)
	}
	return le.Sub(fe)
}

// closeKey is one question to the calendar: a calendar, a timeframe and a minute.
type closeKey struct {
	calendar string
	tf       market.Timeframe
	minute   int64 // Unix minutes
}

// closeAnswer is LastClosed's end and ok.
type closeAnswer struct {
	end time.Time
	ok  bool
}

// closes remembers the grid's answers to "the newest bar closed by t". Every bar end falls on a
// whole minute (intraday bars start on whole minutes of the New York wall clock or of UTC and
// last whole minutes; d1 and w1 bars end at midnight, and New York's offsets are whole hours), so
// all instants of one minute share the answer, and the key is the minute. It keeps the answers of
// the current and of the previous generation: a sample reuses what the previous one asked, and
// what no sample asked for two generations is forgotten, so memory stays bounded by what two
// samples ask. Not safe for concurrent use.
type closes struct {
	grid      market.Grid
	cur, prev map[closeKey]closeAnswer
}

func newCloses(grid market.Grid) *closes {
	return &closes{grid: grid, cur: map[closeKey]closeAnswer{}, prev: map[closeKey]closeAnswer{}}
}

// next starts a new generation: the answers the last one did not use are dropped.
func (c *closes) next() {
	c.prev, c.cur = c.cur, make(map[closeKey]closeAnswer, len(c.cur))
}

// lastEnd is market.Grid.LastClosed's end for cal and tf at t, remembered.
func (c *closes) lastEnd(cal *market.Calendar, tf market.Timeframe, t time.Time) (time.Time, bool) {
	t = t.Truncate(time.Minute)
	k := closeKey{calendar: cal.Name(), tf: tf, minute: t.Unix() / 60}
	if a, ok := c.cur[k]; ok {
		return a.end, a.ok
	}
	a, ok := c.prev[k]
	if !ok {
		_, a.end, a.ok = c.grid.LastClosed(cal, tf, t)
	}
	c.cur[k] = a
	return a.end, a.ok
}

// of binds cal and tf: the lastEndFunc of one series.
func (c *closes) of(cal *market.Calendar, tf market.Timeframe) lastEndFunc {
	return func(t time.Time) (time.Time, bool) { return c.lastEnd(cal, tf, t) }
}
