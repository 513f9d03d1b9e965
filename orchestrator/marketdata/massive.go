package marketdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

// MassiveConfig configures a Massive (formerly Polygon.io) aggregates v2 client. The zero value
// of every field means its default.
type MassiveConfig struct {
	// BaseURL is the API host. Default "https://api.massive.com"; "https://api.polygon.io" is
	// the same service under its old name.
	BaseURL string
	// APIKey is sent as the apiKey query parameter, on every page. Required.
	APIKey string
	// RequestsPerMinute is the client-side limit. Default 5 (the free plan; paid plans are
	// unlimited, set a high value).
	RequestsPerMinute float64
	// Burst is how many requests may go at once before the limiter paces them. Default 1.
	Burst int
	// Limiter paces every request (every page). When it is also a Pauser, a 429's Retry-After
	// and an exhausted X-RateLimit window pause it. Default nil: an in-process token bucket at
	// RequestsPerMinute and Burst, which pauses the same way; RequestsPerMinute and Burst are
	// ignored when a Limiter is set.
	Limiter Limiter
	// MaxPages bounds the next_url pages followed for one request. Default 1000.
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

func (c MassiveConfig) withDefaults() MassiveConfig {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.massive.com"
	}
	if c.RequestsPerMinute == 0 {
		c.RequestsPerMinute = 5
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
	if c.Limiter == nil {
		c.Limiter = newBucket("massive", c.RequestsPerMinute, c.Burst, c.Now)
	}
	return c
}

func (c MassiveConfig) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("massive: invalid BaseURL %q: want http(s)://host", c.BaseURL)
	}
	if c.APIKey == "" {
		return errors.New("massive: APIKey is required")
	}
	if c.RequestsPerMinute < 0 || c.Burst < 0 || c.MaxPages < 0 {
		return errors.New("massive: RequestsPerMinute, Burst and MaxPages must not be negative")
	}
	return nil
}

// massiveTimeframes maps our tokens to multiplier/timespan path segments.
var massiveTimeframes = map[market.Timeframe]string{market.M15: "15/minute", market.H1: "1/hour", market.H4: "4/hour", market.D1: "1/day", market.W1: "1/week"}

const massivePageLimit = 50000

// Massive fetches stock aggregates from Massive/Polygon
// (GET /v2/aggs/ticker/{T}/range/{mult}/{timespan}/{from}/{to}).
type Massive struct {
	cfg   MassiveConfig
	base  *url.URL
	fetch *fetcher
	ny    *time.Location
}

// NewMassive returns a Massive client, or an error when the config is invalid or its metrics
// cannot be registered.
func NewMassive(cfg MassiveConfig) (*Massive, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		return nil, fmt.Errorf("massive: load America/New_York: %w", err)
	}
	m, err := newMetrics("massive", cfg.Registerer)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	return &Massive{cfg: cfg, base: base, ny: ny, fetch: &fetcher{
		provider: "massive",
		client:   cfg.HTTPClient,
		limiter:  cfg.Limiter,
		metrics:  m,
		logger:   cfg.Logger,
		now:      cfg.Now,
		authHint: "check the Massive/Polygon API key and that the plan covers this timeframe and history",
		maxBody:  64 << 20,
	}}, nil
}

// Name returns "massive".
func (m *Massive) Name() string { return "massive" }

// PageLimit is the most bars one request returns (the API's maximum limit).
func (m *Massive) PageLimit() int { return massivePageLimit }

// massivePage is one aggregates page. results may be null, [] or missing when empty; next_url
// is present only when another page exists. status is not trusted: the HTTP code decides.
type massivePage struct {
	Results []massiveBar `json:"results"`
	NextURL string       `json:"next_url"`
}

type massiveBar struct {
	T int64     `json:"t"` // epoch milliseconds, start of the window
	O float64   `json:"o"`
	H float64   `json:"h"`
	L float64   `json:"l"`
	C float64   `json:"c"`
	V flexFloat `json:"v"` // may be 6.42646396e+08, fractional, or a decimal string
}

// flexFloat decodes a JSON number (any form, exponent included) or a string holding one:
// massive-com/client-go models volumes as a decimal string (DecimalVolume) since the 2025 API.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("decode volume %q: %w", safeText(s), err)
	}
	*f = flexFloat(v)
	return nil
}

// Bars implements Provider. Intraday ranges are sent as epoch milliseconds [From, To−1ms];
// daily and weekly ranges as New York dates (bars are stamped at midnight New York time),
// then trimmed to [From, To). next_url is followed to the end with apiKey added again.
func (m *Massive) Bars(ctx context.Context, req Request) ([]Bar, error) {
	bars, err := m.bars(ctx, req)
	if err != nil {
		m.fetch.metrics.fail(err)
		return nil, err
	}
	return bars, nil
}

func (m *Massive) bars(ctx context.Context, req Request) ([]Bar, error) {
	if err := req.check("massive"); err != nil {
		return nil, err
	}
	if err := stocksOnly("massive", req.Symbol); err != nil {
		return nil, err
	}
	if !req.To.After(req.From) {
		return nil, nil
	}
	var from, to string
	if req.Timeframe == market.D1 || req.Timeframe == market.W1 {
		from = req.From.In(m.ny).Format(time.DateOnly)
		to = req.To.Add(-time.Millisecond).In(m.ny).Format(time.DateOnly)
	} else {
		from = strconv.FormatInt(req.From.UnixMilli(), 10)
		to = strconv.FormatInt(req.To.Add(-time.Millisecond).UnixMilli(), 10)
	}
	u := m.base.JoinPath("/v2/aggs/ticker", req.Symbol, "range", massiveTimeframes[req.Timeframe], from, to)
	q := url.Values{}
	q.Set("adjusted", "false")
	q.Set("sort", "asc")
	q.Set("limit", strconv.Itoa(massivePageLimit))
	q.Set("apiKey", m.cfg.APIKey)
	u.RawQuery = q.Encode()

	var out []Bar
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > m.cfg.MaxPages {
			return nil, &Error{Provider: "massive", Kind: Permanent, Code: CodePagination,
				Message: fmt.Sprintf("more than %d pages; next_url never ended", m.cfg.MaxPages)}
		}
		body, err := m.fetch.get(ctx, u, nil, req.Purpose)
		if err != nil {
			return nil, err
		}
		var p massivePage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, malformed("massive", http.StatusOK, err)
		}
		if len(p.Results) == 0 {
			m.fetch.metrics.zeroBar(req.Purpose)
		}
		for _, b := range p.Results {
			out = append(out, Bar{TS: time.UnixMilli(b.T), Open: b.O, High: b.H, Low: b.L, Close: b.C, Volume: float64(b.V)})
		}
		if p.NextURL == "" {
			break
		}
		if seen[p.NextURL] {
			return nil, &Error{Provider: "massive", Kind: Retryable, Code: CodePagination, Message: "next_url repeated; pagination would loop"}
		}
		seen[p.NextURL] = true
		if u, err = m.nextURL(p.NextURL); err != nil {
			return nil, malformed("massive", http.StatusOK, err)
		}
	}
	return normalize(out, req.From, req.To), nil
}

// nextURL keeps next_url's path and query (the cursor) but sends it to the configured host,
// with apiKey added again (next_url carries no credentials). The key therefore never goes to
// a host we were not configured for, and api.polygon.io links work against api.massive.com.
func (m *Massive) nextURL(raw string) (*url.URL, error) {
	n, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse next_url: %w", redactErr(err))
	}
	u := *m.base
	u.Path = n.Path
	u.RawPath = n.RawPath
	q := n.Query()
	q.Set("apiKey", m.cfg.APIKey)
	u.RawQuery = q.Encode()
	return &u, nil
}

// Grid is Massive's bar grid: extended hours, clock-aligned (market.MassiveGrid).
func (m *Massive) Grid() market.Grid { return market.MassiveGrid() }
