package budget

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	//go:embed sql/upsert.sql
	upsertSQL string
	//go:embed sql/take.sql
	takeSQL string
	//go:embed sql/pause.sql
	pauseSQL string
)

// limiter and pauser are marketdata.Limiter and marketdata.Pauser: a Budget satisfies them
// without importing the orchestrator's packages.
type limiter interface {
	Wait(ctx context.Context) error
}

type pauser interface {
	Pause(ctx context.Context, until time.Time)
}

var (
	_ limiter = (*Budget)(nil)
	_ pauser  = (*Budget)(nil)
)

// pollStep is the longest Wait sleeps between two looks at an injected clock, which may run
// faster than the wall clock.
const pollStep = 20 * time.Millisecond

// Config configures a Budget.
type Config struct {
	// Pool is the database holding public.provider_budget. Required. Wait and Pause use one
	// connection for one short statement each.
	Pool *pgxpool.Pool
	// Provider names the budget, the row's key: "alpaca", "massive". Every process sending
	// with the same provider account uses the same name. Required.
	Provider string
	// PerMinute is the plan's limit for the whole deployment, in requests a minute (Alpaca's
	// free plan: 200). Required, above 0.
	PerMinute float64
	// Pace is the fraction of PerMinute actually used, so that clock skew and the provider's
	// own window accounting never see more than the plan. Default 0.95; at most 1.
	Pace float64
	// Burst is how many requests may go at once after a quiet spell. Burst + Pace × PerMinute
	// must not exceed PerMinute, so that no 60-second window holds more than the plan.
	// Default 5, or the most that rule allows when it is less (at least 1).
	Burst int
	// Now is the clock of every statement and of the waits. Default nil: the database's
	// clock in every statement (one clock for every process) and the wall clock for sleeping.
	// Tests and time-scaled benchmarks set it; Wait then waits until Now reaches the send
	// time, looking every 20 ms at most (so it must move forward, or a wait never ends), and
	// Pause's until is on this clock.
	Now func() time.Time
	// Registerer gets the metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// Logger. Default: discard.
	Logger *slog.Logger
}

// defaultBurst is Config.Burst's default, if the plan leaves room for it.
const defaultBurst = 5

// slack absorbs the rounding of Burst + Pace × PerMinute: a pace computed as
// (PerMinute − Burst) / PerMinute must pass.
const slack = 1e-9

func (c Config) withDefaults() Config {
	if c.Pace == 0 {
		c.Pace = 0.95
	}
	if c.Burst == 0 {
		// What the plan leaves beside the pace, whole requests; invalid plans are validate's.
		room := math.Floor(c.PerMinute*(1-c.Pace) + slack)
		c.Burst = defaultBurst
		if room < defaultBurst {
			c.Burst = max(1, int(room))
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("budget config: Pool is required")
	case c.Provider == "":
		return errors.New(`budget config: Provider is required (the budget's name, e.g. "alpaca")`)
	case !(c.PerMinute > 0) || math.IsInf(c.PerMinute, 0):
		return fmt.Errorf("budget config: PerMinute %v: want the plan's requests a minute, above 0", c.PerMinute)
	case !(c.Pace > 0 && c.Pace <= 1):
		return fmt.Errorf("budget config: Pace %v: want a fraction of PerMinute above 0 and at most 1", c.Pace)
	case c.Burst < 1:
		return fmt.Errorf("budget config: Burst %d: want at least 1", c.Burst)
	}
	if perWindow := float64(c.Burst) + c.Pace*c.PerMinute; perWindow > c.PerMinute*(1+slack) {
		return fmt.Errorf("budget config: Burst %d + Pace %g × PerMinute %g allows %g requests in a 60 s window, more than the plan's %g: "+
			"lower Burst to %g or Pace to %.4g at most", c.Burst, c.Pace, c.PerMinute, perWindow, c.PerMinute,
			math.Max(0, math.Floor(c.PerMinute*(1-c.Pace)+slack)), math.Max(0, (c.PerMinute-float64(c.Burst))/c.PerMinute))
	}
	return nil
}

// Budget is one provider's request budget, shared through the database by every process that
// makes one with the same Provider. It is safe for concurrent use and has no goroutines of its
// own: nothing to stop.
type Budget struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu sync.Mutex
	// pausedUntil is the latest Pause of this process: Waits already sleeping hold back until
	// then too (the database's paused_until serves those that ask after it).
	pausedUntil time.Time
}

// New configures the budget's row, creating it with a full bucket if it is missing. A row
// configured otherwise (another process with another rate or burst, or this deployment before
// a change) takes this process's rate and burst: the last process started wins, and New logs
// a warning with both values.
func New(ctx context.Context, cfg Config) (*Budget, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Budget{cfg: cfg, log: cfg.Logger.With("provider", cfg.Provider)}
	rate, burst := cfg.PerMinute*cfg.Pace/60, float64(cfg.Burst)
	var oldRate, oldBurst *float64
	if err := cfg.Pool.QueryRow(ctx, upsertSQL, cfg.Provider, rate, burst, b.at()).Scan(&oldRate, &oldBurst); err != nil {
		return nil, fmt.Errorf("configure provider budget %q: %w", cfg.Provider, err)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Provider)
	if err != nil {
		return nil, err
	}
	m.limit.Set(cfg.PerMinute)
	m.pace.Set(cfg.PerMinute * cfg.Pace)
	b.metrics = m
	switch {
	case oldRate == nil || oldBurst == nil:
		b.log.Info("provider budget created", "pace_per_minute", rate*60, "burst", burst)
	case *oldRate != rate || *oldBurst != burst:
		b.log.Warn("provider budget was configured otherwise; this process's rate and burst now apply to every process (the last one started wins)",
			"pace_per_minute_before", *oldRate*60, "pace_per_minute", rate*60, "burst_before", *oldBurst, "burst", burst)
	}
	return b, nil
}

// Wait takes one token of the shared budget (one statement) and returns when the request may
// be sent: at once while the bucket holds tokens, else when the refill has paid for it, and
// never before a pause ends. It returns ctx's error, wrapped, when ctx ends first; the token
// is not given back then. It returns the database's error, wrapped, when the token could not
// be taken; the request must not be sent, and may be retried.
func (b *Budget) Wait(ctx context.Context) error {
	start := time.Now()
	send, err := b.take(ctx)
	if err != nil {
		return err
	}
	if err := b.sleepUntil(ctx, send); err != nil {
		return err
	}
	b.metrics.waitSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// take takes one token (one statement) and returns when its request may be sent, on the
// clock of the waits.
func (b *Budget) take(ctx context.Context) (time.Time, error) {
	now := b.at()
	var secs float64
	if err := b.cfg.Pool.QueryRow(ctx, takeSQL, b.cfg.Provider, now).Scan(&secs); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return time.Time{}, fmt.Errorf("take a token of provider budget %q: %w", b.cfg.Provider, ctxErr)
		}
		b.metrics.failures.Inc()
		if errors.Is(err, pgx.ErrNoRows) {
			return time.Time{}, fmt.Errorf("take a token of provider budget %q: no row in provider_budget (deleted since the process started?): %w",
				b.cfg.Provider, err)
		}
		return time.Time{}, fmt.Errorf("take a token of provider budget %q: %w", b.cfg.Provider, err)
	}
	b.metrics.requests.Inc()
	// With the database's clock the wait counts from now, after the statement: a little
	// late rather than early.
	from := time.Now()
	if now != nil {
		from = *now
	}
	return from.Add(seconds(secs)), nil
}

// Pause holds every request of the budget back until until, in every process sharing it,
// with one statement; a pause only ever extends one already set. Waits sleeping in this
// process hold back too. An error is logged, not returned: the caller is handling the
// provider's refusal already, and the pause still holds in this process.
func (b *Budget) Pause(ctx context.Context, until time.Time) {
	if until.IsZero() {
		return
	}
	b.mu.Lock()
	if until.After(b.pausedUntil) {
		b.pausedUntil = until
	}
	b.mu.Unlock()
	b.metrics.pauses.Inc()
	tag, err := b.cfg.Pool.Exec(ctx, pauseSQL, b.cfg.Provider, until, b.at())
	switch {
	case err != nil:
		b.metrics.failures.Inc()
		b.log.Warn("pause provider budget", "until", until, "error", err)
	case tag.RowsAffected() == 0:
		b.metrics.failures.Inc()
		b.log.Warn("pause provider budget: no row in provider_budget (deleted since the process started?)", "until", until)
	default:
		b.log.Debug("provider budget paused", "until", until)
	}
}

// sleepUntil returns when the clock reaches send, or this process's latest pause when later,
// or ctx's error when it ends first.
func (b *Budget) sleepUntil(ctx context.Context, send time.Time) error {
	for {
		target := send
		b.mu.Lock()
		if b.pausedUntil.After(target) {
			target = b.pausedUntil
		}
		b.mu.Unlock()
		d := target.Sub(b.clock())
		if d <= 0 {
			return nil
		}
		if b.cfg.Now != nil {
			// An injected clock may run at any pace: look at it again soon.
			d = min(d, pollStep)
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("wait for provider budget %q: %w", b.cfg.Provider, ctx.Err())
		case <-timer.C:
		}
	}
}

// at is how a statement receives the clock: the injected one's now, or nil, which the
// statement's coalesce($n::timestamptz, now()) turns into the database's clock.
func (b *Budget) at() *time.Time {
	if b.cfg.Now == nil {
		return nil
	}
	now := b.cfg.Now()
	return &now
}

// clock is the clock the waits are measured on.
func (b *Budget) clock() time.Time {
	if b.cfg.Now == nil {
		return time.Now()
	}
	return b.cfg.Now()
}

// seconds converts the statement's wait, rounded up to the microsecond (the database's
// resolution) so that a request never goes early, and bounded far beyond any real wait.
func seconds(s float64) time.Duration {
	const most = 100 * 365 * 24 * time.Hour
	switch {
	case !(s > 0):
		return 0
	case s >= most.Seconds():
		return most
	}
	return time.Duration(math.Ceil(s*1e6)) * time.Microsecond
}
