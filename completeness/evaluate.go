package completeness

import (
	"time"

	"github.com/symbolsync/backfill/market"
)

// Hole kinds, as stored in coverage_holes.kind.
const (
	KindMissing = "missing" // fetched, no bar
	KindPartial = "partial" // fetched, fewer bars than an exact grid returns
	KindFailed  = "failed"  // the run that should have fetched it failed for good
)

// Span is a half-open range of instants [From, To).
type Span struct {
	From, To time.Time
}

// contains reports whether [a, b] (both inclusive) lies inside s.
func (s Span) contains(a, b time.Time) bool { return !a.Before(s.From) && b.Before(s.To) }

// overlaps reports whether [a, b] (both inclusive) meets s.
func (s Span) overlaps(a, b time.Time) bool { return !b.Before(s.From) && a.Before(s.To) }

// Day is what is stored for one session date: the bar count and the first and last bar start.
type Day struct {
	N           int
	First, Last time.Time
}

// Input is everything the rule needs about one definition.
type Input struct {
	Timeframe  market.Timeframe
	WindowDays int
	// Covered are the fetched ranges (coverage_status.covered).
	Covered []Span
	// Pending are the ranges of the definition's queued and running runs.
	Pending []Span
	// Failed are the ranges of its runs that failed for good.
	Failed []Span
	// Days are the stored bars by session date (YYYY-MM-DD in the calendar's zone: the date of
	// the session's first bar start), counted from the window's start to now.
	Days map[string]Day
}

// SessionCheck is the verdict on one session.
type SessionCheck struct {
	Date     string // YYYY-MM-DD
	Expected int    // bar starts the provider can return for it inside the window
	Found    int    // bars stored for it
	Fetched  bool
	Complete bool
	// Suspicious: bars stored outside the session's bar starts (before the first or after the
	// last), which this provider should not return.
	Suspicious bool
	// Hole is the kind of hole ("" when none).
	Hole string
	// Range is what a repair fetches: from the first bar start to the end of the last bar.
	Range Span
}

// Verdict is the check of one definition at one instant.
type Verdict struct {
	Window                                  Span
	Sessions                                []SessionCheck // the ended sessions of the window, oldest first
	Expected, Fetched, Complete, Suspicious int
	Holes                                   []SessionCheck
}

// Evaluate applies the completeness rule (see the package doc) to one definition at now, on
// the symbol's calendar and the provider's grid.
func Evaluate(cal *market.Calendar, grid market.Grid, in Input, now time.Time) Verdict {
	now = now.UTC()
	v := Verdict{Window: Span{From: now.Add(-time.Duration(in.WindowDays) * 24 * time.Hour), To: now}}
	tf := in.Timeframe
	if !tf.Valid() || in.WindowDays <= 0 {
		return v
	}
	// A w1 bar is stamped up to a week before its first session.
	for _, s := range cal.Sessions(v.Window.From.AddDate(0, 0, -7), now) {
		// The session's starts inside the window. Whether it has ended is judged on all of them:
		// cut at now, a session in progress would look like a short one that ended.
		var starts []time.Time
		for _, t := range grid.SessionBars(cal, s, tf) {
			if !t.Before(v.Window.From) {
				starts = append(starts, t)
			}
		}
		if len(starts) == 0 || !ended(s, tf, starts, now) {
			continue
		}
		first, last := starts[0], starts[len(starts)-1]
		c := SessionCheck{
			Date:     first.In(cal.Location()).Format(time.DateOnly),
			Expected: len(starts),
			Range:    Span{From: first, To: cal.BarEnd(tf, last)},
		}
		day := in.Days[c.Date]
		c.Found = day.N
		c.Suspicious = day.N > 0 && (day.First.Before(first) || day.Last.After(last))
		for _, r := range in.Covered {
			if r.contains(first, last) {
				c.Fetched = true
				break
			}
		}
		if grid.Exact {
			c.Complete = day.N == len(starts) && day.First.Equal(first) && day.Last.Equal(last)
		} else {
			c.Complete = day.N > 0
		}
		switch {
		case c.Fetched && !c.Complete && day.N == 0:
			c.Hole = KindMissing
		case c.Fetched && !c.Complete:
			c.Hole = KindPartial
		case !c.Fetched && !overlapsAny(in.Pending, first, last) && overlapsAny(in.Failed, first, last):
			c.Hole = KindFailed
		}
		v.Expected++
		if c.Fetched {
			v.Fetched++
			if c.Complete {
				v.Complete++
			}
		}
		if c.Suspicious {
			v.Suspicious++
		}
		if c.Hole != "" {
			v.Holes = append(v.Holes, c)
		}
		v.Sessions = append(v.Sessions, c)
	}
	return v
}

// Completeness is Complete / Expected, 1 when nothing is expected.
func (v Verdict) Completeness() float64 {
	if v.Expected == 0 {
		return 1
	}
	return float64(v.Complete) / float64(v.Expected)
}

// ended reports whether the session's last bar in the window had closed by now. A d1 bar is
// final when the session's extended hours are over, a w1 bar when its week is.
func ended(s market.Session, tf market.Timeframe, starts []time.Time, now time.Time) bool {
	switch tf {
	case market.D1:
		return !now.Before(s.ExtClose)
	case market.W1:
		return !now.Before(starts[0].AddDate(0, 0, 7))
	}
	return !now.Before(starts[len(starts)-1].Add(tf.Duration()))
}

func overlapsAny(spans []Span, a, b time.Time) bool {
	for _, s := range spans {
		if s.overlaps(a, b) {
			return true
		}
	}
	return false
}
