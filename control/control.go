package control

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/completeness"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/replicator"
)

// Defaults for [Config].
const (
	DefaultMaxWatchers = 32
	DefaultWatchBuffer = 1024
)

// Config configures [New].
type Config struct {
	// Pool is the database. Required. Each watcher opens one more connection from its
	// configuration (not from the pool).
	Pool *pgxpool.Pool
	// Logger receives what reaches no caller (a malformed event payload). Default: discard.
	Logger *slog.Logger
	// Registerer gets the metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock of every statement that stamps or compares a time: Tick's planning,
	// RetryRun's due time, CancelRun's finish, UpdateDefinition's new request. It must be the
	// orchestrators' clock (orchestrator.Config.Now). Default nil: the database clock, as theirs.
	Now func() time.Time
	// SlotName is the replication slot ReplicationStatus reports. Default
	// replicator.DefaultSlotName; set it to the replicator's --replication-slot.
	SlotName string
	// SliceSizes is the grid Tick plans with. It must be the orchestrators' grid
	// (orchestrator.Config.SliceSizes; by default orchestrator.SliceSizesFor the provider's
	// page limit): planning on another grid would queue slices that overlap theirs and fetch
	// the same bars twice. Default nil: the grid is not known here, and Tick refuses with a
	// *StateError (a server that runs no orchestrator).
	SliceSizes orchestrator.SliceSizes
	// MaxWatchers caps the watches open at once, each holding a database connection; one more
	// gets ErrTooManyWatchers. Default DefaultMaxWatchers (32).
	MaxWatchers int
	// Checker checks completeness for VerifyCoverage: the completeness checker of this
	// process's orchestrator (it knows the provider's bar grid). Default nil: this process runs
	// no provider, and VerifyCoverage refuses with a *StateError.
	Checker *completeness.Checker
	// WatchBuffer is how many events a watch may hold for a slow client before it is ended
	// with ErrWatchOverflow. Default DefaultWatchBuffer (1024).
	WatchBuffer int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.SlotName = cmp.Or(c.SlotName, replicator.DefaultSlotName)
	c.MaxWatchers = cmp.Or(c.MaxWatchers, DefaultMaxWatchers)
	c.WatchBuffer = cmp.Or(c.WatchBuffer, DefaultWatchBuffer)
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("control config: Pool is required")
	case c.MaxWatchers < 1:
		return fmt.Errorf("control config: MaxWatchers %d: want at least 1", c.MaxWatchers)
	case c.WatchBuffer < 1:
		return fmt.Errorf("control config: WatchBuffer %d: want at least 1", c.WatchBuffer)
	}
	if c.SliceSizes == nil {
		return nil
	}
	// Enqueue checks the sizes too, but a wrong grid is a configuration error, not a failed tick.
	for _, tf := range market.Timeframes() {
		d, ok := c.SliceSizes[tf]
		if !ok || d <= 0 || d%time.Second != 0 {
			return fmt.Errorf("control config: slice size for %s is %v: want a positive whole number of seconds", tf, d)
		}
	}
	return nil
}

// Service carries out the control plane's requests. Its methods are safe for concurrent use.
type Service struct {
	cfg      Config
	pool     *pgxpool.Pool
	log      *slog.Logger
	metrics  *metrics
	watchers chan struct{} // a slot per open watch
}

// New validates cfg and returns a Service. It starts nothing: a watch holds resources only
// while it runs.
func New(cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg:      cfg,
		pool:     cfg.Pool,
		log:      cfg.Logger,
		metrics:  m,
		watchers: make(chan struct{}, cfg.MaxWatchers),
	}, nil
}

// now is the instant the statements run at: Config.Now, or zero, which orchestrator's
// functions and this package's statements take as the database clock.
func (s *Service) now() time.Time {
	if s.cfg.Now == nil {
		return time.Time{}
	}
	return s.cfg.Now()
}

// at is how a statement receives the clock: nil for a zero now, which the statement's
// coalesce($n::timestamptz, now()) turns into the database's clock.
func at(now time.Time) *time.Time {
	if now.IsZero() {
		return nil
	}
	return &now
}

// Errors of the Service's methods. Their messages, and those of the errors that wrap them here,
// name only what the caller sent and are safe to show.
var (
	// ErrNotFound: the definition or run does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTooManyWatchers: MaxWatchers watches are open already.
	ErrTooManyWatchers = errors.New("too many watchers")
	// ErrWatchOverflow: the watcher's client did not keep up and the watch was ended.
	ErrWatchOverflow = errors.New("watcher fell behind")
	// ErrWatchLost: the watch's database connection failed; events may have been missed.
	ErrWatchLost = errors.New("watch connection lost")
)

// InvalidError is a request the caller must fix. Message says what was wrong and what is
// accepted, and is safe to show.
type InvalidError struct {
	Field   string // the request field at fault, e.g. "window_days"
	Message string
}

func (e *InvalidError) Error() string { return e.Message }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// StateError refuses a change the object's current state does not allow (a retry of a run that
// succeeded, a cancel of a finished run). Message is safe to show.
type StateError struct {
	Message string
}

func (e *StateError) Error() string { return e.Message }
