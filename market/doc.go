// Package market is the vocabulary the whole service shares about markets: the timeframes and
// what one bar of each is, the trading calendar (NYSE sessions with their holidays, 13:00 early
// closes and extended hours, DST through America/New_York; crypto pairs around the clock), and
// each provider's bar grid (which bar start times a provider can return within a session).
//
// It has no dependency on the database or on any provider's client: the planner, the providers,
// the completeness check, the control plane and the API all ask it the same questions and get
// the same answers.
//
// # The calendar's sources and horizon
//
// NYSE sessions follow the exchange's holiday rules (Rule 7.2 of the NYSE rules and the
// holiday calendar the exchange publishes at nyse.com/markets/hours-calendars) plus a table of
// the unscheduled closures since 2000 (closures below). From 2000 through LastPublishedYear
// (2028, the last year the exchange has published today) every session is "published": the
// rules reproduce the published calendar and the tests check them against it for 2023–2028 and
// against the closures. After LastPublishedYear the calendar is a rules-based projection: the
// same rules applied to later years, with Session.Projected set so that callers can say so; an
// unscheduled closure in those years is unknowable until it happens. Before 2000 the rules are
// applied too (MLK day from 1998 on) without any check.
//
// No library fits: github.com/rickar/cal/v2 (v2.1.32) has the US federal holidays but no NYSE
// calendar (no Good Friday closure, federal observance of a Saturday New Year's Day, Columbus
// and Veterans Day as holidays, no early closes).
package market
