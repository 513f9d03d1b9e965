package market

import (
	"fmt"
	"time"
)

// Hours says which part of a session a provider's intraday bars (m15, h1, h4) cover.
type Hours int

// The two choices.
const (
	// RegularHours: bars from the 09:30 open to the close (16:00, or 13:00 on early closes).
	RegularHours Hours = iota + 1
	// ExtendedHours: bars from the 04:00 pre-market open to the after-hours close (20:00, or
	// 17:00 on early closes), as Alpaca's and Massive's bars endpoints return them.
	ExtendedHours
)

// String is "regular" or "extended".
func (h Hours) String() string {
	switch h {
	case RegularHours:
		return "regular"
	case ExtendedHours:
		return "extended"
	}
	return fmt.Sprintf("Hours(%d)", int(h))
}

// ParseHours reads "regular" or "extended".
func ParseHours(s string) (Hours, error) {
	switch s {
	case "regular":
		return RegularHours, nil
	case "extended":
		return ExtendedHours, nil
	}
	return 0, fmt.Errorf("hours %q: want regular or extended", s)
}

// H4Offset is where a provider's 4-hour bars start within a New York day: at midnight New York
// time plus H4Offset, then every four hours (00:00, 04:00, 08:00, 12:00, 16:00, 20:00 ET with
// the default 0, so the extended session 04:00–20:00 is exactly four bars). Neither Alpaca's
// nor Massive's documentation says how they align 4-hour bars and no recorded 4-hour answer
// exists (../shared/fixtures/providers/README.md); this is the assumption, in one place.
const H4Offset = 0 * time.Hour

// WeekStart is the weekday whose New York midnight stamps a week's w1 bar, whether or not that
// day is a session (a Monday holiday still stamps the week's bar on Monday). Assumed for both
// providers; weekly bars follow the daily convention of midnight New York time.
const WeekStart = time.Monday

// Grid is one provider's bar grid: which bar start times it can return for a session.
//
// Intraday bars align to the New York wall clock (Alpaca and Massive align hours to the clock:
// the Massive hourly bar stamped 09:00 ET holds the 09:30 open): m15 on the quarter hour, h1
// on the hour, h4 every four hours from H4Offset. A bar belongs to a session when its interval
// overlaps the session's hours (Hours). d1 bars are stamped at the session's date (midnight New
// York), w1 bars at WeekStart's midnight of a week with at least one session. Crypto pairs
// align every bar to the Unix epoch in UTC (d1 at 00:00Z, w1 on Mondays).
type Grid struct {
	// Provider is the provider's name, as stored in ohlc_bars_v2.provider.
	Provider string
	// Hours is the part of a session intraday bars cover.
	Hours Hours
	// Exact reports that the provider returns a bar at every start of the grid (the synthetic
	// provider does). Real feeds skip intervals without a trade (IEX often does), so a missing
	// start is a hole only for an exact grid.
	Exact bool
}

// AlpacaGrid is Alpaca's v2 bars grid: extended hours, clock-aligned.
func AlpacaGrid() Grid { return Grid{Provider: "alpaca", Hours: ExtendedHours} }

// MassiveGrid is Massive's (Polygon's) aggregates grid: extended hours, clock-aligned.
func MassiveGrid() Grid { return Grid{Provider: "massive", Hours: ExtendedHours} }

// SyntheticGrid is the synthetic provider's grid: Alpaca's alignment, a bar at every start, in
// the given hours.
func SyntheticGrid(hours Hours) Grid { return Grid{Provider: "synthetic", Hours: hours, Exact: true} }

// GridFor returns the grid of a provider by name. The synthetic provider's hours are a setting,
// so the caller gives them.
func GridFor(provider string, syntheticHours Hours) (Grid, error) {
	switch provider {
	case "alpaca":
		return AlpacaGrid(), nil
	case "massive":
		return MassiveGrid(), nil
	case "synthetic":
		if syntheticHours != RegularHours && syntheticHours != ExtendedHours {
			return Grid{}, fmt.Errorf("synthetic grid: hours %v: want regular or extended", syntheticHours)
		}
		return SyntheticGrid(syntheticHours), nil
	}
	return Grid{}, fmt.Errorf("no bar grid for provider %q (want alpaca, massive or synthetic)", provider)
}

// span is the part of s that intraday bars cover.
func (g Grid) span(s Session) (from, to time.Time) {
	if g.Hours == ExtendedHours {
		return s.ExtOpen, s.ExtClose
	}
	return s.Open, s.Close
}

// SessionBars lists, ascending and in UTC, the starts of the tf bars the provider can return
// for session s of cal. For w1 it gives the week's bar only for the week's first session.
func (g Grid) SessionBars(cal *Calendar, s Session, tf Timeframe) []time.Time {
	switch {
	case !tf.Valid():
		return nil
	case tf == D1:
		return []time.Time{s.Date}
	case tf == W1:
		week := weekStart(cal, s.Date)
		// The week's first session: no session between the week's start and s.
		for d := week.In(cal.loc); d.Before(s.Date); d = d.AddDate(0, 0, 1) {
			if _, ok := cal.SessionOn(d.Date()); ok {
				return nil
			}
		}
		return []time.Time{week}
	}
	from, to := g.span(s)
	if cal.crypto {
		from, to = s.Open, s.Close
		var out []time.Time
		for t := from.Truncate(tf.Duration()); t.Before(to); t = t.Add(tf.Duration()) {
			out = append(out, t)
		}
		return out
	}
	// Walk the New York wall clock, so a DST change (at 02:00, before any session) cannot shift
	// the grid: minute m of the day is time.Date(…, 0, m, …) in New York.
	step := int(tf.Duration() / time.Minute)
	offset := 0
	if tf == H4 {
		offset = int(H4Offset / time.Minute)
	}
	local := s.Date.In(cal.loc)
	y, mo, d := local.Date()
	var out []time.Time
	for m := offset; m < 24*60; m += step {
		t := time.Date(y, mo, d, 0, m, 0, 0, cal.loc).UTC()
		if t.Before(to) && t.Add(tf.Duration()).After(from) {
			out = append(out, t)
		}
	}
	return out
}

// Starts lists, ascending and in UTC, the starts in [from, to) of the tf bars the provider can
// return for a symbol on cal.
func (g Grid) Starts(cal *Calendar, tf Timeframe, from, to time.Time) []time.Time {
	if !to.After(from) || !tf.Valid() {
		return nil
	}
	var out []time.Time
	// A d1 or w1 stamp lies before its session's hours (at midnight, or days before on a
	// Monday holiday): look a week back and a day ahead, then keep the stamps in range.
	for _, s := range cal.Sessions(from.AddDate(0, 0, -7), to.AddDate(0, 0, 1)) {
		for _, t := range g.SessionBars(cal, s, tf) {
			if !t.Before(from) && t.Before(to) {
				out = append(out, t)
			}
		}
	}
	return out
}

// Any reports whether [from, to) holds the start of at least one tf bar the provider can
// return: a range that holds none covers only closed-market time and needs no request.
func (g Grid) Any(cal *Calendar, tf Timeframe, from, to time.Time) bool {
	if !to.After(from) || !tf.Valid() {
		return false
	}
	for _, s := range cal.Sessions(from.AddDate(0, 0, -7), to.AddDate(0, 0, 1)) {
		for _, t := range g.SessionBars(cal, s, tf) {
			if !t.Before(from) && t.Before(to) {
				return true
			}
		}
	}
	return false
}

// EndsSession reports whether [from, to) holds the last bar start of a session whose bars had
// all closed by now: a fetch of that range completes the session, so it can be judged.
func (g Grid) EndsSession(cal *Calendar, tf Timeframe, from, to, now time.Time) bool {
	if !to.After(from) || !tf.Valid() {
		return false
	}
	for _, s := range cal.Sessions(from.AddDate(0, 0, -7), to.AddDate(0, 0, 1)) {
		starts := g.SessionBars(cal, s, tf)
		if len(starts) == 0 {
			continue
		}
		last := starts[len(starts)-1]
		if !last.Before(from) && last.Before(to) && !now.Before(cal.BarEnd(tf, last)) {
			return true
		}
	}
	return false
}

// weekStart is WeekStart's midnight (in cal's zone) of the week holding day, in UTC.
func weekStart(cal *Calendar, day time.Time) time.Time {
	local := day.In(cal.loc)
	back := (int(local.Weekday()) - int(WeekStart) + 7) % 7
	y, m, d := local.Date()
	return time.Date(y, m, d-back, 0, 0, 0, 0, cal.loc).UTC()
}
