package replicator

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// NotifyChannel is the channel every apply notifies, in the transaction that changes the
// definitions. The payload is a small JSON object: slot, kind (stream, partial, reconcile), lsn
// (the recorded end LSN, or null), and the counts inserted, updated and disabled.
const NotifyChannel = "backfill_job_definitions"

// Defaults for [Config].
const (
	DefaultSlotName          = "backfill_tracking"
	DefaultPublication       = "backfill_tracking"
	DefaultStatusInterval    = 10 * time.Second
	DefaultReceiveTimeout    = 30 * time.Second
	DefaultMaxBackoff        = 5 * time.Second
	DefaultMaxPendingSymbols = 1000
)

// Sentinel errors of Start and New.
var (
	// ErrInvalidConfig wraps every configuration error of New.
	ErrInvalidConfig = errors.New("invalid replicator config")
	// ErrNotLogical means the server's wal_level is not logical.
	ErrNotLogical = errors.New("wal_level is not logical")
	// ErrNotStarted is returned by Status before Start and after Stop.
	ErrNotStarted = errors.New("replicator not running")
)

// errStopped is the cancellation cause of a controlled stop.
var errStopped = errors.New("replicator stopped")

// namePattern is what slot and publication names may look like: they are written into
// replication commands unquoted.
var namePattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Config configures [New].
type Config struct {
	// DatabaseURL is a direct connection to the PostgreSQL that holds user_symbol_tracking and
	// job_definitions (postgres://… or key=value). Required. The replicator opens a small pool
	// on it and, for streaming, the same URL with replication=database; a transaction pooler
	// cannot carry that (see the package comment).
	DatabaseURL string
	// SlotName is the permanent logical replication slot (pgoutput). Default DefaultSlotName
	// ("backfill_tracking"). Must match ^[a-z0-9_]{1,63}$; slot names are cluster-wide, so two
	// databases on one server need two names.
	SlotName string
	// Publication is the publication carrying public.user_symbol_tracking. Default
	// DefaultPublication ("backfill_tracking", created by the migrations). Same pattern.
	Publication string
	// StatusInterval is how often a standby status update goes to the server (with a request for
	// a reply, which doubles as a liveness check). Default DefaultStatusInterval (10s); it must
	// stay well below the server's wal_sender_timeout (60s by default).
	StatusInterval time.Duration
	// ReceiveTimeout bounds every wait on the replication connection: connecting, starting
	// replication, and silence on the stream (the server answers every periodic status update,
	// so a live server is never silent much longer than StatusInterval). Default
	// DefaultReceiveTimeout (30s). Must be larger than StatusInterval.
	ReceiveTimeout time.Duration
	// MaxBackoff caps the jittered exponential backoff between connection attempts, including a
	// standby's attempts to take the slot over: a standby takes over within about MaxBackoff of
	// the active replicator's death. Default DefaultMaxBackoff (5s).
	MaxBackoff time.Duration
	// MaxPendingSymbols bounds the symbols remembered for one apply. A huge upstream transaction
	// is applied in parts of this many symbols (early, without recording its LSN, which is
	// harmless since effects are idempotent), so memory stays bounded. Default
	// DefaultMaxPendingSymbols (1000).
	MaxPendingSymbols int
	// Registerer receives the backfill_replicator_* metrics. Default nil: the metrics are kept
	// but not registered anywhere (tests, tools). A process with two replicators must give each
	// its own, e.g. with prometheus.WrapRegistererWith.
	Registerer prometheus.Registerer
	// Logger receives lifecycle lines, one per connection attempt. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (cfg Config) withDefaults() (Config, error) {
	cfg.SlotName = cmp.Or(cfg.SlotName, DefaultSlotName)
	cfg.Publication = cmp.Or(cfg.Publication, DefaultPublication)
	cfg.StatusInterval = cmp.Or(cfg.StatusInterval, DefaultStatusInterval)
	cfg.ReceiveTimeout = cmp.Or(cfg.ReceiveTimeout, DefaultReceiveTimeout)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, DefaultMaxBackoff)
	cfg.MaxPendingSymbols = cmp.Or(cfg.MaxPendingSymbols, DefaultMaxPendingSymbols)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var problems []string
	if strings.TrimSpace(cfg.DatabaseURL) == "" {
		problems = append(problems, "DatabaseURL is required")
	}
	if !namePattern.MatchString(cfg.SlotName) {
		problems = append(problems, fmt.Sprintf("SlotName %q must match %s", cfg.SlotName, namePattern))
	}
	if !namePattern.MatchString(cfg.Publication) {
		problems = append(problems, fmt.Sprintf("Publication %q must match %s", cfg.Publication, namePattern))
	}
	if cfg.StatusInterval < 0 || cfg.ReceiveTimeout < 0 || cfg.MaxBackoff < 0 {
		problems = append(problems, "durations must not be negative")
	}
	if cfg.ReceiveTimeout <= cfg.StatusInterval {
		problems = append(problems, fmt.Sprintf("ReceiveTimeout (%s) must be larger than StatusInterval (%s)", cfg.ReceiveTimeout, cfg.StatusInterval))
	}
	if cfg.MaxPendingSymbols < 1 {
		problems = append(problems, "MaxPendingSymbols must be positive")
	}
	if len(problems) > 0 {
		return cfg, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return cfg, nil
}

// Status is what the replicator and the database say about the slot.
type Status struct {
	// SlotName is the replication slot.
	SlotName string
	// Active is true while this replicator holds the slot and streams (it is the leader).
	Active bool
	// SlotExists says whether the slot exists on the server.
	SlotExists bool
	// ActivePID is the walsender process holding the slot (this replicator's or another
	// process's), 0 when none does.
	ActivePID int32
	// WALStatus is the slot's wal_status (reserved, extended, unreserved, lost), "" without slot.
	WALStatus string
	// ConfirmedFlushLSN is the slot's confirmed flush position.
	ConfirmedFlushLSN pglogrepl.LSN
	// AppliedLSN is the end LSN of the last upstream transaction whose effects are committed
	// (replication_progress), whichever replica applied it.
	AppliedLSN pglogrepl.LSN
	// LagBytes is the WAL between the server's current position and ConfirmedFlushLSN.
	LagBytes int64
	// LastAppliedAt is when replication_progress was last written (zero if never).
	LastAppliedAt time.Time
}

// Replicator streams tracking changes and applies them to job definitions. Build it with New,
// run it with Start, end it with Stop.
type Replicator struct {
	cfg      Config
	metrics  *metrics
	poolCfg  *pgxpool.Config
	replCfg  *pgconn.Config
	pool     *pgxpool.Pool
	active   atomic.Bool
	startMu  sync.Mutex
	started  bool
	cancel   context.CancelCauseFunc
	done     chan struct{}
	stopOnce sync.Once

	// applied is the end LSN of the last upstream transaction known to be applied; waiters
	// block on appliedCh, which is closed and replaced on every advance.
	mu        sync.Mutex
	applied   pglogrepl.LSN
	appliedCh chan struct{}

	// hooks for tests (export_test.go); nil in production.
	confirmHook func(pglogrepl.LSN) bool
}

// New validates cfg and builds a replicator. It does not connect.
func New(cfg Config) (*Replicator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: parse DatabaseURL: %w", ErrInvalidConfig, err)
	}
	// The URL may be the replication URL already; the pool's sessions are ordinary ones.
	delete(poolCfg.ConnConfig.RuntimeParams, "replication")
	if poolCfg.ConnConfig.RuntimeParams["application_name"] == "" {
		poolCfg.ConnConfig.RuntimeParams["application_name"] = "backfill-replicator"
	}
	// Short statements over many rows: JIT compiling them would cost more than running them.
	if _, set := poolCfg.ConnConfig.RuntimeParams["jit"]; !set {
		poolCfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	// The apply statement filters on "$1 IS NULL OR symbol_id = ANY ($1)": a generic plan
	// cannot use the symbol_id indexes for that, a custom plan (planned with the value) can.
	poolCfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	replCfg := poolCfg.ConnConfig.Config.Copy()
	replCfg.RuntimeParams["replication"] = "database"
	delete(replCfg.RuntimeParams, "plan_cache_mode")

	m := newMetrics()
	if cfg.Registerer != nil {
		if err := m.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return &Replicator{
		cfg:       cfg,
		metrics:   m,
		poolCfg:   poolCfg,
		replCfg:   replCfg,
		done:      make(chan struct{}),
		appliedCh: make(chan struct{}),
	}, nil
}

// Start checks the database (reachable, wal_level logical, REPLICATION privilege, publication,
// migrations) and, when all is well, runs the replicator in the background until Stop is
// called or ctx is done. It fails fast with a clear error otherwise; a slot held by another
// process is not an error (this replicator stands by). Start may be called once.
func (r *Replicator) Start(ctx context.Context) error {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	if r.started {
		return errors.New("replicator: Start called twice")
	}
	pool, err := pgxpool.NewWithConfig(ctx, r.poolCfg)
	if err != nil {
		return fmt.Errorf("open database pool: %w", err)
	}
	if err := r.preflight(ctx, pool); err != nil {
		pool.Close()
		return err
	}
	r.pool = pool
	r.started = true
	runCtx, cancel := context.WithCancelCause(ctx)
	r.cancel = cancel
	go r.run(runCtx)
	return nil
}

func (r *Replicator) preflight(ctx context.Context, pool *pgxpool.Pool) error {
	// Bounded: a host that drops packets would otherwise hold Start for the OS's TCP timeout.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReceiveTimeout)
	defer cancel()
	var walLevel string
	var canReplicate, hasPub, pubHasTable, migrated bool
	if err := pool.QueryRow(ctx, preflightSQL, r.cfg.Publication).Scan(&walLevel, &canReplicate, &hasPub, &pubHasTable, &migrated); err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	switch {
	case walLevel != "logical":
		return fmt.Errorf("%w: it is %q; set wal_level = logical and restart PostgreSQL", ErrNotLogical, walLevel)
	case !migrated:
		return errors.New("table public.replication_progress is missing: run the migrations (backfill migrate)")
	case !hasPub:
		return fmt.Errorf("publication %q does not exist: run the migrations or create it FOR TABLE public.user_symbol_tracking", r.cfg.Publication)
	case !pubHasTable:
		return fmt.Errorf("publication %q does not carry public.user_symbol_tracking", r.cfg.Publication)
	}
	// The replication protocol itself is the authority on privileges (managed services grant
	// replication in their own ways), pg_hba.conf, max_wal_senders, and poolers in between.
	conn, err := pgconn.ConnectConfig(ctx, r.replCfg)
	if err != nil {
		if !canReplicate {
			return fmt.Errorf("open replication connection (the role lacks the REPLICATION attribute: ALTER ROLE ... WITH REPLICATION): %w", err)
		}
		return fmt.Errorf("open replication connection: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := pglogrepl.IdentifySystem(ctx, conn); err != nil {
		return fmt.Errorf("identify system on the replication connection (a transaction pooler cannot carry it): %w", err)
	}
	return nil
}

// Stop ends the replicator and waits, at most until ctx is done, for its connections to close.
// It is idempotent and safe before Start; a controlled stop is not an error.
func (r *Replicator) Stop(ctx context.Context) error {
	r.startMu.Lock()
	started := r.started
	r.startMu.Unlock()
	if !started {
		return nil
	}
	r.stopOnce.Do(func() { r.cancel(errStopped) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop replicator: %w", context.Cause(ctx))
	}
}

// Done is closed when a started replicator has stopped (by Stop or the end of Start's ctx).
func (r *Replicator) Done() <-chan struct{} { return r.done }

// Status reports the slot and the progress on it.
func (r *Replicator) Status(ctx context.Context) (Status, error) {
	pool, err := r.runningPool()
	if err != nil {
		return Status{}, err
	}
	st := Status{SlotName: r.cfg.SlotName, Active: r.active.Load()}
	var (
		pid                *int32
		walStatus          *string
		confirmed, applied *string
		lag                *int64
		appliedAt          *time.Time
	)
	if err := pool.QueryRow(ctx, statusSQL, r.cfg.SlotName).Scan(&st.SlotExists, &pid, &walStatus, &confirmed, &lag, &applied, &appliedAt); err != nil {
		return Status{}, fmt.Errorf("read status of slot %q: %w", r.cfg.SlotName, err)
	}
	if pid != nil {
		st.ActivePID = *pid
	}
	if walStatus != nil {
		st.WALStatus = *walStatus
	}
	if st.ConfirmedFlushLSN, err = parseLSN(confirmed); err != nil {
		return Status{}, err
	}
	if st.AppliedLSN, err = parseLSN(applied); err != nil {
		return Status{}, err
	}
	if lag != nil {
		st.LagBytes = *lag
		r.metrics.lagBytes.Set(float64(*lag))
	}
	if appliedAt != nil {
		st.LastAppliedAt = *appliedAt
	}
	return st, nil
}

func (r *Replicator) runningPool() (*pgxpool.Pool, error) {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	if !r.started {
		return nil, ErrNotStarted
	}
	select {
	case <-r.done:
		return nil, ErrNotStarted
	default:
	}
	return r.pool, nil
}

// WaitApplied returns once an upstream transaction whose commit ends at or after lsn has been
// applied (by this replicator, or by anyone before this replicator's session started), or with
// an error when ctx ends or the replicator stops first. Tests and benchmarks use it to wait for
// a write: take pg_current_wal_insert_lsn() inside the writing transaction, commit, wait.
func (r *Replicator) WaitApplied(ctx context.Context, lsn pglogrepl.LSN) error {
	for {
		r.mu.Lock()
		applied, ch := r.applied, r.appliedCh
		r.mu.Unlock()
		if applied >= lsn {
			return nil
		}
		select {
		case <-ch:
		case <-r.done:
			return fmt.Errorf("wait for LSN %s: %w", lsn, ErrNotStarted)
		case <-ctx.Done():
			return fmt.Errorf("wait for LSN %s (applied %s): %w", lsn, applied, context.Cause(ctx))
		}
	}
}

// setApplied records that everything up to lsn is applied and wakes waiters.
func (r *Replicator) setApplied(lsn pglogrepl.LSN) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lsn <= r.applied {
		return
	}
	r.applied = lsn
	close(r.appliedCh)
	r.appliedCh = make(chan struct{})
}

// run is the replicator's life: sessions, and jittered exponential backoff between them.
func (r *Replicator) run(ctx context.Context) {
	log := r.cfg.Logger.With(slog.String("slot_name", r.cfg.SlotName))
	defer func() {
		r.active.Store(false)
		r.metrics.leader.Set(0)
		r.pool.Close()
		close(r.done)
	}()
	attempt := 0
	standby := false
	reconciled := false // by this process: the first reconcile's reason is "start"
	for {
		res, err := r.session(ctx, !reconciled, log)
		reconciled = reconciled || res.reconciled
		if ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(cause, errStopped) && !errors.Is(cause, context.Canceled) {
				log.LogAttrs(context.Background(), slog.LevelInfo, "replicator stopped", slog.Any("cause", cause))
			}
			return
		}
		if res.streamed {
			attempt = 0
		}
		delay := backoff(attempt, r.cfg.MaxBackoff)
		attempt++
		var held *slotHeldError
		if errors.As(err, &held) {
			// Another process streams; try again later, to take over when it dies.
			level := slog.LevelDebug
			if !standby {
				level = slog.LevelInfo
			}
			standby = true
			log.LogAttrs(ctx, level, "slot held by another process, standing by",
				slog.Int("active_pid", int(held.pid)), slog.Duration("retry_in", delay))
		} else {
			standby = false
			r.metrics.reconnects.Inc()
			// The pool's idle connections may have died with the server or the network: start
			// the next session with fresh ones rather than fail it on a stale one.
			r.pool.Reset()
			log.LogAttrs(ctx, slog.LevelWarn, "replication session ended, reconnecting",
				slog.Any("error", err), slog.Int("attempt", attempt), slog.Duration("retry_in", delay))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt n (0-based): exponential from 100ms, capped, with
// "equal jitter" (between half and all of it), so replicas that lost their leader together do
// not retry in lockstep.
func backoff(n int, maxWait time.Duration) time.Duration {
	const base = 100 * time.Millisecond
	d := maxWait
	if n < 30 {
		d = min(base<<n, maxWait)
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// slotHeldError means another process's walsender holds the slot.
type slotHeldError struct {
	pid int32
	err error
}

func (e *slotHeldError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("replication slot is active for PID %d", e.pid)
}

func (e *slotHeldError) Unwrap() error { return e.err }

func parseLSN(s *string) (pglogrepl.LSN, error) {
	if s == nil {
		return 0, nil
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", *s, err)
	}
	return lsn, nil
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Embedded SQL; see the files for what each does.
var (
	//go:embed sql/apply.sql
	applySQL string
	//go:embed sql/lock.sql
	lockSQL string
	//go:embed sql/invisible.sql
	invisibleSQL string
	//go:embed sql/slot.sql
	slotSQL string
	//go:embed sql/drop_slot.sql
	dropSlotSQL string
	//go:embed sql/progress.sql
	progressSQL string
	//go:embed sql/status.sql
	statusSQL string
	//go:embed sql/lag.sql
	lagSQL string
	//go:embed sql/preflight.sql
	preflightSQL string
)
