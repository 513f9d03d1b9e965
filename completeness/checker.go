package completeness

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

var (
	//go:embed sql/clock.sql
	clockSQL string
	//go:embed sql/lock.sql
	lockSQL string
	//go:embed sql/unlock.sql
	unlockSQL string
	//go:embed sql/all.sql
	allSQL string
	//go:embed sql/definitions.sql
	definitionsSQL string
	//go:embed sql/runs.sql
	runsSQL string
	//go:embed sql/days.sql
	daysSQL string
	//go:embed sql/store.sql
	storeSQL string
	//go:embed sql/holes.sql
	holesSQL string
	//go:embed sql/give_up.sql
	giveUpSQL string
	//go:embed sql/repair.sql
	repairSQL string
	//go:embed sql/dirty.sql
	dirtySQL string
	//go:embed sql/undirty.sql
	undirtySQL string
	//go:embed sql/sweep.sql
	sweepSQL string
	//go:embed sql/enabled.sql
	enabledSQL string
	//go:embed sql/gauge.sql
	gaugeSQL string
)

// Hole states, as stored in coverage_holes.state.
const (
	StateOpen      = "open"
	StateRepairing = "repairing"
	StateGivenUp   = "given_up"
)

// Config configures a Checker.
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Grid is the configured provider's bar grid: whose bars are checked (ohlc_bars_v2.provider
	// = Grid.Provider) and which bar starts a session should hold. Required.
	Grid market.Grid
	// Interval is how often the periodic check runs. Default 1m.
	Interval time.Duration
	// SweepEvery bounds how long an enabled definition goes unchecked: each pass also checks
	// the least recently checked definitions, enough of them that all are checked within
	// SweepEvery. Default 24h.
	SweepEvery time.Duration
	// MaxRepairs is how many successful repair runs a hole gets before it is given up.
	// Default 3.
	MaxRepairs int
	// Batch is how many definitions one round of statements checks. Default 500.
	Batch int
	// NotifyChannel, when set, gets a NOTIFY after repairs were queued, so the orchestrators
	// (which LISTEN on it) claim them at once instead of at their next poll.
	NotifyChannel string
	// Now is the clock (see the package doc, "One clock"). Default nil: the database clock.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
	// Registerer gets the metrics. Default nil: not registered.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = 24 * time.Hour
	}
	if c.MaxRepairs == 0 {
		c.MaxRepairs = 3
	}
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("completeness: Pool is required")
	case c.Grid.Provider == "" || (c.Grid.Hours != market.RegularHours && c.Grid.Hours != market.ExtendedHours):
		return errors.New("completeness: Grid is required (market.GridFor)")
	case c.Interval < 0 || c.SweepEvery < 0 || c.MaxRepairs < 0 || c.Batch < 0:
		return errors.New("completeness: Interval, SweepEvery, MaxRepairs and Batch must not be negative")
	}
	return nil
}

// Checker checks and heals the completeness of stored bars. Its methods are safe for
// concurrent use.
type Checker struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	nyse    *market.Calendar
	crypto  *market.Calendar

	startMu  sync.Mutex
	started  bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}

	afterPass func(PassResult, error) // test hook
}

// New validates cfg and returns a stopped Checker.
func New(cfg Config) (*Checker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Checker{cfg: cfg, log: cfg.Logger, metrics: m, nyse: market.NYSE(), crypto: market.Crypto(), done: make(chan struct{})}, nil
}

// Grid is the grid the checker checks against.
func (c *Checker) Grid() market.Grid { return c.cfg.Grid }

// HoleState is a hole as stored, with its repair history.
type HoleState struct {
	SessionCheck
	State   string // open, repairing, given_up
	Repairs int
	Reason  string // why it was given up
	// RepairStatus is the status of its latest repair run ("" when none).
	RepairStatus string
	DetectedAt   time.Time
}

// Result is the check of one definition.
type Result struct {
	DefID, Symbol string
	Timeframe     market.Timeframe
	Verdict
	CheckedAt time.Time
	// Holes are the definition's holes as stored after the check (Verdict.Holes with state).
	Holes []HoleState
}

// Check checks the enabled definitions among ids (all enabled definitions when ids is nil) and
// records what it found (coverage_completeness, coverage_holes; holes no longer found are
// healed). It queues nothing: see Repair.
func (c *Checker) Check(ctx context.Context, ids []string) ([]Result, error) {
	now, err := c.clock(ctx)
	if err != nil {
		return nil, err
	}
	return c.check(ctx, now, ids)
}

func (c *Checker) clock(ctx context.Context) (time.Time, error) {
	var at *time.Time
	if c.cfg.Now != nil {
		t := c.cfg.Now()
		at = &t
	}
	var now time.Time
	if err := c.cfg.Pool.QueryRow(ctx, clockSQL, at).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("completeness: read the clock: %w", err)
	}
	return now.UTC(), nil
}

func (c *Checker) check(ctx context.Context, now time.Time, ids []string) ([]Result, error) {
	var out []Result
	if ids == nil {
		all, err := c.enabledIDs(ctx)
		if err != nil {
			return nil, err
		}
		ids = all
	}
	for batch := range slices.Chunk(ids, c.cfg.Batch) {
		res, err := c.checkBatch(ctx, now, batch)
		if err != nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// definition is a definition as the check reads it.
type definition struct {
	id, symbol, symbolID string
	tf                   market.Timeframe
	windowDays           int
	covered              []Span
}

func (c *Checker) enabledIDs(ctx context.Context) ([]string, error) {
	rows, err := c.cfg.Pool.Query(ctx, allSQL)
	if err != nil {
		return nil, fmt.Errorf("completeness: list definitions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("completeness: list definitions: %w", err)
	}
	return ids, nil
}

func (c *Checker) calendar(symbol string) *market.Calendar {
	if market.IsCrypto(symbol) {
		return c.crypto
	}
	return c.nyse
}

func (c *Checker) checkBatch(ctx context.Context, now time.Time, ids []string) ([]Result, error) {
	start := time.Now()
	// One snapshot for the reads: coverage, runs and bars as of the same instant, so a write
	// committing meanwhile cannot show its coverage without its bars.
	tx, err := c.cfg.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("completeness: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only; a failed rollback only ends the snapshot
	defs, err := c.readDefinitions(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	if len(defs) == 0 {
		return nil, nil
	}
	ins := make(map[string]*Input, len(defs))
	defIDs := make([]string, len(defs))
	windowFrom := make([]time.Time, len(defs))
	zones := make([]string, len(defs))
	for i, d := range defs {
		ins[d.id] = &Input{Timeframe: d.tf, WindowDays: d.windowDays, Covered: d.covered, Days: map[string]Day{}}
		defIDs[i] = d.id
		windowFrom[i] = now.Add(-time.Duration(d.windowDays) * 24 * time.Hour)
		zones[i] = c.calendar(d.symbol).Location().String()
	}
	if err := c.readRuns(ctx, tx, defIDs, ins); err != nil {
		return nil, err
	}
	if err := c.readDays(ctx, tx, defIDs, windowFrom, zones, now, ins); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("completeness: end the read: %w", err)
	}

	results := make([]Result, len(defs))
	for i, d := range defs {
		v := Evaluate(c.calendar(d.symbol), c.cfg.Grid, *ins[d.id], now)
		results[i] = Result{DefID: d.id, Symbol: d.symbol, Timeframe: d.tf, Verdict: v, CheckedAt: now}
	}
	healed, err := c.store(ctx, now, results)
	if err != nil {
		return nil, err
	}
	if err := c.loadHoles(ctx, results); err != nil {
		return nil, err
	}
	for tf, n := range healed {
		c.metrics.healed.WithLabelValues(tf).Add(float64(n))
	}
	for _, r := range results {
		for _, h := range r.Holes {
			if h.DetectedAt.Equal(now) {
				c.metrics.found.WithLabelValues(string(r.Timeframe), h.Hole).Inc()
				c.log.LogAttrs(ctx, slog.LevelInfo, "coverage hole found", slog.String("symbol", r.Symbol),
					slog.String("timeframe", string(r.Timeframe)), slog.String("session", h.Date),
					slog.String("kind", h.Hole), slog.Int("expected_bars", h.Expected), slog.Int("found_bars", h.Found))
			}
		}
	}
	c.metrics.checked.Add(float64(len(results)))
	c.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	return results, nil
}

func (c *Checker) readDefinitions(ctx context.Context, tx pgx.Tx, ids []string) ([]definition, error) {
	rows, err := tx.Query(ctx, definitionsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("completeness: read definitions: %w", err)
	}
	defs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (definition, error) {
		var d definition
		var tf string
		var from, to []time.Time
		err := row.Scan(&d.id, &d.symbol, &d.symbolID, &tf, &d.windowDays, &from, &to)
		d.tf = market.Timeframe(tf)
		for i := range from {
			d.covered = append(d.covered, Span{From: from[i], To: to[i]})
		}
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("completeness: read definitions: %w", err)
	}
	return defs, nil
}

func (c *Checker) readRuns(ctx context.Context, tx pgx.Tx, ids []string, ins map[string]*Input) error {
	rows, err := tx.Query(ctx, runsSQL, ids)
	if err != nil {
		return fmt.Errorf("completeness: read runs: %w", err)
	}
	var id, status string
	var s Span
	_, err = pgx.ForEachRow(rows, []any{&id, &status, &s.From, &s.To}, func() error {
		in := ins[id]
		if status == "failed" {
			in.Failed = append(in.Failed, s)
		} else {
			in.Pending = append(in.Pending, s)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("completeness: read runs: %w", err)
	}
	return nil
}

func (c *Checker) readDays(ctx context.Context, tx pgx.Tx, ids []string, from []time.Time, zones []string, now time.Time, ins map[string]*Input) error {
	rows, err := tx.Query(ctx, daysSQL, ids, from, zones, c.cfg.Grid.Provider, now)
	if err != nil {
		return fmt.Errorf("completeness: read bars: %w", err)
	}
	var id, date string
	var d Day
	_, err = pgx.ForEachRow(rows, []any{&id, &date, &d.N, &d.First, &d.Last}, func() error {
		ins[id].Days[date] = Day{N: d.N, First: d.First.UTC(), Last: d.Last.UTC()}
		return nil
	})
	if err != nil {
		return fmt.Errorf("completeness: read bars: %w", err)
	}
	return nil
}

// holeJSON is a found hole as store.sql reads it.
type holeJSON struct {
	Date     string    `json:"date"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Kind     string    `json:"kind"`
	Expected int       `json:"expected"`
	Found    int       `json:"found"`
}

// store records the results; it returns the healed holes per timeframe.
func (c *Checker) store(ctx context.Context, now time.Time, results []Result) (map[string]int, error) {
	n := len(results)
	ids := make([]string, n)
	wFrom, wTo := make([]time.Time, n), make([]time.Time, n)
	expected, fetched, complete, holes, suspicious := make([]int, n), make([]int, n), make([]int, n), make([]int, n), make([]int, n)
	var holeIDs []string
	var holeRows [][]byte
	for i, r := range results {
		ids[i] = r.DefID
		wFrom[i], wTo[i] = r.Window.From, r.Window.To
		expected[i], fetched[i], complete[i], holes[i], suspicious[i] = r.Expected, r.Fetched, r.Complete, len(r.Verdict.Holes), r.Suspicious
		for _, h := range r.Verdict.Holes {
			b, err := json.Marshal(holeJSON{Date: h.Date, From: h.Range.From, To: h.Range.To, Kind: h.Hole, Expected: h.Expected, Found: h.Found})
			if err != nil {
				return nil, fmt.Errorf("completeness: encode hole: %w", err)
			}
			holeIDs = append(holeIDs, r.DefID)
			holeRows = append(holeRows, b)
		}
	}
	rows, err := c.cfg.Pool.Query(ctx, storeSQL, ids, wFrom, wTo, expected, fetched, complete, holes, suspicious,
		c.cfg.Grid.Provider, holeIDs, holeRows, now)
	if err != nil {
		return nil, fmt.Errorf("completeness: store results: %w", err)
	}
	healed := map[string]int{}
	var tf string
	if _, err := pgx.ForEachRow(rows, []any{&tf}, func() error { healed[tf]++; return nil }); err != nil {
		return nil, fmt.Errorf("completeness: store results: %w", err)
	}
	return healed, nil
}

// Holes returns results with their Holes read again from coverage_holes: after Repair, the
// holes it queued say repairing.
func (c *Checker) Holes(ctx context.Context, results []Result) ([]Result, error) {
	out := slices.Clone(results)
	for i := range out {
		out[i].Holes = nil
	}
	if err := c.loadHoles(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// loadHoles fills each result's Holes with the stored state of its holes.
func (c *Checker) loadHoles(ctx context.Context, results []Result) error {
	byID := make(map[string]*Result, len(results))
	ids := make([]string, len(results))
	for i := range results {
		byID[results[i].DefID] = &results[i]
		ids[i] = results[i].DefID
	}
	rows, err := c.cfg.Pool.Query(ctx, holesSQL, ids)
	if err != nil {
		return fmt.Errorf("completeness: read holes: %w", err)
	}
	var id, runErr string
	var runStatus *string
	var h HoleState
	_, err = pgx.ForEachRow(rows, []any{&id, &h.Date, &h.Range.From, &h.Range.To, &h.Hole, &h.Expected, &h.Found,
		&h.State, &h.Repairs, &h.Reason, &h.DetectedAt, &runStatus, &runErr}, func() error {
		hs := h
		hs.Fetched = hs.Hole != KindFailed
		hs.RepairStatus = ""
		if runStatus != nil {
			hs.RepairStatus = *runStatus
		}
		if hs.State == StateGivenUp && hs.Reason == "" && runErr != "" {
			hs.Reason = runErr
		}
		r := byID[id]
		r.Holes = append(r.Holes, hs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("completeness: read holes: %w", err)
	}
	return nil
}

// Repair queues repair runs for the holes of results: open holes, and holes whose repair run
// finished without healing them (until MaxRepairs, after which they are given up). With force,
// given-up holes are queued too, and MaxRepairs is not applied (an operator asked). Holes next
// to each other (no complete session between them) share a run. It returns the runs queued.
func (c *Checker) Repair(ctx context.Context, results []Result, force bool) (int, error) {
	now, err := c.clock(ctx)
	if err != nil {
		return 0, err
	}
	return c.repair(ctx, now, results, force)
}

func (c *Checker) repair(ctx context.Context, now time.Time, results []Result, force bool) (int, error) {
	var runDef []string
	var runFrom, runTo []time.Time
	var upDef, upDate, upReason []string
	for _, r := range results {
		var queue []HoleState
		for _, h := range r.Holes {
			switch {
			case h.State == StateGivenUp && !force:
			case h.State == StateRepairing && (h.RepairStatus == "queued" || h.RepairStatus == "running"):
			case h.State == StateRepairing && !force && h.Repairs >= c.cfg.MaxRepairs:
				upDef, upDate = append(upDef, r.DefID), append(upDate, h.Date)
				upReason = append(upReason, giveUpReason(h, c.cfg.MaxRepairs))
				c.metrics.givenUp.WithLabelValues(string(r.Timeframe)).Inc()
			default:
				queue = append(queue, h)
			}
		}
		for _, rng := range merge(r.Verdict.Sessions, queue) {
			runDef = append(runDef, r.DefID)
			runFrom, runTo = append(runFrom, rng.From), append(runTo, rng.To)
		}
	}
	if len(upDef) > 0 {
		if _, err := c.cfg.Pool.Exec(ctx, giveUpSQL, upDef, upDate, upReason); err != nil {
			return 0, fmt.Errorf("completeness: give up holes: %w", err)
		}
	}
	if len(runDef) == 0 {
		return 0, nil
	}
	var queued int
	if err := c.cfg.Pool.QueryRow(ctx, repairSQL, runDef, runFrom, runTo, now).Scan(&queued); err != nil {
		return 0, fmt.Errorf("completeness: queue repairs: %w", err)
	}
	if queued > 0 && c.cfg.NotifyChannel != "" {
		if _, err := c.cfg.Pool.Exec(ctx, "SELECT pg_notify($1, '')", c.cfg.NotifyChannel); err != nil {
			// The orchestrators' poll picks the runs up anyway.
			c.log.LogAttrs(ctx, slog.LevelWarn, "notify repairs", slog.Any("error", err))
		}
	}
	c.metrics.repairs.Add(float64(queued))
	return queued, nil
}

func giveUpReason(h HoleState, max int) string {
	if h.RepairStatus == "failed" && h.Reason != "" {
		return fmt.Sprintf("repair run failed after %d repairs: %s", h.Repairs, h.Reason)
	}
	return fmt.Sprintf("still %s after %d repairs: the provider returned %d of %d bars for this session", h.Hole, max, h.Found, h.Expected)
}

// maxMerged caps the sessions one repair run fetches.
const maxMerged = 50

// merge groups holes into repair ranges: holes of sessions next to each other (no other ended
// session between them) share a range, up to maxMerged sessions.
func merge(sessions []SessionCheck, holes []HoleState) []Span {
	if len(holes) == 0 {
		return nil
	}
	index := make(map[string]int, len(sessions))
	for i, s := range sessions {
		index[s.Date] = i
	}
	slices.SortFunc(holes, func(a, b HoleState) int { return a.Range.From.Compare(b.Range.From) })
	var out []Span
	cur, n := holes[0].Range, 1
	for i := 1; i < len(holes); i++ {
		prev, okPrev := index[holes[i-1].Date]
		next, okNext := index[holes[i].Date]
		if okPrev && okNext && next == prev+1 && n < maxMerged {
			cur.To = holes[i].Range.To
			n++
			continue
		}
		out = append(out, cur)
		cur, n = holes[i].Range, 1
	}
	return append(out, cur)
}

// PassResult counts what one periodic pass did.
type PassResult struct {
	// Skipped: another process's pass held the lock, so this one did nothing.
	Skipped bool
	// Marked is how many change marks it took; Checked how many definitions it checked.
	Marked, Checked int
	// Holes is how many holes the checked definitions have; Repairs how many runs it queued.
	Holes, Repairs int
}

// maxMarksPerBatch bounds the change marks one pass takes, in batches.
const maxMarksPerBatch = 20

// Pass is one periodic check: the definitions whose bars changed since the last pass, those
// whose repair runs finished, and the rolling sweep's share; their holes are repaired (or given
// up) and the hole gauge refreshed. When another process's pass is running it does nothing.
func (c *Checker) Pass(ctx context.Context) (PassResult, error) {
	start := time.Now()
	var res PassResult
	conn, err := c.cfg.Pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("completeness: acquire a connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, lockSQL).Scan(&locked); err != nil {
		return res, fmt.Errorf("completeness: lock the pass: %w", err)
	}
	if !locked {
		res.Skipped = true
		return res, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), unlockSQL); err != nil {
			// A session lock outlives the statement: drop the connection so it goes too.
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing is the fallback
		}
	}()
	now, err := c.clock(ctx)
	if err != nil {
		return res, err
	}

	// The marks: which definitions' bars changed.
	var markSym, markTF []string
	var markSeq []int64
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	rows, err := c.cfg.Pool.Query(ctx, dirtySQL, c.cfg.Batch*maxMarksPerBatch)
	if err != nil {
		return res, fmt.Errorf("completeness: read change marks: %w", err)
	}
	var sym, tf string
	var seq int64
	var def *string
	if _, err := pgx.ForEachRow(rows, []any{&sym, &tf, &seq, &def}, func() error {
		markSym, markTF, markSeq = append(markSym, sym), append(markTF, tf), append(markSeq, seq)
		if def != nil {
			add(*def)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("completeness: read change marks: %w", err)
	}
	res.Marked = len(markSeq)

	// The sweep's share, and the definitions whose repairs finished.
	var enabled int
	if err := c.cfg.Pool.QueryRow(ctx, enabledSQL).Scan(&enabled); err != nil {
		return res, fmt.Errorf("completeness: count definitions: %w", err)
	}
	share := int((int64(enabled)*int64(c.cfg.Interval) + int64(c.cfg.SweepEvery) - 1) / int64(c.cfg.SweepEvery))
	rows, err = c.cfg.Pool.Query(ctx, sweepSQL, share)
	if err != nil {
		return res, fmt.Errorf("completeness: pick the sweep: %w", err)
	}
	swept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, fmt.Errorf("completeness: pick the sweep: %w", err)
	}
	for _, id := range swept {
		add(id)
	}

	results, err := c.check(ctx, now, ids)
	if err != nil {
		return res, err
	}
	res.Checked = len(results)
	for _, r := range results {
		res.Holes += len(r.Holes)
	}
	if res.Repairs, err = c.repair(ctx, now, results, false); err != nil {
		return res, err
	}
	if len(markSeq) > 0 {
		if _, err := c.cfg.Pool.Exec(ctx, undirtySQL, markSym, markTF, markSeq); err != nil {
			return res, fmt.Errorf("completeness: clear change marks: %w", err)
		}
	}
	if err := c.refreshGauge(ctx); err != nil {
		return res, err
	}
	c.metrics.passSeconds.Observe(time.Since(start).Seconds())
	return res, nil
}

// refreshGauge sets the hole gauge from coverage_holes.
func (c *Checker) refreshGauge(ctx context.Context) error {
	rows, err := c.cfg.Pool.Query(ctx, gaugeSQL)
	if err != nil {
		return fmt.Errorf("completeness: count holes: %w", err)
	}
	counts := map[[2]string]float64{}
	var tf, state string
	var n float64
	if _, err := pgx.ForEachRow(rows, []any{&tf, &state, &n}, func() error { counts[[2]string{tf, state}] = n; return nil }); err != nil {
		return fmt.Errorf("completeness: count holes: %w", err)
	}
	for _, tf := range market.Timeframes() {
		for _, st := range []string{StateOpen, StateRepairing, StateGivenUp} {
			c.metrics.holes.WithLabelValues(string(tf), st).Set(counts[[2]string{string(tf), st}])
		}
	}
	return nil
}

// Start runs a pass at once and then every Interval (jittered by up to a tenth, so replicas
// spread out) until ctx ends or Stop is called. A failed pass is logged and retried at the
// next interval.
func (c *Checker) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.started {
		return errors.New("start completeness checker: already started")
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	go c.loop(ctx)
	return nil
}

func (c *Checker) loop(ctx context.Context) {
	defer close(c.done)
	for {
		res, err := c.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.LogAttrs(ctx, slog.LevelError, "completeness pass failed", slog.Any("error", err))
			c.metrics.failures.Inc()
		case err == nil && (res.Repairs > 0 || res.Holes > 0):
			c.log.LogAttrs(ctx, slog.LevelInfo, "completeness pass", slog.Int("checked", res.Checked),
				slog.Int("holes", res.Holes), slog.Int("repairs_queued", res.Repairs))
		}
		if c.afterPass != nil {
			c.afterPass(res, err)
		}
		wait := c.cfg.Interval + time.Duration(rand.Int64N(int64(c.cfg.Interval)/10+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Stop ends the loop and waits for a pass in progress. Stop before Start is a no-op.
func (c *Checker) Stop(ctx context.Context) error {
	c.startMu.Lock()
	started := c.started
	c.startMu.Unlock()
	if !started {
		return nil
	}
	c.stopOnce.Do(c.cancel)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop completeness checker: %w", ctx.Err())
	}
}
