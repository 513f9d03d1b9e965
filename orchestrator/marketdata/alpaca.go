package marketdata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

// AlpacaConfig configures an Alpaca market-data v2 client. The zero value of every field means
// its default.
type AlpacaConfig struct {
	// BaseURL is the data API host. Default "https://data.alpaca.markets"
	// (sandbox: "https://data.sandbox.alpaca.markets").
	BaseURL string
	// KeyID and SecretKey are sent as APCA-API-KEY-ID and APCA-API-SECRET-KEY. Required. The
	// composition root reads them from APCA_API_KEY_ID and APCA_API_SECRET_KEY.
	KeyID, SecretKey string
	// Feed is "iex" (free and paper accounts) or "sip" (paid). Default "iex".
	Feed string
	// RequestsPerMinute is the client-side limit, the plan's rate. Default 200 (the free plan).
	RequestsPerMinute float64
	// Burst is how many requests may go at once before the limiter paces them. Default 1.
	Burst int
	// Limiter paces every request (every page). When it is also a Pauser, a 429's Retry-After
	// and an exhausted window (X-RateLimit-Remaining 0 until X-RateLimit-Reset) pause it.
	// Default nil: an in-process token bucket at RequestsPerMinute and Burst, which pauses the
	// same way; RequestsPerMinute and Burst are ignored when a Limiter is set.
	Limiter Limiter
	// MaxPages bounds the pages followed for one request, against a token that never ends.
	// Default 1000 (ten million bars).
	MaxPages int
	// MaxURLBytes bounds the length of a request URL, page_token included; it decides
	// MaxSymbols (how many symbols one BarsMulti request may name). Default 8000, below the
	// 8 KiB request-line limit common to proxies and servers.
	MaxURLBytes int
	// MaxSymbols caps the symbols of one BarsMulti request further, whatever fits in
	// MaxURLBytes. Default 1000.
	MaxSymbols int
	// HTTPClient sends the requests. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives debug lines per request. Default: discard.
	Logger *slog.Logger
	// Registerer gets the provider metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock, used for Retry-After dates. Default time.Now.
	Now func() time.Time
}

func (c AlpacaConfig) withDefaults() AlpacaConfig {
	if c.BaseURL == "" {
		c.BaseURL = "https://data.alpaca.markets"
	}
	if c.Feed == "" {
		c.Feed = "iex"
	}
	if c.RequestsPerMinute == 0 {
		c.RequestsPerMinute = 200
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.MaxPages == 0 {
		c.MaxPages = 1000
	}
	if c.MaxURLBytes == 0 {
		c.MaxURLBytes = 8000
	}
	if c.MaxSymbols == 0 {
		c.MaxSymbols = 1000
	}
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
	if c.Logger == nil {
		c.Logger = discard()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Limiter == nil {
		c.Limiter = newBucket("alpaca", c.RequestsPerMinute, c.Burst, c.Now)
	}
	return c
}

func (c AlpacaConfig) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("alpaca: invalid BaseURL %q: want http(s)://host", c.BaseURL)
	}
	if c.KeyID == "" || c.SecretKey == "" {
		return errors.New("alpaca: KeyID and SecretKey are required (APCA_API_KEY_ID, APCA_API_SECRET_KEY)")
	}
	if c.RequestsPerMinute < 0 || c.Burst < 0 || c.MaxPages < 0 || c.MaxURLBytes < 0 || c.MaxSymbols < 0 {
		return errors.New("alpaca: RequestsPerMinute, Burst, MaxPages, MaxURLBytes and MaxSymbols must not be negative")
	}
	return nil
}

// alpacaTimeframes maps our tokens to Alpaca's. Unknown tokens are refused, never turned into
// 1Day as the original did.
var alpacaTimeframes = map[market.Timeframe]string{market.M15: "15Min", market.H1: "1Hour", market.H4: "4Hour", market.D1: "1Day", market.W1: "1Week"}

const (
	alpacaPageLimit = 10000
	alpacaBarsPath  = "/v2/stocks/bars"
	// alpacaSymbolBytes is the room MaxSymbols assumes per symbol: up to 9 characters and the
	// comma after it, which the query encodes as %2C.
	alpacaSymbolBytes = 12
	// alpacaTokenBytes is the room kept in every URL for page_token (tokens seen are about 60
	// bytes: base64 of SYMBOL|TF|position).
	alpacaTokenBytes = 256
)

// Alpaca fetches stock bars from Alpaca market data v2 (GET /v2/stocks/bars).
type Alpaca struct {
	cfg        AlpacaConfig
	base       *url.URL
	fetch      *fetcher
	maxSymbols int
}

// NewAlpaca returns an Alpaca client, or an error when the config is invalid or its metrics
// cannot be registered.
func NewAlpaca(cfg AlpacaConfig) (*Alpaca, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, _ := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	a := &Alpaca{cfg: cfg, base: base}
	// Everything but the symbols, at its longest (every timeframe is 5 characters, every
	// RFC 3339 UTC time 20), plus the page_token room.
	t := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	rest := len(a.url(a.query(nil, market.M15, t, t)).String()) + len("&page_token=") + alpacaTokenBytes
	a.maxSymbols = min(cfg.MaxSymbols, (cfg.MaxURLBytes-rest)/alpacaSymbolBytes)
	if a.maxSymbols < 1 {
		return nil, fmt.Errorf("alpaca: MaxURLBytes %d leaves no room for a symbol (the rest of the URL takes %d bytes)", cfg.MaxURLBytes, rest)
	}
	m, err := newMetrics("alpaca", cfg.Registerer)
	if err != nil {
		return nil, err
	}
	a.fetch = &fetcher{
		provider: "alpaca",
		client:   cfg.HTTPClient,
		limiter:  cfg.Limiter,
		metrics:  m,
		logger:   cfg.Logger,
		now:      cfg.Now,
		authHint: "check the Alpaca API key ID and secret (APCA_API_KEY_ID, APCA_API_SECRET_KEY) and that the plan allows feed " + cfg.Feed + " for this range",
		maxBody:  64 << 20,
	}
	return a, nil
}

// Name returns "alpaca".
func (a *Alpaca) Name() string { return "alpaca" }

// PageLimit is the most bars one request returns (the API's maximum limit, summed over the
// symbols of a multi-symbol request).
func (a *Alpaca) PageLimit() int { return alpacaPageLimit }

// MaxSymbols is how many symbols one BarsMulti call may name: as many symbols of up to 9
// characters as fit in MaxURLBytes next to the other parameters and a page_token, at most the
// configured MaxSymbols.
func (a *Alpaca) MaxSymbols() int { return a.maxSymbols }

// alpacaPage decodes both shapes: multi-symbol {"bars": {"SYM": [...]}} and the legacy
// single-symbol {"bars": [...], "symbol": "SYM"}; bars may be {} or null, a symbol without bars
// is absent. next_page_token is null on the last page.
type alpacaPage struct {
	Bars          json.RawMessage `json:"bars"`
	NextPageToken *string         `json:"next_page_token"`
}

type alpacaBar struct {
	T time.Time `json:"t"`
	O float64   `json:"o"`
	H float64   `json:"h"`
	L float64   `json:"l"`
	C float64   `json:"c"`
	V float64   `json:"v"`
}

// Bars implements Provider. Alpaca's end is inclusive: end=To is sent and bars starting at To
// are trimmed. Pages are followed through next_page_token until it is null. It is the
// multi-symbol request with one symbol, any refusal of which is the call's error.
func (a *Alpaca) Bars(ctx context.Context, req Request) ([]Bar, error) {
	bars, err := a.bars(ctx, req)
	if err != nil {
		a.fetch.metrics.fail(err)
		return nil, err
	}
	return bars, nil
}

func (a *Alpaca) bars(ctx context.Context, req Request) ([]Bar, error) {
	if err := req.check("alpaca"); err != nil {
		return nil, err
	}
	if err := stocksOnly("alpaca", req.Symbol); err != nil {
		return nil, err
	}
	if !req.To.After(req.From) {
		return nil, nil
	}
	got, err := a.fetchAll(ctx, []string{req.Symbol}, req.Timeframe, req.From, req.To, req.Purpose)
	if err != nil {
		return nil, err
	}
	return got[req.Symbol], nil
}

// BarsMulti implements MultiProvider: one request names every symbol (comma-separated, in the
// order given; exact duplicates dropped), pages are followed to the end, and each symbol's
// bars are trimmed to [From, To) as in Bars. Every symbol not rejected has an entry in Bars,
// empty when the provider had nothing for it.
//
// Crypto pairs and empty symbols are rejected without a request. When a page is refused with
// a 4xx other than 401, 403 and 429, the symbols its message names ("invalid symbol: XYZ", or
// a requested symbol as a whole word) are rejected and the request is sent again without
// them, from its first page; a message naming none splits the batch in halves, fetched in
// turn, until the symbol refused alone is found. Any other failure (bad keys, 429, 5xx,
// network, malformed body) fails the call. A batch longer than MaxSymbols, or whose URL would
// exceed MaxURLBytes, is refused as a permanent CodeInvalidRequest error.
func (a *Alpaca) BarsMulti(ctx context.Context, req MultiRequest) (MultiResult, error) {
	res, err := a.barsMulti(ctx, req)
	if err != nil {
		a.fetch.metrics.fail(err)
		return MultiResult{}, err
	}
	for _, e := range res.Rejected {
		a.fetch.metrics.fail(e)
	}
	return res, nil
}

func (a *Alpaca) barsMulti(ctx context.Context, req MultiRequest) (MultiResult, error) {
	if err := checkTimeframe("alpaca", req.Timeframe); err != nil {
		return MultiResult{}, err
	}
	if len(req.Symbols) > a.maxSymbols {
		return MultiResult{}, &Error{Provider: "alpaca", Kind: Permanent, Code: CodeInvalidRequest,
			Message: fmt.Sprintf("%d symbols in one request; at most %d fit (MaxSymbols): split the batch", len(req.Symbols), a.maxSymbols)}
	}
	res := MultiResult{Bars: map[string][]Bar{}, Rejected: map[string]error{}}
	syms := make([]string, 0, len(req.Symbols))
	for _, s := range req.Symbols {
		if _, dup := res.Rejected[s]; dup || slices.Contains(syms, s) {
			continue
		}
		if s == "" {
			res.Rejected[s] = &Error{Provider: "alpaca", Kind: Permanent, Code: CodeInvalidRequest, Message: "empty symbol"}
			continue
		}
		if err := stocksOnly("alpaca", s); err != nil {
			res.Rejected[s] = err
			continue
		}
		syms = append(syms, s)
	}
	if len(syms) == 0 || !req.To.After(req.From) {
		for _, s := range syms {
			res.Bars[s] = nil
		}
		return res, nil
	}
	if n := len(a.url(a.query(syms, req.Timeframe, req.From, req.To)).String()) + len("&page_token=") + alpacaTokenBytes; n > a.cfg.MaxURLBytes {
		return MultiResult{}, &Error{Provider: "alpaca", Kind: Permanent, Code: CodeInvalidRequest,
			Message: fmt.Sprintf("the request URL for %d symbols would take %d bytes, more than MaxURLBytes %d: split the batch", len(syms), n, a.cfg.MaxURLBytes)}
	}
	if err := a.isolate(ctx, req, syms, &res); err != nil {
		return MultiResult{}, err
	}
	return res, nil
}

// isolate fetches syms into res. A refusal that concerns symbols (symbolFault) takes the
// symbols its message names out of the batch and sends it again, or, naming none, fetches
// each half of the batch in turn; a symbol refused alone is rejected. Every repetition has
// fewer symbols than the one before, so this ends.
func (a *Alpaca) isolate(ctx context.Context, req MultiRequest, syms []string, res *MultiResult) error {
	for len(syms) > 0 {
		got, err := a.fetchAll(ctx, syms, req.Timeframe, req.From, req.To, req.Purpose)
		if err == nil {
			maps.Copy(res.Bars, got)
			return nil
		}
		e, ok := symbolFault(err)
		if !ok {
			return err
		}
		if bad := namedSymbols(e.Message, syms); len(bad) > 0 {
			a.fetch.logger.Debug("alpaca refused symbols; sending the batch again without them",
				"rejected", strings.Join(bad, ","), "symbols", len(syms), "status", e.Status)
			for _, s := range bad {
				res.Rejected[s] = e
			}
			syms = slices.DeleteFunc(slices.Clone(syms), func(s string) bool { return slices.Contains(bad, s) })
			continue
		}
		if len(syms) == 1 {
			a.fetch.logger.Debug("alpaca refused a symbol", "symbol", syms[0], "status", e.Status)
			res.Rejected[syms[0]] = e
			return nil
		}
		a.fetch.logger.Debug("alpaca refused a batch without naming a symbol; splitting it", "symbols", len(syms), "status", e.Status)
		half := len(syms) / 2
		if err := a.isolate(ctx, req, syms[:half], res); err != nil {
			return err
		}
		syms = syms[half:]
	}
	return nil
}

// symbolFault reports whether err is a refusal that may concern the request's symbols: a 4xx
// other than 401/403 (keys, plan) and 429 (rate); 408 is retryable and not one either.
func symbolFault(err error) (*Error, bool) {
	var e *Error
	if !errors.As(err, &e) || e.Kind != Permanent || e.Status < 400 || e.Status >= 500 ||
		e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		return nil, false
	}
	return e, true
}

// invalidSymbolRE finds Alpaca's "invalid symbol: XYZ" (one or a comma list).
var invalidSymbolRE = regexp.MustCompile(`(?i)invalid symbols?:\s*([A-Za-z0-9./-]+(?:\s*,\s*[A-Za-z0-9./-]+)*)`)

// namedSymbols returns the symbols of syms that msg names: those after "invalid symbol:"
// (case-insensitively) and those appearing as a whole word in it. The whole-word match is
// case-sensitive (the symbol as spelled or in upper case), because tickers such as A, IS, ON
// or ALL are English words too.
func namedSymbols(msg string, syms []string) []string {
	var named []string
	for _, m := range invalidSymbolRE.FindAllStringSubmatch(msg, -1) {
		for _, tok := range strings.Split(m[1], ",") {
			tok = strings.TrimRight(strings.TrimSpace(tok), ".")
			for _, s := range syms {
				if strings.EqualFold(s, tok) && !slices.Contains(named, s) {
					named = append(named, s)
				}
			}
		}
	}
	for _, s := range syms {
		if s != "" && !slices.Contains(named, s) && (wholeWord(msg, s) || wholeWord(msg, strings.ToUpper(s))) {
			named = append(named, s)
		}
	}
	return named
}

// wholeWord reports whether w occurs in msg not as part of a longer symbol: BRK is not in
// "BRK.B", but BAD is in "symbol BAD." and "(BAD)".
func wholeWord(msg, w string) bool {
	alnum := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	joiner := func(c byte) bool { return c == '.' || c == '-' || c == '/' }
	for off := 0; ; {
		i := strings.Index(msg[off:], w)
		if i < 0 {
			return false
		}
		i += off
		j := i + len(w)
		before := i == 0 || !(alnum(msg[i-1]) || joiner(msg[i-1]))
		after := j == len(msg) || !(alnum(msg[j]) || joiner(msg[j]) && j+1 < len(msg) && alnum(msg[j+1]))
		if before && after {
			return true
		}
		off = i + 1
	}
}

// query is the first page's query; the next pages add page_token and change nothing else.
// The symbols go in the order given, one spelling per symbol whatever its case.
func (a *Alpaca) query(syms []string, tf market.Timeframe, from, to time.Time) url.Values {
	var names []string
	for _, s := range syms {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, s) }) {
			names = append(names, s)
		}
	}
	q := url.Values{}
	q.Set("symbols", strings.Join(names, ","))
	q.Set("timeframe", alpacaTimeframes[tf])
	q.Set("start", from.UTC().Format(time.RFC3339))
	q.Set("end", to.UTC().Format(time.RFC3339))
	q.Set("limit", fmt.Sprint(alpacaPageLimit))
	q.Set("adjustment", "raw")
	q.Set("feed", a.cfg.Feed)
	q.Set("sort", "asc")
	return q
}

func (a *Alpaca) url(q url.Values) *url.URL {
	u := a.base.JoinPath(alpacaBarsPath)
	u.RawQuery = q.Encode()
	return u
}

// fetchAll sends one multi-symbol request for syms and follows its pages to the end. It
// returns every symbol of syms with its bars in [from, to), or the first failure.
func (a *Alpaca) fetchAll(ctx context.Context, syms []string, tf market.Timeframe, from, to time.Time, purpose string) (map[string][]Bar, error) {
	q := a.query(syms, tf, from, to)
	header := http.Header{}
	header.Set("APCA-API-KEY-ID", a.cfg.KeyID)
	header.Set("APCA-API-SECRET-KEY", a.cfg.SecretKey)

	raw := map[string][]Bar{}
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > a.cfg.MaxPages {
			return nil, &Error{Provider: "alpaca", Kind: Permanent, Code: CodePagination,
				Message: fmt.Sprintf("more than %d pages; next_page_token never ended", a.cfg.MaxPages)}
		}
		body, err := a.fetch.get(ctx, a.url(q), header, purpose)
		if err != nil {
			return nil, err
		}
		var p alpacaPage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, malformed("alpaca", http.StatusOK, err)
		}
		n, err := collectAlpacaBars(p.Bars, syms, raw)
		if err != nil {
			return nil, malformed("alpaca", http.StatusOK, err)
		}
		if n == 0 {
			a.fetch.metrics.zeroBar(purpose)
		}
		if p.NextPageToken == nil || *p.NextPageToken == "" {
			break
		}
		tok := *p.NextPageToken
		if seen[tok] {
			return nil, &Error{Provider: "alpaca", Kind: Retryable, Code: CodePagination, Message: "next_page_token repeated; pagination would loop"}
		}
		seen[tok] = true
		q.Set("page_token", tok) // every other parameter unchanged, as the docs require
	}
	out := make(map[string][]Bar, len(syms))
	for _, s := range syms {
		out[s] = normalize(raw[s], from, to)
	}
	return out, nil
}

// collectAlpacaBars adds one page's bars to into, keyed by the requested spellings: a key
// matches every symbol of syms equal to it ignoring case ("aapl" asked, "AAPL" answered).
// Keys matching no requested symbol are dropped. The legacy array shape is taken as the bars
// of a single requested symbol. It returns how many bars the page held.
func collectAlpacaBars(raw json.RawMessage, syms []string, into map[string][]Bar) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, nil
	}
	add := func(s string, bars []alpacaBar) {
		for _, b := range bars {
			into[s] = append(into[s], Bar{TS: b.T, Open: b.O, High: b.H, Low: b.L, Close: b.C, Volume: b.V})
		}
	}
	if raw[0] == '[' {
		var bars []alpacaBar
		if err := json.Unmarshal(raw, &bars); err != nil {
			return 0, fmt.Errorf("decode bars: %w", err)
		}
		if len(syms) != 1 && len(bars) > 0 {
			return 0, fmt.Errorf("bars is a list, not a map by symbol, for a request of %d symbols", len(syms))
		}
		if len(syms) == 1 {
			add(syms[0], bars)
		}
		return len(bars), nil
	}
	var bySymbol map[string][]alpacaBar
	if err := json.Unmarshal(raw, &bySymbol); err != nil {
		return 0, fmt.Errorf("decode bars: %w", err)
	}
	n := 0
	for k, bars := range bySymbol {
		n += len(bars)
		for _, s := range syms {
			if strings.EqualFold(k, s) {
				add(s, bars)
			}
		}
	}
	return n, nil
}

// Grid is Alpaca's bar grid: extended hours, clock-aligned (market.AlpacaGrid).
func (a *Alpaca) Grid() market.Grid { return market.AlpacaGrid() }
