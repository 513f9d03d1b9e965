package freshness

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

//go:embed sql/sample.sql
var sampleSQL string

// Config configures a Sampler.
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Grid is the configured provider's bar grid: which bars exist to be fetched (market.GridFor).
	// Required.
	Grid market.Grid
	// Interval is how often Start samples. Default 30s.
	Interval time.Duration
	// Now is the clock. Default nil: the database's clock, read in the sample's statement.
	Now func() time.Time
	// Registerer gets the metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// Logger. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("freshness: Pool is required")
	case c.Grid.Provider == "" || (c.Grid.Hours != market.RegularHours && c.Grid.Hours != market.ExtendedHours):
		return errors.New("freshness: Grid is required (market.GridFor)")
	case c.Interval < 0:
		return errors.New("freshness: Interval must not be negative")
	}
	return nil
}

// errStopped is the cancellation cause of Stop.
var errStopped = errors.New("freshness sampler stopped")

// Sampler samples the freshness of the stored bars (the package doc) into its metrics. Its
// methods are safe for concurrent use.
type Sampler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	nyse    *market.Calendar
	crypto  *market.Calendar

	closesMu sync.Mutex
	closes   *closes

	startMu  sync.Mutex
	started  bool
	stopOnce sync.Once
	cancel   context.CancelCauseFunc
	done     chan struct{}

	afterSample func(Report, error) // test hook, called after each sample of Start's loop
}

// New validates cfg and returns a stopped Sampler.
func New(cfg Config) (*Sampler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Sampler{cfg: cfg, log: cfg.Logger, metrics: m, nyse: market.NYSE(), crypto: market.Crypto(),
		closes: newCloses(cfg.Grid), done: make(chan struct{})}, nil
}

// Report is one sample.
type Report struct {
	// At is the sample's clock (Config.Now, or the database's).
	At time.Time
	// Timeframes has an entry for every timeframe of market.Timeframes, zero when it has no
	// enabled definition.
	Timeframes map[market.Timeframe]Stats
}

// Stats is the freshness of one timeframe's enabled definitions.
type Stats struct {
	// Definitions counts the enabled (symbol, timeframe) series, fetched or not.
	Definitions int
	// Unfetched counts those not backfilled yet: no coverage row, or a NULL to_ts.
	Unfetched int
	// Worst, P50 and P99 are the largest, median and 99th-percentile (nearest rank) lags of the
	// fetched ones; zero when there are none.
	Worst, P50, P99 time.Duration
	// WorstSymbol is a symbol whose lag is Worst (the first in order among equals), "" when none
	// lags. For logs and tests: never a metric label.
	WorstSymbol string
}

// series is one row of a sample.
type series struct {
	symbol  string
	tf      market.Timeframe
	fetched bool      // coverage_status.to_ts is set
	reached time.Time // coverage_status.to_ts
}

// Sample reads the enabled definitions and their coverage in one statement, computes their lags
// and updates the metrics. Start calls it every Interval; tests and benchmarks call it directly.
func (s *Sampler) Sample(ctx context.Context) (Report, error) {
	began := time.Now()
	var at *time.Time
	if s.cfg.Now != nil {
		t := s.cfg.Now()
		at = &t
	}
	rows, err := s.cfg.Pool.Query(ctx, sampleSQL, at)
	if err != nil {
		return Report{}, fmt.Errorf("freshness: read coverage: %w", err)
	}
	var now time.Time
	var all []series
	var symbol, tf *string
	var reached *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&symbol, &tf, &reached, &now}, func() error {
		if symbol == nil || tf == nil {
			return nil // no enabled definition: the clock alone
		}
		r := series{symbol: *symbol, tf: market.Timeframe(*tf), fetched: reached != nil}
		if r.fetched {
			r.reached = *reached
		}
		all = append(all, r)
		return nil
	}); err != nil {
		return Report{}, fmt.Errorf("freshness: read coverage: %w", err)
	}
	now = now.UTC()

	rep, lags := s.evaluate(now, all)
	for _, tf := range market.Timeframes() {
		st := rep.Timeframes[tf]
		s.metrics.worst.WithLabelValues(string(tf)).Set(st.Worst.Seconds())
		s.metrics.unfetched.WithLabelValues(string(tf)).Set(float64(st.Unfetched))
		h := s.metrics.lag.WithLabelValues(string(tf))
		for _, l := range lags[tf] {
			h.Observe(l.Seconds())
		}
	}
	s.metrics.samples.Inc()
	s.metrics.sampleSeconds.Observe(time.Since(began).Seconds())
	return rep, nil
}

// evaluate computes the report of the series at now, and the lags of each timeframe's fetched
// series, ascending.
func (s *Sampler) evaluate(now time.Time, all []series) (Report, map[market.Timeframe][]time.Duration) {
	rep := Report{At: now, Timeframes: make(map[market.Timeframe]Stats, len(market.Timeframes()))}
	lags := make(map[market.Timeframe][]time.Duration, len(market.Timeframes()))
	for _, tf := range market.Timeframes() {
		rep.Timeframes[tf] = Stats{}
	}

	s.closesMu.Lock()
	s.closes.next()
	for _, r := range all {
		st, ok := rep.Timeframes[r.tf]
		if !ok {
			continue // not a timeframe (the table's CHECK rules it out)
		}
		st.Definitions++
		if !r.fetched {
			st.Unfetched++
			rep.Timeframes[r.tf] = st
			continue
		}
		l := lag(s.closes.of(s.calendar(r.symbol), r.tf), now, r.reached)
		lags[r.tf] = append(lags[r.tf], l)
		if l > 0 && (l > st.Worst || (l == st.Worst && r.symbol < st.WorstSymbol)) {
			st.Worst, st.WorstSymbol = l, r.symbol
		}
		rep.Timeframes[r.tf] = st
	}
	s.closesMu.Unlock()

	for tf, ls := range lags {
		slices.Sort(ls)
		st := rep.Timeframes[tf]
		st.P50, st.P99 = nearestRank(ls, 50), nearestRank(ls, 99)
		rep.Timeframes[tf] = st
	}
	return rep, lags
}

// nearestRank is the p-th percentile (0 < p <= 100) of ascending ls by the nearest-rank method:
// the smallest value with at least p% of the values at or below it. Zero for no values.
func nearestRank(ls []time.Duration, p int) time.Duration {
	if len(ls) == 0 {
		return 0
	}
	rank := (p*len(ls) + 99) / 100 // ceil(p/100 * n), at least 1 for p > 0
	return ls[max(rank, 1)-1]
}

func (s *Sampler) calendar(symbol string) *market.Calendar {
	if market.IsCrypto(symbol) {
		return s.crypto
	}
	return s.nyse
}

// Start samples at once and then every Interval, in the background, until ctx ends or Stop is
// called. A failed sample is logged once, at warn, and the next one comes at the next interval;
// the gauges keep the last good sample's values meanwhile.
func (s *Sampler) Start(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.started {
		return errors.New("start freshness sampler: already started")
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	s.cancel = cancel
	s.started = true
	go s.loop(runCtx)
	return nil
}

func (s *Sampler) loop(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	failing := 0
	for {
		rep, err := s.Sample(ctx)
		switch {
		case ctx.Err() != nil:
			// Stopped (Stop, or ctx ended) while sampling: not a failure of the sample.
		case err != nil:
			failing++
			s.metrics.failures.Inc()
			s.log.LogAttrs(ctx, slog.LevelWarn, "freshness sample failed",
				slog.Int("consecutive_failures", failing), slog.Any("error", err))
		default:
			if failing > 0 {
				s.log.LogAttrs(ctx, slog.LevelInfo, "freshness sampling recovered", slog.Int("failed_samples", failing))
				failing = 0
			}
			s.logReport(ctx, rep)
		}
		if s.afterSample != nil {
			s.afterSample(rep, err)
		}
		select {
		case <-ctx.Done():
			s.log.LogAttrs(ctx, slog.LevelDebug, "freshness sampler stopped", slog.Any("cause", context.Cause(ctx)))
			return
		case <-tick.C:
		}
	}
}

// logReport logs a sample at debug, one line per timeframe that has definitions.
func (s *Sampler) logReport(ctx context.Context, rep Report) {
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, tf := range market.Timeframes() {
		st := rep.Timeframes[tf]
		if st.Definitions == 0 {
			continue
		}
		s.log.LogAttrs(ctx, slog.LevelDebug, "freshness sampled", slog.String("timeframe", string(tf)),
			slog.Int("definitions", st.Definitions), slog.Int("unfetched", st.Unfetched),
			slog.Duration("worst_lag", st.Worst), slog.String("worst_symbol", st.WorstSymbol),
			slog.Duration("p99_lag", st.P99))
	}
}

// Stop ends the sampling and waits, at most until ctx ends, for a sample in progress to give up.
// It is idempotent and safe before Start.
func (s *Sampler) Stop(ctx context.Context) error {
	s.startMu.Lock()
	started := s.started
	s.startMu.Unlock()
	if !started {
		return nil
	}
	s.stopOnce.Do(func() { s.cancel(errStopped) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop freshness sampler: %w", ctx.Err())
	}
}
