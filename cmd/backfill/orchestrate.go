package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/budget"
	"github.com/symbolsync/backfill/completeness"
	"github.com/symbolsync/backfill/freshness"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/replicator"
)

// orchConfig is what the orchestrator runs with, in both `serve` and `dev`.
type orchConfig struct {
	provider         string
	concurrency      int
	writeConcurrency int
	tick             time.Duration
	lease            time.Duration
	syntheticLatency time.Duration
	syntheticErrors  float64
	syntheticHours   string
	alpacaFeed       string
	providerRate     float64
	providerPace     float64
	maxBatch         int
	fetchConcurrency int
	settle           time.Duration
	retryDelay       time.Duration
	fetchTimeout     time.Duration
	checkInterval    time.Duration
	checkSweep       time.Duration
	maxRepairs       int
}

func (c *orchConfig) register(f *flags, defaultProvider string) {
	f.String(&c.provider, "provider", "BACKFILL_PROVIDER", defaultProvider,
		"market-data provider: synthetic (offline, deterministic, stored as provider='synthetic'), alpaca (keys from APCA_API_KEY_ID and APCA_API_SECRET_KEY), massive (key from MASSIVE_API_KEY), or none (no orchestrator in this process)")
	f.Int(&c.concurrency, "concurrency", "BACKFILL_CONCURRENCY", 5, "runs fetched at once")
	f.Int(&c.writeConcurrency, "write-concurrency", "BACKFILL_WRITE_CONCURRENCY", 4, "runs writing their bars at once (the database's share; at most --concurrency)")
	f.Duration(&c.tick, "tick", "BACKFILL_TICK", 60*time.Second, "planning refresh and safety net; work starts at once on changes, not on the tick")
	f.Duration(&c.lease, "lease", "BACKFILL_LEASE", 30*time.Second,
		"how long a claimed run stays leased without a heartbeat; a killed worker's run is queued again within about twice this")
	f.Duration(&c.syntheticLatency, "synthetic-latency", "BACKFILL_SYNTHETIC_LATENCY", 0, "simulated latency of each synthetic provider call")
	f.Float64(&c.syntheticErrors, "synthetic-error-rate", "BACKFILL_SYNTHETIC_ERROR_RATE", 0,
		"fraction of synthetic provider calls, in [0, 1], that fail with a retryable error (fault drills)")
	f.String(&c.syntheticHours, "synthetic-hours", "BACKFILL_SYNTHETIC_HOURS", "regular",
		"hours of the synthetic provider's intraday bars: regular (09:30 to the close) or extended (04:00-20:00 ET, as Alpaca's and Massive's feeds)")
	f.String(&c.alpacaFeed, "alpaca-feed", "BACKFILL_ALPACA_FEED", "iex", "Alpaca data feed: iex (free) or sip (paid)")
	f.Float64(&c.providerRate, "provider-rate", "BACKFILL_PROVIDER_RATE", 0,
		"requests a minute the provider plan allows the whole deployment (0: the free plan's, alpaca 200, massive 5): one budget in the database, shared by every serve process")
	f.Float64(&c.providerPace, "provider-pace", "BACKFILL_PROVIDER_PACE", 0.95,
		"fraction of --provider-rate actually used, in (0, 1], so that clock skew and the provider's own accounting never see more than the plan (lowered for plans too small for a burst)")
	f.Int(&c.maxBatch, "max-batch", "BACKFILL_MAX_BATCH", 0,
		"runs of one timeframe and slice fetched with one multi-symbol request (0: as many as the provider allows in one URL; 1: one symbol per request)")
	f.Int(&c.fetchConcurrency, "fetch-concurrency", "BACKFILL_FETCH_CONCURRENCY", 0,
		"of the --concurrency batches, how many call the provider at once (0: 2 for alpaca and massive, whose request budget is the bottleneck, so each batch finishes soon after it starts; --concurrency for synthetic)")
	f.Duration(&c.settle, "refresh-settle", "BACKFILL_REFRESH_SETTLE", 15*time.Second,
		"how long after a bar closes its refresh waits (open slices are refreshed only after a bar of their timeframe closed)")
	f.Duration(&c.retryDelay, "retry-delay", "BACKFILL_RETRY_DELAY", 5*time.Second,
		"wait before the second attempt of a run that failed with a retryable error; it doubles per attempt (jittered, at most 10m)")
	f.Duration(&c.checkInterval, "check-interval", "BACKFILL_CHECK_INTERVAL", time.Minute,
		"how often the completeness check looks at the definitions whose bars changed (and its sweep's share); holes it finds are repaired")
	f.Duration(&c.checkSweep, "check-sweep", "BACKFILL_CHECK_SWEEP", 24*time.Hour,
		"every enabled definition is checked for holes at least this often, changed or not")
	f.Int(&c.maxRepairs, "max-repairs", "BACKFILL_MAX_REPAIRS", 3,
		"repair runs a hole gets before it is given up (it stays visible; `backfill verify --repair` tries again)")
	f.Duration(&c.fetchTimeout, "fetch-timeout", "BACKFILL_FETCH_TIMEOUT", 2*time.Minute,
		"upper bound on fetching one slice, all pages and rate-limiter waits included; a fetch cut short is retried")
}

// newProvider builds the configured provider; keys come from the environment, never flags, so
// they stay out of process listings. APCA_API_DATA_URL (the name Alpaca's SDKs read) and
// MASSIVE_API_URL point a provider at another host: a sandbox, a proxy, a test server.
func newProvider(c orchConfig, getenv func(string) string, limiter marketdata.Limiter, reg prometheus.Registerer, logger *slog.Logger) (orchestrator.Provider, error) {
	switch c.provider {
	case "synthetic":
		hours, err := market.ParseHours(c.syntheticHours)
		if err != nil {
			return nil, fmt.Errorf("--synthetic-hours: %w", err)
		}
		return marketdata.NewSynthetic(marketdata.SyntheticConfig{Latency: c.syntheticLatency, ErrorRate: c.syntheticErrors, Hours: hours, Registerer: reg, Logger: logger})
	case "alpaca":
		return marketdata.NewAlpaca(marketdata.AlpacaConfig{
			BaseURL: getenv("APCA_API_DATA_URL"), KeyID: getenv("APCA_API_KEY_ID"), SecretKey: getenv("APCA_API_SECRET_KEY"),
			Feed: c.alpacaFeed, RequestsPerMinute: c.providerRate, Limiter: limiter, Registerer: reg, Logger: logger,
		})
	case "massive":
		return marketdata.NewMassive(marketdata.MassiveConfig{
			BaseURL: getenv("MASSIVE_API_URL"), APIKey: cmp.Or(getenv("MASSIVE_API_KEY"), getenv("POLYGON_API_KEY")),
			RequestsPerMinute: c.providerRate, Limiter: limiter, Registerer: reg, Logger: logger,
		})
	}
	return nil, fmt.Errorf("--provider %q: want synthetic, alpaca, massive or none", c.provider)
}

// planRates are the free plans' limits, per minute: what --provider-rate 0 means.
var planRates = map[string]float64{"alpaca": 200, "massive": 5}

// sharedBudget is the provider's request budget in the database (package budget), shared by
// every process that fetches from the same provider: --provider-rate is the plan's limit for
// the whole deployment, not per process. The synthetic provider has none (nil).
func sharedBudget(ctx context.Context, c orchConfig, pool *pgxpool.Pool, reg prometheus.Registerer, logger *slog.Logger) (marketdata.Limiter, error) {
	plan, ok := planRates[c.provider]
	if !ok {
		return nil, nil
	}
	if c.providerRate > 0 {
		plan = c.providerRate
	}
	// A plan too small for the pace plus a burst of one (Massive's 5 a minute) is paced at one
	// request under it: no 60-second window then holds more than the plan.
	pace := min(c.providerPace, (plan-1)/plan)
	if pace <= 0 {
		return nil, fmt.Errorf("%w: --provider-rate %g: want more than one request a minute", errUsage, plan)
	}
	b, err := budget.New(ctx, budget.Config{Pool: pool, Provider: c.provider, PerMinute: plan, Pace: pace, Registerer: reg, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("provider budget: %w", err)
	}
	return b, nil
}

// orchestration is what startOrchestrator started.
type orchestration struct {
	// stop ends the orchestrator, the completeness checker and the freshness sampler.
	stop func()
	// grid is the slice grid the orchestrator plans on (nil without an orchestrator).
	grid orchestrator.SliceSizes
	// checker checks and heals completeness (nil without an orchestrator).
	checker *completeness.Checker
}

// startOrchestrator starts the orchestrator, the completeness checker and the freshness sampler,
// unless the provider is "none".
func startOrchestrator(ctx context.Context, c orchConfig, getenv func(string) string, pool *pgxpool.Pool,
	reg prometheus.Registerer, logger *slog.Logger) (orchestration, error) {
	none := orchestration{stop: func() {}}
	if c.provider == "none" {
		return none, nil
	}
	if c.concurrency < 1 || c.writeConcurrency < 1 {
		return none, fmt.Errorf("%w: --concurrency and --write-concurrency must be at least 1", errUsage)
	}
	if c.retryDelay <= 0 || c.providerRate < 0 {
		return none, fmt.Errorf("%w: --retry-delay must be positive and --provider-rate not negative", errUsage)
	}
	if c.checkInterval <= 0 || c.checkSweep <= 0 || c.maxRepairs < 1 {
		return none, fmt.Errorf("%w: --check-interval and --check-sweep must be positive and --max-repairs at least 1", errUsage)
	}
	if c.providerPace <= 0 || c.providerPace > 1 || c.maxBatch < 0 || c.settle < 0 || c.fetchConcurrency < 0 {
		return none, fmt.Errorf("%w: --provider-pace must be in (0, 1], --max-batch, --fetch-concurrency and --refresh-settle not negative", errUsage)
	}
	fetchConcurrency := c.fetchConcurrency
	if _, budgeted := planRates[c.provider]; budgeted && fetchConcurrency == 0 {
		fetchConcurrency = 2
	}
	limiter, err := sharedBudget(ctx, c, pool, reg, logger.With("component", "budget"))
	if err != nil {
		return none, err
	}
	p, err := newProvider(c, getenv, limiter, reg, logger.With("component", "provider"))
	if err != nil {
		return none, fmt.Errorf("%w: %w", errUsage, err)
	}
	o, err := orchestrator.New(orchestrator.Config{
		Pool: pool, Provider: p, Concurrency: c.concurrency, WriteConcurrency: c.writeConcurrency, Tick: c.tick, Lease: c.lease,
		Retry: orchestrator.RetryPolicy{BaseDelay: c.retryDelay}, FetchTimeout: c.fetchTimeout, Settle: c.settle, MaxBatch: c.maxBatch,
		FetchConcurrency: fetchConcurrency,
		Registerer:       reg, Logger: logger.With("component", "orchestrator"),
	})
	if err != nil {
		return none, fmt.Errorf("%w: %w", errUsage, err)
	}
	gridded, ok := p.(orchestrator.Gridded)
	if !ok {
		return none, fmt.Errorf("provider %s has no bar grid", p.Name())
	}
	checker, err := completeness.New(completeness.Config{
		Pool: pool, Grid: gridded.Grid(), Interval: c.checkInterval, SweepEvery: c.checkSweep, MaxRepairs: c.maxRepairs,
		NotifyChannel: replicator.NotifyChannel, Registerer: reg, Logger: logger.With("component", "completeness"),
	})
	if err != nil {
		return none, fmt.Errorf("%w: %w", errUsage, err)
	}
	sampler, err := freshness.New(freshness.Config{Pool: pool, Grid: gridded.Grid(), Registerer: reg, Logger: logger.With("component", "freshness")})
	if err != nil {
		return none, fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := o.Start(ctx); err != nil {
		return none, err
	}
	stopOrch := func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := o.Stop(stopCtx); err != nil {
			logger.Error("stop orchestrator", slog.Any("error", err))
		}
	}
	if err := checker.Start(ctx); err != nil {
		stopOrch()
		return none, err
	}
	if err := sampler.Start(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = checker.Stop(stopCtx)
		stopOrch()
		return none, err
	}
	return orchestration{
		stop: func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := sampler.Stop(stopCtx); err != nil {
				logger.Error("stop freshness sampler", slog.Any("error", err))
			}
			if err := checker.Stop(stopCtx); err != nil {
				logger.Error("stop completeness checker", slog.Any("error", err))
			}
			stopOrch()
		},
		grid:    o.SliceSizes(),
		checker: checker,
	}, nil
}
