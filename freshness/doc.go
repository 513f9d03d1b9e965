// Package freshness measures how far the newest stored bar lags the newest closed bar the
// calendar says exists, per timeframe, and exposes it as Prometheus metrics, sampled
// periodically.
//
// Completeness (package completeness) says whether the sessions that were fetched hold their
// bars; it says nothing when the fetches stop. Freshness is the other half: are the fetches
// keeping up with the market?
//
// # The lag of one definition
//
// For an enabled job definition (job_definitions.enabled) of symbol S and timeframe tf, let U be
// coverage_status.to_ts of (S, tf): the upper bound of the covered union, the newest instant its
// fetches reached. A fetch that found no bar still counts: the provider had nothing newer (IEX
// skips quarter hours without a trade), so a quiet symbol is not stale. On the provider's grid
// (Config.Grid) and the symbol's calendar (market.For: NYSE, or 24/7 for crypto pairs):
//
//   - L = the newest tf bar closed by now: (Ls, Le) = grid.LastClosed(cal, tf, now);
//   - F = the newest tf bar closed by U: (Fs, Fe) = grid.LastClosed(cal, tf, U);
//   - lag = 0 when U >= Le (everything that has closed was fetched after it closed), else
//     Le − Fe: the wall time between the newest bar the data could hold and the newest it does.
//     One bar behind in m15 is 900 s. Across a closed market the lag is still Le − Fe: an m15
//     series last fetched through yesterday's 20:00 close lags from then, night included.
//
// Because L comes from the calendar, a closed market does not age the data: at night, on a
// weekend or a holiday, a series fetched through the last close has lag 0. When no bar closed
// within the last weeks (LastClosed's ok is false for L) the lag is 0; when none closed before U
// but one did before now, the lag is Le − U.
//
// A definition whose (symbol, timeframe) has no coverage_status row, or one with a NULL to_ts, is
// not backfilled yet: it has no lag (it is not observed in the lag histogram) and is counted in
// backfill_freshness_unfetched_definitions instead; the orchestrator's backfill latency metrics
// follow it until its first bars. Freshness is a property of the stored series, so a (symbol,
// timeframe) with several enabled definitions (a fetch and a run_forecast one) counts once.
//
// # Metrics
//
// Per timeframe: backfill_freshness_lag_seconds (a histogram, one observation per fetched
// definition per sample, so its quantiles over a window are over definitions and samples),
// backfill_freshness_worst_lag_seconds and backfill_freshness_unfetched_definitions (gauges, as
// of the last sample). Also backfill_freshness_samples_total,
// backfill_freshness_sample_failures_total and backfill_freshness_sample_duration_seconds. No
// label names a symbol; Report.Worst's symbol is for logs and tests. Every process samples the
// same database, so every replica reports the same values: aggregate with max. The alert
// BackfillDataStale (deploy/prometheus/alerts.yml) watches the m15 and h1 worst lags.
//
// # One clock and the cost
//
// Config.Now, when set, is the clock; nil means the database's clock, read in the same statement
// as the rows, so "now" and U are of one clock. A sample is one statement (sql/sample.sql: the
// enabled definitions with their coverage's to_ts) and computation in Go. The calendar's answers
// are remembered per (calendar, timeframe, minute): bar ends fall on whole minutes, so every
// instant of one minute has the same newest closed bar; the answers of one sample are kept for the
// next, so tens of thousands of definitions cost one calendar walk per distinct minute their
// fetches reached since the previous sample. BenchmarkEvaluate: 30,000 definitions whose fetches
// reached 30,000 instants of one day take 100–200 ms the first time and about 6 ms after, on one
// core.
package freshness
