package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/replicator"
)

// Provider is what the orchestrator needs of a market-data source; marketdata's providers
// satisfy it. Bars follows pagination to the end and returns bars inside [From, To), sorted
// and unique by TS; its errors are classified *marketdata.Error values.
type Provider interface {
	Name() string
	Bars(ctx context.Context, req marketdata.Request) ([]marketdata.Bar, error)
}

// Paged is a Provider that says how many bars one request returns; the default slices are
// sized to it.
type Paged interface {
	PageLimit() int
}

// Gridded is a Provider that says which bar starts it can return; the default Config.Grid.
type Gridded interface {
	Grid() market.Grid
}

var (
	_ Provider = (*marketdata.Synthetic)(nil)
	_ Provider = (*marketdata.Alpaca)(nil)
	_ Provider = (*marketdata.Massive)(nil)
	_ Paged    = (*marketdata.Synthetic)(nil)
	_ Paged    = (*marketdata.Alpaca)(nil)
	_ Paged    = (*marketdata.Massive)(nil)
	_ Gridded  = (*marketdata.Synthetic)(nil)
	_ Gridded  = (*marketdata.Alpaca)(nil)
	_ Gridded  = (*marketdata.Massive)(nil)
)

// Outcomes of a run beyond those of Fail.
const (
	Succeeded Outcome = "success"    // bars, coverage and success written
	LeaseLost Outcome = "lease_lost" // the run was taken back meanwhile; nothing recorded
)

// Config configures an Orchestrator.
type Config struct {
	// Pool is the database. Required. It needs Concurrency + 2 connections to run at full
	// speed; the LISTEN connection is opened separately from its configuration.
	Pool *pgxpool.Pool
	// Provider fetches the bars. Required.
	Provider Provider
	// Concurrency is how many runs execute at once. Default 5.
	Concurrency int
	// WriteConcurrency is how many of them write their bars at once. Fetching waits on the
	// provider and scales with Concurrency; writing is the database's CPU, and a few writers
	// at a time keep it busy without making it switch between dozens of them. Default 4 (at
	// most Concurrency).
	WriteConcurrency int
	// Tick is the planning refresh and safety net: every Tick the definitions are planned
	// again, even without a notification. Default 60s.
	Tick time.Duration
	// Poll is the fallback for a lost notification: while a worker is free, every Poll the
	// dispatcher claims queued work and plans when the definitions changed (a cheap look at
	// their count and latest updated_at), so work that arrived unannounced starts within Poll.
	// Default 1s.
	Poll time.Duration
	// Lease is how long a claimed run stays leased without a heartbeat. Heartbeats come every
	// Lease/3 and expired leases are reaped every Lease, so a killed worker's run is back in
	// the queue within about 2×Lease. Default 30s.
	Lease time.Duration
	// MaxAttempts is how many claims a run may use before a retryable failure fails it.
	// Default 5 (it overrides Retry.MaxAttempts).
	MaxAttempts int
	// Retry sets the backoff of retryable failures. Default: RetryPolicy defaults.
	Retry RetryPolicy
	// SliceSizes is the grid per timeframe. Default: SliceSizesFor(the provider's PageLimit)
	// when the provider has one (see Paged), else DefaultSliceSizes().
	SliceSizes SliceSizes
	// Grid is the provider's bar grid: a run whose range holds no bar start of it (a night, a
	// weekend, a holiday) is recorded as fetched without a request. Default: the provider's
	// own (see Gridded); for a provider without one, every range is requested.
	Grid *market.Grid
	// FetchTimeout bounds one provider call (all pages of one slice). Default 2m.
	FetchTimeout time.Duration
	// Owner names this process in job_runs.lease_owner. Default host:pid:random.
	Owner string
	// Registerer gets the metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// Logger. Default: discard.
	Logger *slog.Logger
	// Now is the clock of every statement: planning (window ends), claims, leases, retry
	// delays, reaping, writes and milestones (see the package doc, "One clock"). Default nil:
	// the database clock everywhere, one clock for every process sharing the database. Tests
	// and replays set it; it must then move forward, or nothing delayed ever falls due.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 5
	}
	if c.WriteConcurrency == 0 {
		c.WriteConcurrency = 4
	}
	c.WriteConcurrency = min(c.WriteConcurrency, max(c.Concurrency, 1))
	if c.Tick == 0 {
		c.Tick = 60 * time.Second
	}
	if c.Poll == 0 {
		c.Poll = time.Second
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	c.Retry.MaxAttempts = c.MaxAttempts
	c.Retry = c.Retry.withDefaults()
	if c.Grid == nil {
		if p, ok := c.Provider.(Gridded); ok {
			g := p.Grid()
			c.Grid = &g
		}
	}
	if c.SliceSizes == nil {
		if p, ok := c.Provider.(Paged); ok {
			c.SliceSizes = SliceSizesFor(p.PageLimit())
		} else {
			c.SliceSizes = DefaultSliceSizes()
		}
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = 2 * time.Minute
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.Owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("orchestrator config: Pool is required")
	case c.Provider == nil:
		return errors.New("orchestrator config: Provider is required")
	case c.Concurrency < 1:
		return fmt.Errorf("orchestrator config: Concurrency %d: want at least 1", c.Concurrency)
	case c.WriteConcurrency < 1:
		return fmt.Errorf("orchestrator config: WriteConcurrency %d: want at least 1", c.WriteConcurrency)
	case c.Tick <= 0, c.Poll <= 0, c.Lease < 3*time.Millisecond, c.FetchTimeout <= 0:
		return errors.New("orchestrator config: Tick, Poll, Lease and FetchTimeout must be positive")
	case c.MaxAttempts < 1:
		return fmt.Errorf("orchestrator config: MaxAttempts %d: want at least 1", c.MaxAttempts)
	}
	if err := c.SliceSizes.validate(); err != nil {
		return fmt.Errorf("orchestrator config: %w", err)
	}
	return nil
}

// errStopped is the cancellation cause of a controlled stop.
var errStopped = errors.New("orchestrator stopped")

// Orchestrator plans and runs backfill work with a pool of Concurrency workers. It wakes on
// the replicator's notification (planning the changes at once), on every finished run
// (claiming the next), when the earliest retry falls due, every Poll while a worker is free
// (claiming, and planning when the definitions changed unannounced), and every Tick (the full
// pass that also refreshes open slices).
type Orchestrator struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	nyse    *market.Calendar
	crypto  *market.Calendar
	plan    chan struct{} // buffered 1: plan, then claim
	writers chan struct{} // WriteConcurrency slots

	startMu  sync.Mutex
	started  bool
	stopOnce sync.Once
	cancel   context.CancelCauseFunc
	done     chan struct{}

	afterRun  func(Run, Outcome) // test hook, called when a run's outcome is recorded
	afterPlan func()             // test hook, called after each planning pass
}

// New validates cfg and returns a stopped Orchestrator.
func New(cfg Config) (*Orchestrator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Orchestrator{cfg: cfg, log: cfg.Logger, metrics: m, nyse: market.NYSE(), crypto: market.Crypto(), plan: make(chan struct{}, 1),
		writers: make(chan struct{}, cfg.WriteConcurrency), done: make(chan struct{})}, nil
}

// Start opens the LISTEN connection (failing fast when the database is unreachable) and starts
// planning and working in the background until ctx ends or Stop is called.
func (o *Orchestrator) Start(ctx context.Context) error {
	o.startMu.Lock()
	defer o.startMu.Unlock()
	if o.started {
		return errors.New("start orchestrator: already started")
	}
	conn, err := o.listen(ctx)
	if err != nil {
		return fmt.Errorf("start orchestrator: %w", err)
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	o.cancel = cancel
	o.started = true
	var wg sync.WaitGroup
	wg.Go(func() { o.listenLoop(runCtx, conn) })
	wg.Go(func() { o.loop(runCtx) })
	go func() {
		wg.Wait()
		close(o.done)
	}()
	return nil
}

// Stop cancels the work and waits, at most until ctx ends, for running runs to record their
// outcome (interrupted fetches go back to the queue without using an attempt). It is
// idempotent and safe before Start.
func (o *Orchestrator) Stop(ctx context.Context) error {
	o.startMu.Lock()
	started := o.started
	o.startMu.Unlock()
	if !started {
		return nil
	}
	o.stopOnce.Do(func() { o.cancel(errStopped) })
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop orchestrator: %w", ctx.Err())
	}
}

// SliceSizes is the grid this orchestrator plans on (Config.SliceSizes or its default), for
// whoever plans on its behalf, such as the control plane's RunTick: planning on another grid
// would queue slices overlapping its own.
func (o *Orchestrator) SliceSizes() SliceSizes { return maps.Clone(o.cfg.SliceSizes) }

// now is the instant the statements run at: Config.Now, or zero (the database clock).
func (o *Orchestrator) now() time.Time {
	if o.cfg.Now == nil {
		return time.Time{}
	}
	return o.cfg.Now()
}

func (o *Orchestrator) signalPlan() {
	select {
	case o.plan <- struct{}{}:
	default:
	}
}

// listen opens a connection of its own (a pooled one would hand its LISTEN to other users)
// and subscribes to the replicator's channel.
func (o *Orchestrator) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, o.cfg.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect for LISTEN: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{replicator.NotifyChannel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen on %s: %w", replicator.NotifyChannel, err)
	}
	return conn, nil
}

// listenLoop turns notifications into planning passes and reconnects with a jittered backoff
// when the connection drops (planning once more after, as notifications may have been lost).
func (o *Orchestrator) listenLoop(ctx context.Context, conn *pgx.Conn) {
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	retry := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 10 * time.Second}
	failures := 0
	for {
		if conn == nil {
			c, err := o.listen(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				failures++
				wait := retry.Backoff(failures)
				o.log.LogAttrs(ctx, slog.LevelWarn, "listen connection failed", slog.Any("error", err), slog.Duration("retry_in", wait))
				if !sleep(ctx, wait) {
					return
				}
				continue
			}
			conn, failures = c, 0
			o.signalPlan()
		}
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			o.log.LogAttrs(ctx, slog.LevelWarn, "listen connection lost", slog.Any("error", err))
			_ = conn.Close(context.WithoutCancel(ctx))
			conn = nil
			continue
		}
		o.signalPlan()
	}
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// plan kinds, in increasing order of work: none, the changes of the definitions, and the full
// pass with the refresh of open slices.
type planKind int

const (
	planNone planKind = iota
	planChanges
	planFull
)

// defsVersion is the fingerprint of job_definitions the fallback poll compares.
type defsVersion struct {
	count   int64
	updated time.Time
}

// loop is the dispatcher: it plans when asked, claims as many runs as workers are free, and
// waits for the next reason to look again.
func (o *Orchestrator) loop(ctx context.Context) {
	tick := time.NewTicker(o.cfg.Tick)
	defer tick.Stop()
	poll := time.NewTicker(o.cfg.Poll)
	defer poll.Stop()
	reap := time.NewTicker(o.cfg.Lease)
	defer reap.Stop()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	finished := make(chan struct{})
	active := 0
	plan := planFull
	var seen defsVersion
	for {
		if plan != planNone {
			o.planPass(ctx, plan == planFull)
			plan = planNone
		}
		exhausted := false
		for active < o.cfg.Concurrency && ctx.Err() == nil {
			want := o.cfg.Concurrency - active
			runs, err := Claim(ctx, o.cfg.Pool, o.now(), o.cfg.Owner, o.cfg.Lease, want)
			if err != nil {
				if ctx.Err() == nil {
					o.log.LogAttrs(ctx, slog.LevelError, "claim runs failed", slog.Any("error", err))
				}
				break
			}
			o.metrics.claimed.Add(float64(len(runs)))
			for _, r := range runs {
				o.metrics.pickup.WithLabelValues(string(r.Timeframe)).Observe(r.Waited.Seconds())
				active++
				go func() {
					o.execute(ctx, r)
					finished <- struct{}{}
				}()
			}
			if len(runs) < want {
				exhausted = true
				break
			}
		}
		if exhausted {
			o.armDue(ctx, due)
		}
		select {
		case <-ctx.Done():
			for ; active > 0; active-- {
				<-finished
			}
			return
		case <-finished:
			active--
		case <-o.plan:
			plan = max(plan, planChanges)
		case <-tick.C:
			plan = planFull
		case <-poll.C:
			// The loop claims on its way round; a change nobody announced is planned too.
			// (A change that was announced and planned already costs one more cheap pass here:
			// the fingerprint is not read on the notification's path, which stays short.)
			if active < o.cfg.Concurrency {
				if v, err := o.defsVersion(ctx); err == nil && v != seen {
					seen = v
					plan = max(plan, planChanges)
				}
			}
		case <-reap.C:
			o.reap(ctx)
		case <-due.C:
		}
	}
}

// defsVersion reads the definitions' fingerprint; errors are logged by the claim that follows.
func (o *Orchestrator) defsVersion(ctx context.Context) (defsVersion, error) {
	var v defsVersion
	err := o.cfg.Pool.QueryRow(ctx, definitionsVersionSQL).Scan(&v.count, &v.updated)
	return v, err
}

// armDue sets the timer to the moment the earliest delayed run falls due, and records the
// queue gauges.
func (o *Orchestrator) armDue(ctx context.Context, due *time.Timer) {
	next, ok := o.sampleQueue(ctx)
	if !ok {
		return
	}
	wait := o.cfg.Tick
	if next != nil {
		wait = min(wait, time.Duration(*next*float64(time.Second))+time.Millisecond)
	}
	due.Reset(wait)
}

// sampleQueue records the queue gauges and returns in how many seconds the next delayed run
// falls due (nil: none). It runs when the workers run out of due work and at every planning
// pass, so the gauges stay fresh while the workers are saturated too.
func (o *Orchestrator) sampleQueue(ctx context.Context) (next *float64, ok bool) {
	var depth int64
	var oldest float64
	if err := o.cfg.Pool.QueryRow(ctx, queueSQL, at(o.now())).Scan(&depth, &oldest, &next); err != nil {
		if ctx.Err() == nil {
			o.log.LogAttrs(ctx, slog.LevelError, "read queue failed", slog.Any("error", err))
		}
		return nil, false
	}
	o.metrics.queueDepth.Set(float64(depth))
	o.metrics.oldestQueued.Set(oldest)
	return next, true
}

// planPass enqueues the slices of every enabled definition; a full pass also refreshes open
// slices, reaps expired leases and samples the queue gauges.
func (o *Orchestrator) planPass(ctx context.Context, full bool) {
	start := time.Now()
	// A full pass refreshes slices fetched while open, unless their last fetch is younger than
	// half a tick: another process's tick or start just did it.
	res, err := enqueue(ctx, o.cfg.Pool, o.now(), o.cfg.SliceSizes, full, o.cfg.Tick/2)
	if err != nil {
		if ctx.Err() == nil {
			o.log.LogAttrs(ctx, slog.LevelError, "plan failed", slog.Any("error", err))
		}
		return
	}
	if full {
		// Kept off the path of a notified change, which goes straight on to claim; the reaper
		// has its own timer, and the gauges are sampled whenever the workers run dry too.
		o.reap(ctx)
		o.sampleQueue(ctx)
	}
	o.metrics.ticks.Inc()
	o.metrics.tickSeconds.Observe(time.Since(start).Seconds())
	if res.Inserted+res.Requeued > 0 {
		o.log.LogAttrs(ctx, slog.LevelDebug, "planned", slog.Int("inserted", res.Inserted), slog.Int("requeued", res.Requeued))
	}
	if o.afterPlan != nil {
		o.afterPlan()
	}
}

func (o *Orchestrator) reap(ctx context.Context) {
	ids, err := Reap(ctx, o.cfg.Pool, o.now(), o.cfg.MaxAttempts)
	if err != nil {
		if ctx.Err() == nil {
			o.log.LogAttrs(ctx, slog.LevelError, "reap expired leases failed", slog.Any("error", err))
		}
		return
	}
	for _, id := range ids {
		o.log.LogAttrs(ctx, slog.LevelWarn, "took back run with expired lease", slog.String("job_run_id", id))
	}
}

// execute fetches one run's slice and records the outcome, under a heartbeat throughout.
func (o *Orchestrator) execute(ctx context.Context, run Run) {
	start := time.Now()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopBeat := make(chan struct{})
	var beat sync.WaitGroup
	beat.Go(func() { o.heartbeat(runCtx, cancel, run, stopBeat) })

	// The provider is asked for nothing after the claim, so that is where the coverage this
	// run adds ends (zero: the claim's started_at in the database, the same instant).
	until := run.Claimed
	var bars []marketdata.Bar
	var err error
	if req := run.Request(); o.closedMarket(run, req) {
		// Only closed-market time (or nothing) to ask for: a request could bring no bar.
		o.metrics.skipped.WithLabelValues(string(run.Timeframe)).Inc()
	} else {
		fetchCtx, fetchCancel := context.WithTimeout(runCtx, o.cfg.FetchTimeout)
		bars, err = o.cfg.Provider.Bars(fetchCtx, marketdata.Request{
			Symbol: run.Symbol, Timeframe: run.Timeframe, From: req.From, To: req.To,
		})
		fetchCancel()
	}

	// The heartbeat goes on until the outcome is recorded: a slow write must not outlive the
	// lease. Recording is not cut short by a stop: it gets a bounded context of its own.
	rec, recCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer recCancel()
	var outcome Outcome
	switch {
	case errors.Is(context.Cause(runCtx), ErrLeaseLost):
		outcome = LeaseLost
	case err == nil:
		o.writers <- struct{}{}
		writeStart := time.Now()
		written, werr := Write(rec, o.cfg.Pool, o.now(), run, Fetched{Provider: o.cfg.Provider.Name(), Bars: bars, Until: until,
			InSession: o.inSession(run, run.Request())})
		o.metrics.writeSeconds.WithLabelValues(string(run.Timeframe)).Observe(time.Since(writeStart).Seconds())
		<-o.writers
		switch {
		case werr == nil:
			outcome = Succeeded
			o.metrics.barsWritten.WithLabelValues(string(run.Timeframe)).Add(float64(written))
			if ms, err := RecordMilestones(rec, o.cfg.Pool, o.now(), run, written); err != nil {
				// Only the latency metrics suffer: the run's result is already committed.
				o.log.LogAttrs(ctx, slog.LevelWarn, "record backfill milestones", slog.String("job_run_id", run.ID), slog.Any("error", err))
			} else {
				if ms.ReachedFirstBars {
					o.metrics.firstBars.WithLabelValues(string(run.Timeframe)).Observe(ms.FirstBars.Seconds())
				}
				if ms.ReachedCovered {
					o.metrics.covered.WithLabelValues(string(run.Timeframe)).Observe(ms.Covered.Seconds())
				}
			}
		case errors.Is(werr, ErrLeaseLost):
			outcome = LeaseLost
		default:
			o.log.LogAttrs(ctx, slog.LevelError, "write run failed", slog.String("job_run_id", run.ID), slog.Any("error", werr))
			outcome = o.fail(rec, run, werr)
		}
	default:
		outcome = o.fail(rec, run, err)
	}
	close(stopBeat)
	beat.Wait()
	if outcome == LeaseLost {
		o.log.LogAttrs(ctx, slog.LevelWarn, "run lease lost, result dropped", slog.String("job_run_id", run.ID))
	}
	o.metrics.completed.WithLabelValues(string(run.Timeframe), string(outcome)).Inc()
	o.metrics.runSeconds.WithLabelValues(string(run.Timeframe)).Observe(time.Since(start).Seconds())
	if o.afterRun != nil {
		o.afterRun(run, outcome)
	}
}

// closedMarket reports whether req holds no bar start of the provider's grid, on the symbol's
// calendar: an empty range, a night, a weekend, a holiday. Without a grid nothing is skipped.
func (o *Orchestrator) closedMarket(run Run, req Slice) bool {
	if !req.To.After(req.From) {
		return true
	}
	if o.cfg.Grid == nil {
		return false
	}
	return !o.cfg.Grid.Any(o.calendar(run.Symbol), run.Timeframe, req.From, req.To)
}

// inSession reports that req holds the last bar of no session that had ended by the claim (a
// refresh inside a session): its write need not wake the completeness check. Without a grid,
// or without the claim's instant, it says false: let the check look.
func (o *Orchestrator) inSession(run Run, req Slice) bool {
	if o.cfg.Grid == nil || run.Claimed.IsZero() {
		return false
	}
	return !o.cfg.Grid.EndsSession(o.calendar(run.Symbol), run.Timeframe, req.From, req.To, run.Claimed)
}

func (o *Orchestrator) calendar(symbol string) *market.Calendar {
	if market.IsCrypto(symbol) {
		return o.crypto
	}
	return o.nyse
}

func (o *Orchestrator) fail(ctx context.Context, run Run, cause error) Outcome {
	out, err := Fail(ctx, o.cfg.Pool, o.now(), run, cause, o.cfg.Retry)
	switch {
	case errors.Is(err, ErrLeaseLost):
		return LeaseLost
	case err != nil:
		// The lease will lapse and the reaper will take the run back.
		o.log.LogAttrs(ctx, slog.LevelError, "record run failure failed", slog.String("job_run_id", run.ID), slog.Any("error", err))
		return LeaseLost
	}
	o.log.LogAttrs(ctx, slog.LevelInfo, "run failed", slog.String("job_run_id", run.ID),
		slog.String("outcome", string(out)), slog.Int("attempt", run.Attempt), slog.Any("error", cause))
	return out
}

// heartbeat renews the run's lease every Lease/3 until stop closes; a lost lease cancels the
// run with ErrLeaseLost.
func (o *Orchestrator) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, run Run, stop <-chan struct{}) {
	t := time.NewTicker(o.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			err := Heartbeat(ctx, o.cfg.Pool, o.now(), run, o.cfg.Lease)
			switch {
			case errors.Is(err, ErrLeaseLost):
				cancel(ErrLeaseLost)
				return
			case err != nil && ctx.Err() == nil:
				o.log.LogAttrs(ctx, slog.LevelWarn, "heartbeat failed", slog.String("job_run_id", run.ID), slog.Any("error", err))
			}
		}
	}
}
