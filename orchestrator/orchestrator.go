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
	"slices"
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

// batcher is a Provider that serves many symbols in one request (marketdata.MultiProvider).
type batcher interface {
	BarsMulti(ctx context.Context, req marketdata.MultiRequest) (marketdata.MultiResult, error)
	MaxSymbols() int
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
	_ batcher  = (*marketdata.Alpaca)(nil)
	_ batcher  = (*marketdata.Synthetic)(nil)
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
	// FetchTimeout bounds one provider call (all pages of one batch's request). Default 2m.
	FetchTimeout time.Duration
	// Settle is how long after a bar's end its refresh waits, so that the provider has the
	// finished bar (and clocks that disagree by less than it do not matter). With a Grid, open
	// slices are refreshed only once a bar of their timeframe has closed: during a session
	// right after each bar boundary plus Settle, once more after the close, never at night,
	// on weekends or holidays. Default 15s.
	Settle time.Duration
	// FetchConcurrency is how many of the Concurrency batches call the provider at once; the
	// others wait, claimed, for their turn. When a request budget is the bottleneck, a few
	// streams keep it busy through the provider's latency while each batch still finishes (and
	// is written, and shows its first bars) soon after it started, instead of every batch
	// finishing together at the end, their pages interleaved. Default Concurrency.
	FetchConcurrency int
	// MaxBatch is how many runs of one timeframe and slice one claim takes, to be fetched
	// with as few multi-symbol requests as their ranges allow. Default: the provider's
	// MaxSymbols for a provider that serves several symbols per request (marketdata.
	// MultiProvider), else 1.
	MaxBatch int
	// BatchBars bounds a batch by the bars it asks for (estimated on the Grid from the first
	// run's range, times the runs): a backfill of a long window takes fewer batch-mates than
	// a refresh of one bar each, so a high-priority run's first bars are not held up behind
	// many pages of batch-mates. Default 10 pages (10 × the provider's PageLimit, or 10,000).
	BatchBars int
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
	if c.Settle == 0 {
		c.Settle = 15 * time.Second
	}
	if c.FetchConcurrency == 0 {
		c.FetchConcurrency = c.Concurrency
	}
	c.FetchConcurrency = min(c.FetchConcurrency, max(c.Concurrency, 1))
	if c.MaxBatch == 0 {
		c.MaxBatch = 1
		if p, ok := c.Provider.(batcher); ok {
			c.MaxBatch = max(p.MaxSymbols(), 1)
		}
	}
	if c.BatchBars == 0 {
		c.BatchBars = 10 * 1000
		if p, ok := c.Provider.(Paged); ok {
			c.BatchBars = 10 * max(p.PageLimit(), 1)
		}
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
	case c.Settle < 0:
		return fmt.Errorf("orchestrator config: Settle %s: must not be negative", c.Settle)
	case c.FetchConcurrency < 1:
		return fmt.Errorf("orchestrator config: FetchConcurrency %d: want at least 1", c.FetchConcurrency)
	case c.MaxBatch < 1, c.BatchBars < 1:
		return fmt.Errorf("orchestrator config: MaxBatch %d and BatchBars %d: want at least 1", c.MaxBatch, c.BatchBars)
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
	fetches chan struct{} // FetchConcurrency slots

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
		writers: make(chan struct{}, cfg.WriteConcurrency), fetches: make(chan struct{}, cfg.FetchConcurrency), done: make(chan struct{})}, nil
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

// plan is what a planning pass does, as flags.
type plan int

const (
	planChanges plan = 1 << iota // the definitions changed since they were last planned
	planAll                      // every enabled definition (start, tick)
	planRefresh                  // queue again the open slices a closed bar has made stale
)

// defsVersion is the fingerprint of job_definitions the fallback poll compares.
type defsVersion struct {
	count   int64
	updated time.Time
}

// loop is the dispatcher: it plans when asked, claims batches while workers are free, and
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
	refresh := time.NewTimer(time.Hour)
	defer refresh.Stop()
	finished := make(chan struct{})
	active := 0
	todo := planAll | planRefresh
	var nextRefresh time.Time
	var seen defsVersion
	for {
		if !nextRefresh.IsZero() && !o.clock().Before(nextRefresh) {
			todo |= planRefresh
		}
		if todo != 0 {
			if next, ok := o.planPass(ctx, todo); ok {
				nextRefresh = next
			} else if todo&planRefresh != 0 {
				// The refresh failed (logged): try again in a second, not in a tight loop.
				nextRefresh = o.clock().Add(time.Second)
			}
			todo = 0
		}
		o.armRefresh(refresh, nextRefresh)
		exhausted := false
		for active < o.cfg.Concurrency && ctx.Err() == nil {
			runs, err := o.claimBatch(ctx)
			if err != nil {
				if ctx.Err() == nil {
					o.log.LogAttrs(ctx, slog.LevelError, "claim runs failed", slog.Any("error", err))
				}
				break
			}
			if len(runs) == 0 {
				exhausted = true
				break
			}
			o.metrics.claimed.Add(float64(len(runs)))
			o.metrics.batchRuns.WithLabelValues(string(runs[0].Timeframe)).Observe(float64(len(runs)))
			for _, r := range runs {
				o.metrics.pickup.WithLabelValues(string(r.Timeframe)).Observe(r.Waited.Seconds())
			}
			active++
			go func() {
				o.executeBatch(ctx, runs)
				finished <- struct{}{}
			}()
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
			todo |= planChanges
		case <-tick.C:
			todo |= planAll | planRefresh
		case <-refresh.C:
		case <-poll.C:
			// The loop claims on its way round; a change nobody announced is planned too.
			// (A change that was announced and planned already costs one more cheap look here:
			// the fingerprint is not read on the notification's path, which stays short.)
			if active < o.cfg.Concurrency {
				if v, err := o.defsVersion(ctx); err == nil && v != seen {
					seen = v
					todo |= planChanges
				}
			}
		case <-reap.C:
			o.reap(ctx)
		case <-due.C:
		}
	}
}

// clock is the scheduler's notion of now: Config.Now, or the process clock when the statements
// use the database's (the refresh instants then differ from the database clock by the hosts'
// skew, which Settle absorbs).
func (o *Orchestrator) clock() time.Time {
	if o.cfg.Now != nil {
		return o.cfg.Now()
	}
	return time.Now()
}

// armRefresh sets the refresh timer to the next refresh instant. With an injected clock, which
// may run faster than the process clock, it wakes at least every Poll to look at that clock.
func (o *Orchestrator) armRefresh(t *time.Timer, next time.Time) {
	d := time.Hour
	if !next.IsZero() {
		d = max(next.Sub(o.clock()), 0) + time.Millisecond
	}
	if o.cfg.Now != nil {
		d = min(d, o.cfg.Poll)
	}
	t.Reset(d)
}

// claimBatch claims the next batch: the first due run and its batch-mates, as many as the
// provider serves in one request and BatchBars allows for the first run's range, under the
// slice's advisory lock so that processes claiming at once do not split the slice.
func (o *Orchestrator) claimBatch(ctx context.Context) ([]Run, error) {
	if o.cfg.MaxBatch <= 1 {
		return ClaimBatch(ctx, o.cfg.Pool, o.now(), o.cfg.Owner, o.cfg.Lease, 1)
	}
	next, ok, err := PeekNext(ctx, o.cfg.Pool, o.now())
	if err != nil || !ok {
		return nil, err
	}
	var runs []Run
	err = pgx.BeginFunc(ctx, o.cfg.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, claimLockSQL, next.lockKey()); err != nil {
			return fmt.Errorf("lock the slice for a batch claim: %w", err)
		}
		runs, err = ClaimBatch(ctx, tx, o.now(), o.cfg.Owner, o.cfg.Lease, o.batchSize(next))
		return err
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}

// batchSize is how many runs to claim with next: BatchBars over the bars next's range holds
// (on the grid; without one, a bar every timeframe step), within [1, MaxBatch].
func (o *Orchestrator) batchSize(next Next) int {
	from, to := next.From, next.Slice.To
	if next.Refresh && !next.LastFetched.IsZero() && next.LastFetched.After(from) {
		from = next.LastFetched.Add(-next.Timeframe.Duration())
	}
	if now := o.clock(); now.Before(to) {
		to = now
	}
	var bars int
	switch {
	case !to.After(from) || !next.Timeframe.Valid():
		bars = 1
	case o.cfg.Grid != nil:
		bars = len(o.cfg.Grid.Starts(market.For(next.Symbol), next.Timeframe, from, to))
	default:
		bars = int(to.Sub(from) / next.Timeframe.Duration())
	}
	return min(max(o.cfg.BatchBars/max(bars, 1), 1), o.cfg.MaxBatch)
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

// planPass plans what todo says: the changed definitions, or all of them, and the refresh of
// open slices a closed bar made stale; a pass over all also reaps expired leases and samples
// the queue gauges. It returns the next refresh instant when it refreshed (ok), else ok false.
func (o *Orchestrator) planPass(ctx context.Context, todo plan) (nextRefresh time.Time, ok bool) {
	start := time.Now()
	var res EnqueueResult
	var err error
	switch {
	case todo&planAll != 0:
		res, err = EnqueueAll(ctx, o.cfg.Pool, o.now(), o.cfg.SliceSizes)
	case todo&planChanges != 0:
		res, err = EnqueueChanges(ctx, o.cfg.Pool, o.now(), o.cfg.SliceSizes)
	}
	if err != nil {
		if ctx.Err() == nil {
			o.log.LogAttrs(ctx, slog.LevelError, "plan failed", slog.Any("error", err))
		}
		return time.Time{}, false
	}
	if todo&planRefresh != 0 {
		now := o.clock()
		after := make(map[market.Timeframe]RefreshAfter, len(o.cfg.SliceSizes))
		for tf := range o.cfg.SliceSizes {
			after[tf] = RefreshAfter{Stock: o.refreshAfter(o.nyse, tf, now), Crypto: o.refreshAfter(o.crypto, tf, now)}
		}
		queued, err := Refresh(ctx, o.cfg.Pool, o.now(), after)
		if err != nil {
			if ctx.Err() == nil {
				o.log.LogAttrs(ctx, slog.LevelError, "refresh failed", slog.Any("error", err))
			}
			return time.Time{}, false
		}
		for tf, n := range queued {
			o.metrics.refreshed.WithLabelValues(string(tf)).Add(float64(n))
			res.Refreshed += n
		}
		nextRefresh, ok = o.nextRefresh(now), true
	}
	if todo&planAll != 0 {
		// Kept off the path of a notified change, which goes straight on to claim; the reaper
		// has its own timer, and the gauges are sampled whenever the workers run dry too.
		o.reap(ctx)
		o.sampleQueue(ctx)
	}
	o.metrics.ticks.Inc()
	o.metrics.tickSeconds.Observe(time.Since(start).Seconds())
	if res.Inserted+res.Requeued+res.Refreshed > 0 {
		o.log.LogAttrs(ctx, slog.LevelDebug, "planned", slog.Int("inserted", res.Inserted), slog.Int("requeued", res.Requeued),
			slog.Int("refreshed", res.Refreshed))
	}
	if o.afterPlan != nil {
		o.afterPlan()
	}
	return nextRefresh, ok
}

// refreshAfter is the instant after which tf's newest bar on cal closed, Settle included: an
// open slice fetched before it may lack that bar. Without a grid every open slice fetched
// before now is stale, as every tick used to refresh them all.
func (o *Orchestrator) refreshAfter(cal *market.Calendar, tf market.Timeframe, now time.Time) time.Time {
	if o.cfg.Grid == nil {
		return now
	}
	_, end, ok := o.cfg.Grid.LastClosed(cal, tf, now.Add(-o.cfg.Settle))
	if !ok {
		return time.Unix(0, 0).UTC() // no bar closed lately: nothing is stale
	}
	return end.Add(o.cfg.Settle)
}

// nextRefresh is the next instant a bar of a planned timeframe closes (plus Settle), on either
// calendar; without a grid, the next tick.
func (o *Orchestrator) nextRefresh(now time.Time) time.Time {
	if o.cfg.Grid == nil {
		return now.Add(o.cfg.Tick)
	}
	next := now.Add(24 * time.Hour)
	for tf := range o.cfg.SliceSizes {
		for _, cal := range []*market.Calendar{o.nyse, o.crypto} {
			if e, ok := o.cfg.Grid.NextClose(cal, tf, now.Add(-o.cfg.Settle)); ok && e.Add(o.cfg.Settle).Before(next) {
				next = e.Add(o.cfg.Settle)
			}
		}
	}
	return next
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

// fetched is the outcome of one run of a batch, before it is recorded: a run whose range holds
// only closed-market time has neither bars nor error (recorded as fetched, without a request).
type fetched struct {
	bars []marketdata.Bar
	err  error
}

// executeBatch fetches a claimed batch (runs of one timeframe and slice) with as few provider
// calls as their ranges allow, writes the runs that succeeded with one statement, records the
// failures one by one, all under one heartbeat.
func (o *Orchestrator) executeBatch(ctx context.Context, runs []Run) {
	start := time.Now()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopBeat := make(chan struct{})
	var beat sync.WaitGroup
	beat.Go(func() { o.heartbeat(runCtx, cancel, runs, stopBeat) })

	got := make([]fetched, len(runs))
	for _, g := range o.groups(runs) {
		o.fetchGroup(runCtx, runs, g, got)
	}

	// The heartbeat goes on until the outcomes are recorded: a slow write must not outlive the
	// lease. Recording is not cut short by a stop: it gets a bounded context of its own.
	rec, recCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer recCancel()
	outcomes := make([]Outcome, len(runs))
	allLost := errors.Is(context.Cause(runCtx), ErrLeaseLost)
	var ok []int
	for i := range runs {
		switch {
		case allLost:
			outcomes[i] = LeaseLost
		case got[i].err == nil:
			ok = append(ok, i)
		default:
			outcomes[i] = o.fail(rec, runs[i], got[i].err)
		}
	}
	o.record(ctx, rec, runs, got, ok, outcomes)
	close(stopBeat)
	beat.Wait()
	for i, r := range runs {
		if outcomes[i] == LeaseLost {
			o.log.LogAttrs(ctx, slog.LevelWarn, "run lease lost, result dropped", slog.String("job_run_id", r.ID))
		}
		o.metrics.completed.WithLabelValues(string(r.Timeframe), string(outcomes[i])).Inc()
		o.metrics.runSeconds.WithLabelValues(string(r.Timeframe)).Observe(time.Since(start).Seconds())
		if o.afterRun != nil {
			o.afterRun(r, outcomes[i])
		}
	}
}

// record writes the runs at indexes ok, one statement per set of distinct symbols (one,
// unless a symbol has two definitions of the timeframe), then their milestones.
func (o *Orchestrator) record(ctx, rec context.Context, runs []Run, got []fetched, ok []int, outcomes []Outcome) {
	written := map[string]int64{} // by definition
	for len(ok) > 0 {
		var results []Result
		var idx, rest []int
		seen := map[string]bool{}
		for _, i := range ok {
			if seen[runs[i].SymbolID] {
				rest = append(rest, i)
				continue
			}
			seen[runs[i].SymbolID] = true
			idx = append(idx, i)
			// The provider was asked for nothing after the claim, so that is where the coverage
			// this run adds ends (zero Until: the claim's started_at in the database).
			results = append(results, Result{Run: runs[i], Fetched: Fetched{Provider: o.cfg.Provider.Name(), Bars: got[i].bars,
				Until: runs[i].Claimed, InSession: o.inSession(runs[i], runs[i].Request())}})
		}
		ok = rest
		o.writers <- struct{}{}
		writeStart := time.Now()
		done, err := WriteBatch(rec, o.cfg.Pool, o.now(), o.cfg.Provider.Name(), results)
		o.metrics.writeSeconds.WithLabelValues(string(runs[0].Timeframe)).Observe(time.Since(writeStart).Seconds())
		<-o.writers
		for _, i := range idx {
			n, recorded := done[runs[i].ID]
			switch {
			case err != nil:
				o.log.LogAttrs(ctx, slog.LevelError, "write run failed", slog.String("job_run_id", runs[i].ID),
					slog.String("symbol", runs[i].Symbol), slog.Any("error", err))
				outcomes[i] = o.fail(rec, runs[i], err)
			case !recorded:
				outcomes[i] = LeaseLost
			default:
				outcomes[i] = Succeeded
				o.metrics.barsWritten.WithLabelValues(string(runs[i].Timeframe)).Add(float64(n))
				written[runs[i].JobDefID] += n
			}
		}
	}
	ms, err := RecordMilestonesBatch(rec, o.cfg.Pool, o.now(), written)
	if err != nil {
		// Only the latency metrics suffer: the runs' results are already committed.
		o.log.LogAttrs(ctx, slog.LevelWarn, "record backfill milestones", slog.Any("error", err))
		return
	}
	tf := string(runs[0].Timeframe)
	for _, m := range ms {
		if m.ReachedFirstBars {
			o.metrics.firstBars.WithLabelValues(tf).Observe(m.FirstBars.Seconds())
		}
		if m.ReachedCovered {
			o.metrics.covered.WithLabelValues(tf).Observe(m.Covered.Seconds())
		}
	}
}

// groups splits a batch (indexes into runs) into provider calls: runs whose requests start
// close together (within a bar, or a tenth of the range) share one multi-symbol request for the
// union of their ranges; each symbol once per request. Without multi-symbol support every run
// is its own call.
func (o *Orchestrator) groups(runs []Run) [][]int {
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	if _, ok := o.cfg.Provider.(batcher); !ok || o.cfg.MaxBatch < 2 {
		out := make([][]int, len(runs))
		for i := range runs {
			out[i] = []int{i}
		}
		return out
	}
	slices.SortStableFunc(idx, func(a, b int) int { return runs[a].Request().From.Compare(runs[b].Request().From) })
	var out [][]int
	var cur []int
	var from time.Time
	syms := map[string]bool{}
	for _, i := range idx {
		req := runs[i].Request()
		tol := max(runs[i].Timeframe.Duration(), req.To.Sub(from)/10)
		if len(cur) == 0 || req.From.Sub(from) > tol || syms[runs[i].Symbol] || len(cur) >= o.cfg.MaxBatch {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur, from, syms = nil, req.From, map[string]bool{}
		}
		cur = append(cur, i)
		syms[runs[i].Symbol] = true
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// fetchGroup asks the provider for the group's runs (indexes into runs) in one call, skipping
// the runs whose range holds only closed-market time, and stores each run's bars or error in
// got.
func (o *Orchestrator) fetchGroup(ctx context.Context, runs []Run, group []int, got []fetched) {
	var ask []int
	for _, i := range group {
		if o.closedMarket(runs[i], runs[i].Request()) {
			// Only closed-market time (or nothing) to ask for: a request could bring no bar.
			o.metrics.skipped.WithLabelValues(string(runs[i].Timeframe)).Inc()
			continue
		}
		ask = append(ask, i)
	}
	if len(ask) == 0 {
		return
	}
	first := runs[ask[0]]
	select {
	case o.fetches <- struct{}{}:
		defer func() { <-o.fetches }()
	case <-ctx.Done():
		for _, i := range ask {
			got[i].err = fmt.Errorf("wait for a fetch slot: %w", ctx.Err()) // a shutdown: queued again at once
		}
		return
	}
	o.metrics.requests.WithLabelValues(string(first.Timeframe), first.Purpose).Inc()
	fetchCtx, cancel := context.WithTimeout(ctx, o.cfg.FetchTimeout)
	defer cancel()
	multi, ok := o.cfg.Provider.(batcher)
	if !ok || len(ask) == 1 {
		for _, i := range ask {
			req := runs[i].Request()
			got[i].bars, got[i].err = o.cfg.Provider.Bars(fetchCtx, marketdata.Request{
				Symbol: runs[i].Symbol, Timeframe: runs[i].Timeframe, From: req.From, To: req.To, Purpose: runs[i].Purpose,
			})
		}
		return
	}
	req := marketdata.MultiRequest{Timeframe: first.Timeframe, Purpose: first.Purpose}
	for _, i := range ask {
		r := runs[i].Request()
		if req.From.IsZero() || r.From.Before(req.From) {
			req.From = r.From
		}
		if r.To.After(req.To) {
			req.To = r.To
		}
		req.Symbols = append(req.Symbols, runs[i].Symbol)
	}
	res, err := multi.BarsMulti(fetchCtx, req)
	if err != nil && ctx.Err() == nil {
		o.log.LogAttrs(ctx, slog.LevelInfo, "batch failed", slog.String("timeframe", string(req.Timeframe)),
			slog.Int("symbols", len(req.Symbols)), slog.String("purpose", req.Purpose), slog.Any("error", err))
		err = batchError{err}
	}
	for _, i := range ask {
		sym := runs[i].Symbol
		switch {
		case err != nil:
			got[i].err = err
		case res.Rejected[sym] != nil:
			got[i].err = res.Rejected[sym]
		default:
			// Bars outside the run's own range are dropped when it is written.
			got[i].bars = res.Bars[sym]
		}
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
	if !errors.Is(cause, errBatchFailed) {
		o.log.LogAttrs(ctx, slog.LevelInfo, "run failed", slog.String("job_run_id", run.ID), slog.String("symbol", run.Symbol),
			slog.String("timeframe", string(run.Timeframe)), slog.String("outcome", string(out)), slog.Int("attempt", run.Attempt),
			slog.Any("error", cause))
	}
	return out
}

// errBatchFailed marks the error of a provider call that failed for a whole group of
// batch-mates: it is logged once for the group, not once per run.
var errBatchFailed = errors.New("batch failed")

// batchError wraps a group's error so that errors.Is finds errBatchFailed and the provider's
// classification (errors.As *marketdata.Error) still works.
type batchError struct{ err error }

func (e batchError) Error() string   { return e.err.Error() }
func (e batchError) Unwrap() []error { return []error{e.err, errBatchFailed} }

// heartbeat renews the batch's leases every Lease/3 until stop closes; a run taken back
// meanwhile is renewed no more (its write will find it gone), and when none is left the batch
// is cancelled with ErrLeaseLost.
func (o *Orchestrator) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, runs []Run, stop <-chan struct{}) {
	t := time.NewTicker(o.cfg.Lease / 3)
	defer t.Stop()
	live := slices.Clone(runs)
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			kept, err := HeartbeatBatch(ctx, o.cfg.Pool, o.now(), live, o.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					o.log.LogAttrs(ctx, slog.LevelWarn, "heartbeat failed", slog.Int("runs", len(live)), slog.Any("error", err))
				}
				continue
			}
			live = slices.DeleteFunc(live, func(r Run) bool { return !kept[r.ID] })
			if len(live) == 0 {
				cancel(ErrLeaseLost)
				return
			}
		}
	}
}
