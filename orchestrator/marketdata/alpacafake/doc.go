// Package alpacafake is a local imitation of Alpaca's market data v2 stock bars API
// (GET /v2/stocks/bars, the multi-symbol shape) for tests and benchmarks. It never reaches the
// internet: a Server answers from marketdata.Synthetic, so it serves exactly the bars that
// `backfill dev` stores (the NYSE calendar, Alpaca's clock-aligned grid, extended hours by
// default, every grid start has a bar, no bar starting after the fake's clock).
//
// # What it imitates
//
// These behaviours follow Alpaca's documentation and the recorded bodies in
// shared/fixtures/providers (see its README):
//   - Authentication by the APCA-API-KEY-ID and APCA-API-SECRET-KEY headers; anything else is
//     401 {"code":40110000,"message":"request is not authorized"}.
//   - Query parameters symbols (comma-separated, duplicates collapse), timeframe (15Min, 1Hour,
//     4Hour, 1Day, 1Week), start and end (RFC 3339 or YYYY-MM-DD, both inclusive; end defaults
//     to now), limit (1…10000, default 1000), page_token, sort=asc; feed and adjustment are
//     accepted and ignored.
//   - The answer {"bars":{"AAPL":[{"t","o","h","l","c","v","n","vw"}…]…},"next_page_token":…}:
//     bars is {} when empty, a symbol without bars on the page is absent, symbols ascend and each
//     symbol's bars ascend in time, limit caps the bars of the page summed over all symbols, and
//     next_page_token is null on the last page and an opaque base64 string otherwise.
//   - Errors as {"code": <8 digits>, "message": "..."}: 400 40010001 for an invalid symbol
//     ("invalid symbol: SYM", the first in the request's order) or page token, 422 42210000 for
//     an invalid parameter ("invalid timeframe", "invalid limit", …), 414 for a request URI
//     longer than Config.MaxURL, 404 for any other path.
//   - A rate limit (Config.Rate per Config.Window, 200 a minute on Alpaca's free plan): 429
//     {"message":"too many requests."} with Retry-After, and X-RateLimit-Limit,
//     X-RateLimit-Remaining and X-RateLimit-Reset on every answer.
//
// # What it does not imitate
//
//   - Other endpoints: the legacy single-symbol /v2/stocks/{symbol}/bars, trades, quotes,
//     snapshots, latest bars, crypto and options. Crypto pairs (BTC/USD) are refused as invalid
//     symbols, as they are on the stock endpoint.
//   - sort=desc: refused with 422, so tokens only ever move forward.
//   - Minute, 30-minute and other timeframes or spellings (1Min, 1H, 1D, 15T): refused with 422.
//   - Real data: prices, volumes and the calendar of listings are synthetic (every symbol trades
//     every session, so there are no holes for intervals without a trade as on IEX, and no
//     unknown symbols). Alpaca has no trade count or VWAP in the synthetic bar, so n and vw are
//     derived from it: vw is the typical price (h+l+c)/3 and n is the volume divided by 80.
//   - adjustment, feed, asof and currency change nothing; there is no 403 for recent SIP data and
//     no nginx HTML 401.
//   - The exact rate-limit algorithm: Alpaca documents a rate per minute, not how it counts. The
//     fake keeps a sliding window over the requests it admitted, on its own clock. Requests that
//     fail validation (400, 401, 404, 414, 422) are answered before the limit is consulted and use
//     no slot, while Alpaca probably counts them.
//   - Bare dates: Alpaca does not document their time zone. The fake reads start=YYYY-MM-DD as
//     midnight New York time and end=YYYY-MM-DD as the end of that New York day, which matches
//     the recorded daily answers (start=end=2022-03-09 returns the bar stamped 05:00Z that day).
//   - The bar still forming is served once it has started (a bar stamped at or before the fake's
//     clock), as the synthetic provider does; its values are already final.
//
// # Use
//
//	fake, err := alpacafake.New(alpacafake.Config{Rate: 200, Now: clock})
//	url, err := fake.Start() // http://127.0.0.1:port
//	defer fake.Close()
//	// point marketdata.AlpacaConfig.BaseURL at url, KeyID "fake-key-id", SecretKey "fake-secret"
//
// Handler serves the same API on any http.Server or httptest.Server instead. Stats counts what
// was answered (requests, rate-limited, rejected, bars, empty and closed-market pages, the most
// requests seen in one window), for benchmarks that check how a client behaved.
package alpacafake
