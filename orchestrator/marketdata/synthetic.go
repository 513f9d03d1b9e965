package marketdata

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

// SyntheticConfig configures the offline provider. The zero value is a fast, error-free
// provider on the wall clock.
type SyntheticConfig struct {
	// Latency is slept (interruptibly) once per page of an answer, to simulate a network: a
	// range of more than PageLimit bars costs several round trips, as with a real provider.
	// Default 0.
	Latency time.Duration
	// PageLimit is the simulated page size in bars, summed over the symbols of a BarsMulti
	// call as Alpaca's limit is. Default 10,000 (Alpaca's).
	PageLimit int
	// MaxSymbols is how many symbols one BarsMulti call may name. Default 1000.
	MaxSymbols int
	// ErrorRate is the fraction of calls, in [0, 1], that fail with a retryable error (a
	// BarsMulti call fails whole). Default 0.
	ErrorRate float64
	// Seed makes the sequence of injected errors reproducible (the n-th call fails or not for
	// a given seed). Default 0. Bar values do not depend on it.
	Seed uint64
	// Hours are the hours of the intraday bars (m15, h1, h4): market.RegularHours (the default)
	// or market.ExtendedHours (04:00–20:00 ET, as Alpaca's and Massive's feeds return them).
	Hours market.Hours
	// Now is the clock: no bar starting after Now is returned. Default time.Now.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
	// Registerer gets the provider metrics. Default nil: not registered.
	Registerer prometheus.Registerer
}

func (c SyntheticConfig) withDefaults() SyntheticConfig {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = discard()
	}
	if c.PageLimit == 0 {
		c.PageLimit = alpacaPageLimit
	}
	if c.Hours == 0 {
		c.Hours = market.RegularHours
	}
	if c.MaxSymbols == 0 {
		c.MaxSymbols = 1000
	}
	return c
}

func (c SyntheticConfig) validate() error {
	if c.Latency < 0 {
		return errors.New("synthetic: Latency must not be negative")
	}
	if c.PageLimit < 1 {
		return fmt.Errorf("synthetic: PageLimit %d: want at least 1", c.PageLimit)
	}
	if c.MaxSymbols < 1 {
		return fmt.Errorf("synthetic: MaxSymbols %d: want at least 1", c.MaxSymbols)
	}
	if c.Hours != market.RegularHours && c.Hours != market.ExtendedHours {
		return fmt.Errorf("synthetic: Hours %v: want regular or extended", c.Hours)
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 || math.IsNaN(c.ErrorRate) {
		return fmt.Errorf("synthetic: ErrorRate %v is outside [0, 1]", c.ErrorRate)
	}
	return nil
}

// Synthetic generates plausible bars offline. Every bar is a pure function of (symbol,
// timeframe, ts), so repeated and overlapping requests agree.
//
// It stores what Alpaca would: stock symbols trade on the NYSE calendar (no bars on holidays or
// weekends, 13:00 early closes honoured) on Alpaca's grid (market.SyntheticGrid): m15 bars on
// the quarter hour and h1/h4 bars aligned to the New York clock, within the regular session by
// default (Hours: 09:00 … 15:00 for h1, 08:00 and 12:00 for h4) or the extended one; d1 bars at
// the session's midnight New York time (04:00Z or 05:00Z), w1 bars at the week's Monday
// midnight. Every start of the grid has a bar, so stored data can be checked exactly. Symbols
// containing '/' (crypto pairs such as BTC/USD) trade 24/7 on the UTC grid: every bar aligned
// to its length from the Unix epoch, d1 at 00:00Z, w1 on Mondays at 00:00Z.
type Synthetic struct {
	cfg     SyntheticConfig
	grid    market.Grid
	nyse    *market.Calendar
	crypto  *market.Calendar
	metrics *metrics

	mu  sync.Mutex
	rng *rand.Rand // decides injected errors, in call order
}

// NewSynthetic returns a synthetic provider.
func NewSynthetic(cfg SyntheticConfig) (*Synthetic, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics("synthetic", cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Synthetic{cfg: cfg, grid: market.SyntheticGrid(cfg.Hours), nyse: market.NYSE(), crypto: market.Crypto(),
		metrics: m, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}, nil
}

// Name returns "synthetic".
func (s *Synthetic) Name() string { return "synthetic" }

// Bars implements Provider.
func (s *Synthetic) Bars(ctx context.Context, req Request) ([]Bar, error) {
	start := time.Now()
	bars, err := s.bars(ctx, req)
	s.metrics.observe(time.Since(start))
	if err != nil {
		s.metrics.fail(err)
		return nil, err
	}
	return bars, nil
}

func (s *Synthetic) bars(ctx context.Context, req Request) ([]Bar, error) {
	if err := req.check("synthetic"); err != nil {
		return nil, err
	}
	out := s.generate(req.Symbol, req.Timeframe, req.From, req.To)
	if err := s.simulate(ctx, len(out), req.Purpose); err != nil {
		return nil, err
	}
	return out, nil
}

// BarsMulti implements MultiProvider: each symbol's bars as Bars would return them, as one
// simulated request of ceil(total bars / PageLimit) pages (at least one), each costing
// Latency. Crypto pairs are served; an empty symbol is rejected; an injected error fails the
// whole call.
func (s *Synthetic) BarsMulti(ctx context.Context, req MultiRequest) (MultiResult, error) {
	start := time.Now()
	res, err := s.barsMulti(ctx, req)
	s.metrics.observe(time.Since(start))
	if err != nil {
		s.metrics.fail(err)
		return MultiResult{}, err
	}
	for _, e := range res.Rejected {
		s.metrics.fail(e)
	}
	return res, nil
}

func (s *Synthetic) barsMulti(ctx context.Context, req MultiRequest) (MultiResult, error) {
	if err := checkTimeframe("synthetic", req.Timeframe); err != nil {
		return MultiResult{}, err
	}
	if len(req.Symbols) > s.cfg.MaxSymbols {
		return MultiResult{}, &Error{Provider: "synthetic", Kind: Permanent, Code: CodeInvalidRequest,
			Message: fmt.Sprintf("%d symbols in one request; at most %d (MaxSymbols): split the batch", len(req.Symbols), s.cfg.MaxSymbols)}
	}
	res := MultiResult{Bars: map[string][]Bar{}, Rejected: map[string]error{}}
	total := 0
	for _, sym := range req.Symbols {
		if sym == "" {
			res.Rejected[sym] = &Error{Provider: "synthetic", Kind: Permanent, Code: CodeInvalidRequest, Message: "empty symbol"}
			continue
		}
		if _, dup := res.Bars[sym]; dup {
			continue
		}
		bars := s.generate(sym, req.Timeframe, req.From, req.To)
		res.Bars[sym] = bars
		total += len(bars)
	}
	if err := s.simulate(ctx, total, req.Purpose); err != nil {
		return MultiResult{}, err
	}
	return res, nil
}

// generate returns symbol's bars in [from, to), never one starting after now: the range
// becomes [from, min(to, now+1ns)).
func (s *Synthetic) generate(symbol string, tf market.Timeframe, from, to time.Time) []Bar {
	if now := s.cfg.Now(); now.Before(to) {
		to = now.Add(time.Nanosecond)
	}
	var out []Bar
	if to.After(from) {
		for _, ts := range s.starts(symbol, tf, from.UTC(), to.UTC()) {
			out = append(out, s.bar(symbol, tf, ts))
		}
	}
	return out
}

// simulate plays the request that would have answered n bars: its pages are counted under
// purpose and cost Latency each, then an injected error may fail it.
func (s *Synthetic) simulate(ctx context.Context, n int, purpose string) error {
	pages := max(1, (n+s.cfg.PageLimit-1)/s.cfg.PageLimit)
	for range pages {
		s.metrics.request(purpose)
	}
	if s.cfg.Latency > 0 {
		t := time.NewTimer(time.Duration(pages) * s.cfg.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return interrupted("synthetic", "the simulated latency", ctx.Err())
		}
	} else if err := ctx.Err(); err != nil {
		return interrupted("synthetic", "the call", err)
	}
	if s.cfg.ErrorRate > 0 {
		s.mu.Lock()
		fail := s.rng.Float64() < s.cfg.ErrorRate
		s.mu.Unlock()
		if fail {
			return &Error{Provider: "synthetic", Kind: Retryable, Code: CodeInjected, Message: "injected error (simulated provider fault)"}
		}
	}
	if n == 0 {
		s.metrics.zeroBar(purpose) // the one page, answered and empty
	}
	return nil
}

// MaxSymbols is how many symbols one BarsMulti call may name (SyntheticConfig.MaxSymbols).
func (s *Synthetic) MaxSymbols() int { return s.cfg.MaxSymbols }

// Grid is the bar grid the provider follows.
func (s *Synthetic) Grid() market.Grid { return s.grid }

// PageLimit is the simulated page size in bars.
func (s *Synthetic) PageLimit() int { return s.cfg.PageLimit }

// starts lists the bar starts in [from, to), ascending, UTC: the grid's starts on the symbol's
// calendar.
func (s *Synthetic) starts(symbol string, tf market.Timeframe, from, to time.Time) []time.Time {
	cal := s.nyse
	if market.IsCrypto(symbol) {
		cal = s.crypto
	}
	return s.grid.Starts(cal, tf, from, to)
}

// bar is the deterministic bar of (symbol, tf, ts). The price path is a smooth function of time
// seeded by the symbol, so a bar's close is the next instant's open and timeframes roughly
// agree; the wicks and volume come from a hash of (symbol, tf, ts).
func (s *Synthetic) bar(symbol string, tf market.Timeframe, ts time.Time) Bar {
	base := 20 + float64(hash64(symbol)%48000)/100 // 20 … 500
	phase := float64(hash64(symbol+"#phase")%6283) / 1000
	price := func(t time.Time) float64 {
		x := float64(t.Unix()) / 86400 // days
		return base * (1 + 0.15*math.Sin(x/37+phase) + 0.05*math.Sin(x/5.3+2*phase) + 0.01*math.Sin(x*3.1+phase))
	}
	o := round2(price(ts))
	c := round2(price(ts.Add(tf.Duration())))
	h := hash64(fmt.Sprintf("%s|%s|%d", symbol, tf, ts.Unix()))
	u1 := float64(h&0xffff) / 0xffff
	u2 := float64((h>>16)&0xffff) / 0xffff
	u3 := float64((h>>32)&0xffff) / 0xffff
	spread := 0.002 + 0.004*math.Sqrt(tf.Duration().Hours())
	hi := math.Max(round2(math.Max(o, c)*(1+spread*u1)), math.Max(o, c))
	lo := math.Min(round2(math.Min(o, c)*(1-spread*u2)), math.Min(o, c))
	vol := math.Round((1000 + 99000*u3) * math.Max(1, tf.Duration().Minutes()/15))
	if strings.Contains(symbol, "/") {
		vol = math.Round(vol*1e4/base) / 1e4 // fractional units, as crypto volumes are
		if vol <= 0 {
			vol = 0.0001
		}
	}
	return Bar{TS: ts, Open: o, High: hi, Low: lo, Close: c, Volume: vol}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
