package market

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // America/New_York even on a machine without a zoneinfo database
)

// LastPublishedYear is the last year whose NYSE holidays and early closes the exchange has
// published. Sessions after it are projected from the rules (Session.Projected).
const LastPublishedYear = 2028

// Regular and extended hours of a US equity session, in New York wall-clock time.
const (
	extOpenHour, extOpenMin     = 4, 0  // pre-market opens
	openHour, openMin           = 9, 30 // regular open
	closeHour                   = 16    // regular close
	earlyCloseHour              = 13    // regular close on an early-close day
	extCloseHour                = 20    // after-hours close
	earlyExtCloseHour           = 17    // after-hours close on an early-close day
	nyseTimeZone                = "America/New_York"
	mlkFirstYear, jnthFirstYear = 1998, 2022
)

// Session is one trading day. All instants are UTC.
type Session struct {
	// Date is the trading day: midnight New York time for stocks (midnight UTC for crypto). It
	// is also where the day's d1 bar is stamped.
	Date time.Time
	// Open and Close bound the regular session (09:30–16:00 ET, 09:30–13:00 on early closes).
	Open, Close time.Time
	// ExtOpen and ExtClose bound the extended session: pre-market from 04:00 ET to after-hours
	// until 20:00 ET (17:00 on early closes). For crypto they equal Open and Close.
	ExtOpen, ExtClose time.Time
	// Early marks a 13:00 ET early close.
	Early bool
	// Projected marks a session after LastPublishedYear: it follows the rules, but the
	// exchange has not published that year, so an added holiday or closure may remove it.
	Projected bool
}

// Day is the session's date as YYYY-MM-DD.
func (s Session) Day() string { return s.Date.Format(time.DateOnly) }

// Closure is a weekday on which the exchange is closed.
type Closure struct {
	Date time.Time // midnight New York time
	Name string
	// Unscheduled marks a closure announced at short notice (a national day of mourning, a
	// storm, an attack), which no rule could have predicted.
	Unscheduled bool
}

// dated is a calendar date with a note: a closure's name, or whether the day closes early.
type dated struct {
	y     int
	m     time.Month
	d     int
	name  string
	early bool
}

// unscheduled are the NYSE's full-day closures since 2000 that no holiday rule gives (NYSE
// press releases; the exchange's history of market closings).
func unscheduled() []dated {
	return []dated{
		{2001, time.September, 11, "September 11 attacks", false},
		{2001, time.September, 12, "September 11 attacks", false},
		{2001, time.September, 13, "September 11 attacks", false},
		{2001, time.September, 14, "September 11 attacks", false},
		{2004, time.June, 11, "National Day of Mourning for President Reagan", false},
		{2007, time.January, 2, "National Day of Mourning for President Ford", false},
		{2012, time.October, 29, "Hurricane Sandy", false},
		{2012, time.October, 30, "Hurricane Sandy", false},
		{2018, time.December, 5, "National Day of Mourning for President George H. W. Bush", false},
		{2025, time.January, 9, "National Day of Mourning for President Carter", false},
	}
}

// Calendar answers which days and hours a market trades. It is immutable and safe for
// concurrent use. The zero value is not usable: use NYSE, Crypto or For.
type Calendar struct {
	name   string
	loc    *time.Location
	crypto bool

	mu    sync.Mutex
	years map[int][]Closure // closures by year, computed once: planning asks for them often
}

// NYSE is the calendar of US equities (NYSE and Nasdaq share it).
func NYSE() *Calendar {
	loc, err := time.LoadLocation(nyseTimeZone)
	if err != nil {
		// time/tzdata is linked in: only a broken build gets here.
		panic(fmt.Sprintf("market: load %s: %v", nyseTimeZone, err))
	}
	return &Calendar{name: "XNYS", loc: loc, years: make(map[int][]Closure)}
}

// Crypto is the calendar of crypto pairs: they trade 24/7, one session per UTC day.
func Crypto() *Calendar { return &Calendar{name: "CRYPTO", loc: time.UTC, crypto: true} }

// For returns the calendar of a symbol: crypto pairs (BTC/USD, anything with a '/') trade
// around the clock, everything else on the NYSE calendar.
func For(symbol string) *Calendar {
	if IsCrypto(symbol) {
		return Crypto()
	}
	return NYSE()
}

// IsCrypto reports whether symbol names a crypto pair (BTC/USD).
func IsCrypto(symbol string) bool { return strings.Contains(symbol, "/") }

// Name is the market's identifier: "XNYS" or "CRYPTO".
func (c *Calendar) Name() string { return c.name }

// Location is the calendar's time zone: America/New_York, or UTC for crypto.
func (c *Calendar) Location() *time.Location { return c.loc }

// Crypto reports whether this is the around-the-clock calendar.
func (c *Calendar) Crypto() bool { return c.crypto }

// date is midnight of (y, m, d) in the calendar's zone, normalized (day 0 is the month's last).
func (c *Calendar) date(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, c.loc)
}

// Closed reports whether the market is closed all day on the calendar's date (y, m, d), and
// why: "Saturday", "Sunday", a holiday's name or an unscheduled closure's.
func (c *Calendar) Closed(y int, m time.Month, d int) (closed bool, why string) {
	if c.crypto {
		return false, ""
	}
	day := c.date(y, m, d)
	switch day.Weekday() {
	case time.Saturday, time.Sunday:
		return true, day.Weekday().String()
	}
	for _, h := range c.closures(day.Year()) {
		if h.Date.Equal(day) {
			return true, h.Name
		}
	}
	return false, ""
}

// SessionOn returns the session of the calendar's date (y, m, d), or false when the market is
// closed that day.
func (c *Calendar) SessionOn(y int, m time.Month, d int) (Session, bool) {
	day := c.date(y, m, d)
	if c.crypto {
		end := day.AddDate(0, 0, 1)
		return Session{Date: day, Open: day, Close: end, ExtOpen: day, ExtClose: end}, true
	}
	if closed, _ := c.Closed(day.Year(), day.Month(), day.Day()); closed {
		return Session{}, false
	}
	y, m, d = day.Date()
	at := func(h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, c.loc).UTC() }
	s := Session{
		Date:      day.UTC(),
		Open:      at(openHour, openMin),
		Close:     at(closeHour, 0),
		ExtOpen:   at(extOpenHour, extOpenMin),
		ExtClose:  at(extCloseHour, 0),
		Projected: y > LastPublishedYear,
	}
	if c.earlyClose(day) {
		s.Early = true
		s.Close = at(earlyCloseHour, 0)
		s.ExtClose = at(earlyExtCloseHour, 0)
	}
	return s, true
}

// SessionAt returns the session whose date is t's date in the calendar's zone.
func (c *Calendar) SessionAt(t time.Time) (Session, bool) {
	y, m, d := t.In(c.loc).Date()
	return c.SessionOn(y, m, d)
}

// Sessions returns, oldest first, the sessions whose extended span [ExtOpen, ExtClose)
// intersects [from, to). An empty range gives none.
func (c *Calendar) Sessions(from, to time.Time) []Session {
	if !to.After(from) {
		return nil
	}
	var out []Session
	// A session's extended span lies within its date, so walk the dates from's date to to's.
	y, m, d := from.In(c.loc).Date()
	for day := c.date(y, m, d); day.Before(to); day = c.date(day.Year(), day.Month(), day.Day()+1) {
		s, ok := c.SessionOn(day.Year(), day.Month(), day.Day())
		if ok && s.ExtClose.After(from) && s.ExtOpen.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// Next returns the first session whose extended span ends after t: the session in progress at
// t, or the next one. It looks at most a month ahead, far more than any closure has lasted.
func (c *Calendar) Next(t time.Time) (Session, bool) {
	ss := c.Sessions(t, t.AddDate(0, 1, 0))
	if len(ss) == 0 {
		return Session{}, false
	}
	return ss[0], true
}

// Previous returns the last session whose regular session opened at or before t (the session
// in progress at t, or the latest one before it). It looks at most a month back.
func (c *Calendar) Previous(t time.Time) (Session, bool) {
	ss := c.Sessions(t.AddDate(0, -1, 0), t.Add(time.Nanosecond))
	for i := len(ss) - 1; i >= 0; i-- {
		if !ss[i].Open.After(t) {
			return ss[i], true
		}
	}
	return Session{}, false
}

// BarEnd is where the tf bar starting at t ends: d1 and w1 bars at a midnight in the
// calendar's zone (a day or a week later, whatever DST does meanwhile), shorter bars after
// their duration.
func (c *Calendar) BarEnd(tf Timeframe, t time.Time) time.Time {
	switch tf {
	case D1:
		return t.In(c.loc).AddDate(0, 0, 1).UTC()
	case W1:
		return t.In(c.loc).AddDate(0, 0, 7).UTC()
	}
	return t.Add(tf.Duration())
}

// Closures lists the weekday closures of a year, in date order: the holidays the rules give
// and the unscheduled closures. Crypto has none.
func (c *Calendar) Closures(year int) []Closure {
	if c.crypto {
		return nil
	}
	return slices.Clone(c.closures(year))
}

// EarlyCloses lists the 13:00 early-close days of a year, in date order (midnight New York).
func (c *Calendar) EarlyCloses(year int) []time.Time {
	if c.crypto {
		return nil
	}
	var out []time.Time
	for day := c.date(year, time.January, 1); day.Year() == year; day = c.date(year, day.Month(), day.Day()+1) {
		if s, ok := c.SessionOn(year, day.Month(), day.Day()); ok && s.Early {
			out = append(out, day)
		}
	}
	return out
}

// closures returns the year's weekday closures, computed once per year.
func (c *Calendar) closures(year int) []Closure {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.years[year]
	if !ok {
		cs = c.computeClosures(year)
		c.years[year] = cs
	}
	return cs
}

// computeClosures computes the year's weekday closures. The NYSE rules: a holiday on a Saturday is
// observed on the Friday before, on a Sunday on the Monday after, except New Year's Day on a
// Saturday, which is not observed (the Friday before ends a year and a quarter).
func (c *Calendar) computeClosures(year int) []Closure {
	var out []Closure
	add := func(day time.Time, name string) {
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			out = append(out, Closure{Date: day, Name: name})
		}
	}
	observed := func(day time.Time) time.Time {
		switch day.Weekday() {
		case time.Saturday:
			return day.AddDate(0, 0, -1)
		case time.Sunday:
			return day.AddDate(0, 0, 1)
		}
		return day
	}
	if ny := c.date(year, time.January, 1); ny.Weekday() != time.Saturday {
		add(observed(ny), "New Year's Day")
	}
	if year >= mlkFirstYear {
		add(c.nthWeekday(year, time.January, time.Monday, 3), "Martin Luther King, Jr. Day")
	}
	add(c.nthWeekday(year, time.February, time.Monday, 3), "Washington's Birthday")
	add(c.easter(year).AddDate(0, 0, -2), "Good Friday")
	add(c.lastWeekday(year, time.May, time.Monday), "Memorial Day")
	if year >= jnthFirstYear {
		add(observed(c.date(year, time.June, 19)), "Juneteenth National Independence Day")
	}
	add(observed(c.date(year, time.July, 4)), "Independence Day")
	add(c.nthWeekday(year, time.September, time.Monday, 1), "Labor Day")
	add(c.nthWeekday(year, time.November, time.Thursday, 4), "Thanksgiving Day")
	add(observed(c.date(year, time.December, 25)), "Christmas Day")
	for _, u := range unscheduled() {
		if u.y == year {
			out = append(out, Closure{Date: c.date(u.y, u.m, u.d), Name: u.name, Unscheduled: true})
		}
	}
	// A Saturday New Year's Day of the next year would be observed on this year's Dec 31; the
	// rule above says it is not, so nothing crosses years.
	slices.SortFunc(out, func(a, b Closure) int { return a.Date.Compare(b.Date) })
	return out
}

// earlyClose reports the NYSE's 13:00 closes: the day after Thanksgiving; Christmas Eve on a
// weekday when Christmas is not observed that day; and the day before Independence Day when
// the holiday falls Tuesday to Friday (so July 3 is a Monday to Thursday). Exceptions follow
// in earlyCloseExceptions.
func (c *Calendar) earlyClose(day time.Time) bool {
	y := day.Year()
	for _, e := range earlyCloseExceptions() {
		if e.y == y && e.m == day.Month() && e.d == day.Day() {
			return e.early
		}
	}
	switch {
	case day.Equal(c.nthWeekday(y, time.November, time.Thursday, 4).AddDate(0, 0, 1)):
		return true
	case day.Month() == time.December && day.Day() == 24:
		wd := day.Weekday()
		return wd >= time.Monday && wd <= time.Thursday
	case day.Month() == time.July && day.Day() == 3:
		wd := day.Weekday()
		return wd >= time.Monday && wd <= time.Thursday
	}
	return false
}

// earlyCloseExceptions override the early-close rules for the years the exchange did
// otherwise: in 2002 Independence Day was a Thursday and the market closed early on Friday
// July 5 instead of on July 3.
func earlyCloseExceptions() []dated {
	return []dated{
		{2002, time.July, 3, "", false},
		{2002, time.July, 5, "", true},
	}
}

// nthWeekday is the n-th (1-based) weekday wd of the month.
func (c *Calendar) nthWeekday(y int, m time.Month, wd time.Weekday, n int) time.Time {
	first := c.date(y, m, 1)
	offset := (int(wd) - int(first.Weekday()) + 7) % 7
	return c.date(y, m, 1+offset+7*(n-1))
}

// lastWeekday is the last weekday wd of the month.
func (c *Calendar) lastWeekday(y int, m time.Month, wd time.Weekday) time.Time {
	last := c.date(y, m+1, 0)
	back := (int(last.Weekday()) - int(wd) + 7) % 7
	return c.date(y, m, last.Day()-back)
}

// easter is Easter Sunday of the Gregorian calendar (the anonymous Gregorian algorithm).
func (c *Calendar) easter(y int) time.Time {
	a := y % 19
	b, k := y/100, y%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, l := k/4, k%4
	m := (32 + 2*e + 2*i - h - l) % 7
	n := (a + 11*h + 22*m) / 451
	month := (h + m - 7*n + 114) / 31
	day := (h+m-7*n+114)%31 + 1
	return c.date(y, time.Month(month), day)
}
