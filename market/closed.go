package market

import "time"

// LastClosed returns the newest tf bar of the grid that had closed by t (its end at or before
// t): its start and end. ok is false when no such bar lies within the last few weeks (a
// calendar with no session then). It is what a fetch at t can bring at most, and so the
// reference of freshness.
func (g Grid) LastClosed(cal *Calendar, tf Timeframe, t time.Time) (start, end time.Time, ok bool) {
	if !tf.Valid() {
		return time.Time{}, time.Time{}, false
	}
	// Three weeks back holds a closed w1 bar through the longest closure there has been.
	ss := cal.Sessions(t.AddDate(0, 0, -21), t.AddDate(0, 0, 1))
	for i := len(ss) - 1; i >= 0; i-- {
		bars := g.SessionBars(cal, ss[i], tf)
		for j := len(bars) - 1; j >= 0; j-- {
			if e := cal.BarEnd(tf, bars[j]); !e.After(t) {
				return bars[j], e, true
			}
		}
	}
	return time.Time{}, time.Time{}, false
}

// NextClose returns the end of the first tf bar of the grid that closes after t: when the next
// bar becomes complete, so a refresh after it can bring a new bar. ok is false when none does
// within the next month.
func (g Grid) NextClose(cal *Calendar, tf Timeframe, t time.Time) (end time.Time, ok bool) {
	if !tf.Valid() {
		return time.Time{}, false
	}
	// A w1 or d1 bar closing after t may have started up to a week before it.
	for _, s := range cal.Sessions(t.AddDate(0, 0, -8), t.AddDate(0, 1, 0)) {
		for _, b := range g.SessionBars(cal, s, tf) {
			if e := cal.BarEnd(tf, b); e.After(t) {
				return e, true
			}
		}
	}
	return time.Time{}, false
}
