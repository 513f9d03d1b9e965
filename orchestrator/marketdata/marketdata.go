package marketdata

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/symbolsync/backfill/market"
)

// Bar is one OHLCV bar. Volume is a float: Massive writes volumes in exponent form
// (6.42646396e+08) and crypto volumes are fractional.
type Bar struct {
	TS                             time.Time // start of the bar, UTC
	Open, High, Low, Close, Volume float64
}

// Request asks for the bars of one symbol and timeframe whose start lies in the half-open
// range [From, To). Providers whose API treats the end as inclusive (Alpaca, Massive) trim
// bars starting at or after To, so adjacent slices never share a bar.
type Request struct {
	Symbol    string
	Timeframe market.Timeframe
	From, To  time.Time
	// Purpose says why the bars are wanted, for the request metrics: PurposeBackfill (the
	// default when empty), PurposeRefresh or PurposeRepair.
	Purpose string
}

// Why a request is made: the label of the per-purpose request metrics.
const (
	PurposeBackfill = "backfill" // bars of a range never fetched: first bars and history
	PurposeRefresh  = "refresh"  // the open slice again, after a bar closed
	PurposeRepair   = "repair"   // a hole the completeness check found
)

// MultiRequest asks for the bars of several symbols of one timeframe and one range
// [From, To), in as few provider requests as the provider allows.
type MultiRequest struct {
	Symbols   []string // distinct, as stored (the answer is keyed by these spellings)
	Timeframe market.Timeframe
	From, To  time.Time
	Purpose   string // as in Request
}

// MultiResult is a multi-symbol answer.
type MultiResult struct {
	// Bars holds, per requested symbol that is not in Rejected, its bars in [From, To),
	// sorted and unique by TS, in UTC. A symbol the provider answered nothing for (no trades,
	// or a symbol it does not know but does not refuse) has no entry or an empty one.
	Bars map[string][]Bar
	// Rejected holds the symbols the provider refused (a 4xx naming the symbol, or one that
	// a request for that symbol alone still gets): each with its permanent *Error. The rest
	// of the batch is answered in Bars: one bad symbol never fails its batch-mates.
	Rejected map[string]error
}

// MultiProvider is a Provider that serves many symbols per request (Alpaca's
// GET /v2/stocks/bars?symbols=A,B,…, the limit summed over all of them).
type MultiProvider interface {
	Provider
	// BarsMulti fetches req. A returned error concerns the whole batch (network, 5xx, 429,
	// bad keys) and is classified like Bars' errors; symbols refused alone are in Rejected.
	BarsMulti(ctx context.Context, req MultiRequest) (MultiResult, error)
	// MaxSymbols is how many symbols one request may name (bounded by the URL length).
	MaxSymbols() int
}

// Limiter paces a provider's requests: Wait returns when one request may be sent, or the
// context's error. The default is an in-process token bucket at the configured rate; a
// deployment of several processes injects one shared through the database (package budget).
type Limiter interface {
	Wait(ctx context.Context) error
}

// Pauser is a Limiter that can hold every request back until a given time, when the provider
// said so (Retry-After on a 429, X-RateLimit-Remaining 0 until X-RateLimit-Reset).
type Pauser interface {
	Pause(ctx context.Context, until time.Time)
}

// Provider fetches bars from one market-data source.
//
// Bars follows pagination to the end and returns the bars sorted by TS ascending,
// de-duplicated by TS, with TS in UTC, all inside [From, To). An empty range (To not after
// From) yields no bars and no error; zero bars for nights, weekends and holidays are a normal
// answer. Failures are *Error values (classify them with IsRetryable, IsPermanent,
// IsRateLimited and RetryAfter), except that when ctx ends the cause is returned wrapped
// (errors.Is(err, context.Canceled) or context.DeadlineExceeded), so shutdowns are not
// mistaken for provider faults.
//
// Implementations are safe for concurrent use.
type Provider interface {
	// Name is the value stored in ohlc_bars_v2.provider: "synthetic", "alpaca" or "massive".
	Name() string
	Bars(ctx context.Context, req Request) ([]Bar, error)
}

var (
	_ Provider = (*Synthetic)(nil)
	_ Provider = (*Alpaca)(nil)
	_ Provider = (*Massive)(nil)

	_ MultiProvider = (*Synthetic)(nil)
	_ MultiProvider = (*Alpaca)(nil)
)

// check validates a request; its errors are permanent (retrying cannot fix them).
func (r Request) check(provider string) error {
	if r.Symbol == "" {
		return &Error{Provider: provider, Kind: Permanent, Code: CodeInvalidRequest, Message: "empty symbol"}
	}
	return checkTimeframe(provider, r.Timeframe)
}

// checkTimeframe refuses a timeframe this package does not know, as a permanent error.
func checkTimeframe(provider string, tf market.Timeframe) error {
	if !tf.Valid() {
		return &Error{Provider: provider, Kind: Permanent, Code: CodeUnsupportedTimeframe,
			Message: fmt.Sprintf("unsupported timeframe %q (want m15, h1, h4, d1 or w1)", string(tf))}
	}
	return nil
}

// normalize converts to UTC, keeps bars in [from, to), sorts by TS and drops duplicate
// timestamps (the last one seen wins, as a later page is the fresher answer).
func normalize(bars []Bar, from, to time.Time) []Bar {
	out := bars[:0]
	for _, b := range bars {
		b.TS = b.TS.UTC()
		if b.TS.Before(from) || !b.TS.Before(to) {
			continue
		}
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b Bar) int { return a.TS.Compare(b.TS) })
	dedup := out[:0]
	for i, b := range out {
		if i+1 < len(out) && out[i+1].TS.Equal(b.TS) {
			continue
		}
		dedup = append(dedup, b)
	}
	return dedup
}

// stocksOnly refuses crypto pairs (BTC/USD) on the stock endpoints the real providers call:
// the slash would change the request path or be rejected upstream.
func stocksOnly(provider, symbol string) error {
	if strings.Contains(symbol, "/") {
		return &Error{Provider: provider, Kind: Permanent, Code: CodeInvalidRequest,
			Message: fmt.Sprintf("symbol %q looks like a crypto pair; only stock symbols are supported by this provider", safeText(symbol))}
	}
	return nil
}
