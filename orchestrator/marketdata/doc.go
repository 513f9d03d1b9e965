// Package marketdata fetches OHLCV bars from market-data providers behind one small interface,
// Provider: Bars(ctx, Request) returns the bars of one symbol and timeframe (m15, h1, h4, d1,
// w1) whose start lies in the half-open range [From, To), following pagination to the end,
// sorted by start, de-duplicated, in UTC. The orchestrator chooses a provider by configuration
// and stores Name() as ohlc_bars_v2.provider.
//
// # Providers
//
// Synthetic ("synthetic") is offline and deterministic: each bar is a function of (symbol,
// timeframe, ts), so retries and overlapping slices agree. Stocks have bars only in the
// 09:30–16:00 New York session on weekdays (daily bars stamped at New York midnight, like
// Alpaca's); pairs with '/' (BTC/USD) trade 24/7 on the UTC grid. It can simulate latency and a
// seeded rate of retryable errors, and never returns a bar starting after its clock's now.
//
// Alpaca ("alpaca") calls GET /v2/stocks/bars (market data v2) with symbols, timeframe
// 15Min|1Hour|4Hour|1Day|1Week, RFC 3339 start and end, limit=10000, adjustment=raw, feed (iex
// by default), sort=asc, and the APCA-API-KEY-ID / APCA-API-SECRET-KEY headers. Facts handled:
//   - next_page_token is followed (sent back as page_token, every other parameter unchanged)
//     until it is null; a repeated token is an error, not a loop; tokens are opaque.
//   - end is inclusive: end=To is sent and bars starting at To are trimmed.
//   - bars may be a map by symbol (multi-symbol shape), {} or null when empty, an absent symbol
//     when that symbol has none, or an array (legacy single-symbol shape).
//   - t is RFC 3339 UTC, the start of the bar; daily and weekly bars are stamped at midnight New
//     York time (04:00Z in summer, 05:00Z in winter) and kept as sent.
//   - errors are {"code": 8 digits, "message": …}, or empty or HTML bodies (an nginx 401).
//
// Alpaca and Synthetic are also MultiProviders: BarsMulti fetches one timeframe and range for
// up to MaxSymbols symbols in one request (Alpaca's limit is summed over the symbols, and its
// pages are sorted by symbol then time, so a page may hold one symbol or span two). Alpaca's
// MaxSymbols follows from MaxURLBytes. One bad symbol never fails its batch: crypto pairs and
// empty symbols are rejected up front, and a 4xx other than 401/403/429 takes out the symbols
// its message names ("invalid symbol: XYZ") and sends the batch again, or, naming none, splits
// the batch in halves until the symbol refused alone is found. Those symbols are returned in
// MultiResult.Rejected; bad keys, 429, 5xx, network errors and malformed bodies fail the call.
//
// Massive ("massive", formerly Polygon.io) calls GET
// /v2/aggs/ticker/{T}/range/{mult}/{timespan}/{from}/{to}?adjusted=false&sort=asc&limit=50000
// with the apiKey query parameter. The default host is api.massive.com; api.polygon.io is the same
// service. Facts handled:
//   - t is epoch milliseconds; v may be in exponent form (6.42646396e+08) or fractional, so
//     volumes are float64.
//   - results may be null, [] or missing; next_url is present only when another page exists.
//     It carries no credentials: its path and cursor are followed on the configured host with
//     apiKey added again, so the key never goes to a host nobody configured.
//   - from/to are inclusive: intraday ranges are sent in epoch ms as [From, To−1ms], daily and
//     weekly ones as New York dates; the result is trimmed to [From, To).
//   - the body's status ("OK", "DELAYED", "ERROR", "NOT_AUTHORIZED") is not trusted; the HTTP
//     code decides, and the text comes from "error" or "message", whichever is present.
//
// # Rate limits and errors
//
// Real providers wait on a Limiter before every HTTP request (every page): by default an
// in-process token bucket (golang.org/x/time/rate) at the plan's rate, Alpaca 200/min and
// Massive 5/min; a deployment of several processes injects one shared budget instead. A 429's
// Retry-After (else X-RateLimit-Reset) and any answer with X-RateLimit-Remaining 0 and a future
// X-RateLimit-Reset pause the Limiter until then when it is a Pauser (the default one is). A
// provider never retries on its own; it returns an *Error whose Kind tells the caller what to
// do:
//
//	network error, timeout, 5xx, 408       Retryable
//	2xx with a malformed or truncated body Retryable (usually a cut connection)
//	429                                    RateLimited, RetryAfter from Retry-After (seconds or HTTP date),
//	                                       else from X-RateLimit-Reset (Unix seconds, Alpaca)
//	401, 403                               Permanent, message says to check the keys and the plan
//	400, 404, 422, other 4xx               Permanent (bad timeframe, unknown symbol)
//	unsupported timeframe, empty symbol    Permanent, before any request
//	ctx cancelled or past its deadline     the context's error, wrapped (not an *Error)
//
// Error messages are safe to store in job_runs.error_message: no keys, bounded length.
//
// # Metrics
//
// Each provider registers on an injected prometheus.Registerer (nil: none), labelled by
// provider: backfill_provider_request_duration_seconds (histogram, one observation per HTTP
// page), backfill_provider_errors_total{kind} (a call's failure, or one rejected symbol of a
// BarsMulti), backfill_provider_rate_limit_wait_seconds_total and
// backfill_provider_rate_limit_waits_total (Waits of a millisecond or more), and, by purpose
// (backfill, refresh, repair; from Request.Purpose, empty or unknown counting as backfill),
// backfill_provider_requests_total{purpose} (HTTP pages sent; simulated pages for synthetic)
// and backfill_provider_zero_bar_requests_total{purpose} (successful pages without a bar).
// Several providers may share one registry.
package marketdata
