package marketdata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	// MaxPages bounds the pages followed for one request, against a token that never ends.
	// Default 1000 (ten million bars).
	MaxPages int
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
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
	if c.Logger == nil {
		c.Logger = discard()
	}
	if c.Now == nil {
		c.Now = time.Now
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
	if c.RequestsPerMinute < 0 || c.Burst < 0 || c.MaxPages < 0 {
		return errors.New("alpaca: RequestsPerMinute, Burst and MaxPages must not be negative")
	}
	return nil
}

// alpacaTimeframes maps our tokens to Alpaca's. Unknown tokens are refused, never turned into
// 1Day as the original did.
var alpacaTimeframes = map[market.Timeframe]string{market.M15: "15Min", market.H1: "1Hour", market.H4: "4Hour", market.D1: "1Day", market.W1: "1Week"}

const alpacaPageLimit = 10000

// Alpaca fetches stock bars from Alpaca market data v2 (GET /v2/stocks/bars).
type Alpaca struct {
	cfg   AlpacaConfig
	base  *url.URL
	fetch *fetcher
}

// NewAlpaca returns an Alpaca client, or an error when the config is invalid or its metrics
// cannot be registered.
func NewAlpaca(cfg AlpacaConfig) (*Alpaca, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics("alpaca", cfg.Registerer)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	return &Alpaca{cfg: cfg, base: base, fetch: &fetcher{
		provider: "alpaca",
		client:   cfg.HTTPClient,
		limiter:  newLimiter(cfg.RequestsPerMinute, cfg.Burst),
		metrics:  m,
		logger:   cfg.Logger,
		now:      cfg.Now,
		authHint: "check the Alpaca API key ID and secret (APCA_API_KEY_ID, APCA_API_SECRET_KEY) and that the plan allows feed " + cfg.Feed + " for this range",
		maxBody:  64 << 20,
	}}, nil
}

// Name returns "alpaca".
func (a *Alpaca) Name() string { return "alpaca" }

// PageLimit is the most bars one request returns (the API's maximum limit).
func (a *Alpaca) PageLimit() int { return alpacaPageLimit }

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
// are trimmed. Pages are followed through next_page_token until it is null.
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
	q := url.Values{}
	q.Set("symbols", req.Symbol)
	q.Set("timeframe", alpacaTimeframes[req.Timeframe])
	q.Set("start", req.From.UTC().Format(time.RFC3339))
	q.Set("end", req.To.UTC().Format(time.RFC3339))
	q.Set("limit", fmt.Sprint(alpacaPageLimit))
	q.Set("adjustment", "raw")
	q.Set("feed", a.cfg.Feed)
	q.Set("sort", "asc")
	header := http.Header{}
	header.Set("APCA-API-KEY-ID", a.cfg.KeyID)
	header.Set("APCA-API-SECRET-KEY", a.cfg.SecretKey)

	var out []Bar
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > a.cfg.MaxPages {
			return nil, &Error{Provider: "alpaca", Kind: Permanent, Code: CodePagination,
				Message: fmt.Sprintf("more than %d pages; next_page_token never ended", a.cfg.MaxPages)}
		}
		u := a.base.JoinPath("/v2/stocks/bars")
		u.RawQuery = q.Encode()
		body, err := a.fetch.get(ctx, u, header)
		if err != nil {
			return nil, err
		}
		var p alpacaPage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, malformed("alpaca", http.StatusOK, err)
		}
		got, err := alpacaBars(p.Bars, req.Symbol)
		if err != nil {
			return nil, malformed("alpaca", http.StatusOK, err)
		}
		for _, b := range got {
			out = append(out, Bar{TS: b.T, Open: b.O, High: b.H, Low: b.L, Close: b.C, Volume: b.V})
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
	return normalize(out, req.From, req.To), nil
}

// alpacaBars extracts symbol's bars from either response shape.
func alpacaBars(raw json.RawMessage, symbol string) ([]alpacaBar, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] == '[' {
		var bars []alpacaBar
		if err := json.Unmarshal(raw, &bars); err != nil {
			return nil, fmt.Errorf("decode bars: %w", err)
		}
		return bars, nil
	}
	var bySymbol map[string][]alpacaBar
	if err := json.Unmarshal(raw, &bySymbol); err != nil {
		return nil, fmt.Errorf("decode bars: %w", err)
	}
	if bars, ok := bySymbol[symbol]; ok {
		return bars, nil
	}
	for k, bars := range bySymbol { // "aapl" asked, "AAPL" answered
		if strings.EqualFold(k, symbol) {
			return bars, nil
		}
	}
	return nil, nil
}

// Grid is Alpaca's bar grid: extended hours, clock-aligned (market.AlpacaGrid).
func (a *Alpaca) Grid() market.Grid { return market.AlpacaGrid() }
