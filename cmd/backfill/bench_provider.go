package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/budget"
	"github.com/symbolsync/backfill/freshness"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/orchestrator/marketdata/alpacafake"
)

// Embedded SQL of the provider scenario; see the files for what each does.
var (
	//go:embed sql/bench_provider_define.sql
	benchProviderDefineSQL string
	//go:embed sql/bench_provider_windows.sql
	benchProviderWindowsSQL string
	//go:embed sql/bench_provider_progress.sql
	benchProviderProgressSQL string
	//go:embed sql/bench_provider_figures.sql
	benchProviderFiguresSQL string
	//go:embed sql/bench_provider_history.sql
	benchProviderHistorySQL string
	//go:embed sql/bench_provider_putback.sql
	benchProviderPutBackSQL string
	//go:embed sql/bench_provider_finish.sql
	benchProviderFinishSQL string
	//go:embed sql/bench_provider_wal.sql
	benchProviderWALSQL string
)

// What the provider scenario holds fixed.
const (
	providerName        = "alpaca"
	providerPageBars    = 10000 // Alpaca's page: the most bars one request returns, summed over its symbols
	providerPace        = 0.95  // budget.Config.Pace, as `serve` runs it
	providerConcurrency = 4
	providerFetches     = 2 // orchestrator.Config.FetchConcurrency, as `serve --provider alpaca` runs it
	providerSettle      = 15 * time.Second
	providerTemplate    = "bench_provider_template"
	providerOwner       = "bench-provider"
	// maxTickers is how many four-letter tickers AAAA … ZZZZ there are.
	maxTickers = 26 * 26 * 26 * 26
	// The goals: requests and time within these multiples of the floor, and no 429.
	goalRequestRatio = 1.2
	goalTimeRatio    = 1.25
	// The freshness goals: at most one bar behind, plus a minute.
	goalM15Lag = 15*time.Minute + time.Minute
	goalH1Lag  = time.Hour + time.Minute
)

// providerTimeframes are the timeframes every symbol of the scenario is tracked in.
var providerTimeframes = []market.Timeframe{market.M15, market.H1, market.H4}

// The parts --skip can name.
const (
	partBudget    = "budget"
	partFreshness = "freshness"
	partDB        = "db"
)

// providerBench is the `bench provider` scenario's settings and what its parts share.
type providerBench struct {
	pgBin        string
	symbols      []int
	rate         int
	replicas     int
	freshSymbols int
	scale        float64
	dbSymbols    int
	skip         map[string]bool
	logger       *slog.Logger

	url     string // the throw-away cluster's postgres database
	admin   *pgxpool.Pool
	windows map[market.Timeframe]int // default window days (timeframe_settings)
	// day is the simulated session of parts 2 and 3: the latest full regular session before
	// today, so the run never depends on a pinned date.
	day market.Session
}

func benchProvider(ctx context.Context, e *env, args []string) (err error) {
	var (
		b             providerBench
		symbols, skip string
		log           logging
	)
	f := newFlags(e, "bench provider", "[--symbols 20,200,2000] [--rate 200] [--replicas 2] [--skip budget,freshness,db]",
		"What fast means when the provider's request budget is the scarce resource. Everything runs on a\n"+
			"throw-away PostgreSQL (pg_stat_statements) and local imitations of Alpaca's bars API on loopback\n"+
			"(alpacafake: --rate requests a minute, 429 + Retry-After beyond), with --replicas orchestrators in\n"+
			"this process sharing one request budget in the database, as that many `serve` processes do.\n"+
			"  budget     for each of --symbols N: N symbols × m15/h1/h4 at the default windows from nothing to\n"+
			"             every window covered, on the real clock: wall time, requests, 429s, bars; against\n"+
			"             the floor (requests >= ceil(bars / 10,000), time >= requests / --rate) and the\n"+
			"             original's design (one request per symbol and timeframe, 5 a minute; computed).\n"+
			"  freshness  --fresh-symbols × m15/h1/h4 through a simulated session (one clock for the fake, the\n"+
			"             budget, the orchestrators and the sampler: the backfill from 08:30 ET at 1×, then the\n"+
			"             session at --scale×): the m15 and h1 lag of the stored bars behind the newest closed\n"+
			"             bar, sampled every simulated minute, and the requests a session hour costs.\n"+
			"  db         the database's cost at --db-symbols × m15/h1/h4, backfilled (generated with SQL):\n"+
			"             planning and refreshing with nothing to do, a refresh at an m15 boundary, claims,\n"+
			"             and a simulated session hour of refreshes, as a share of one core.\n"+
			"It exits 1 when a backfill does not cover every window in time.")
	f.String(&symbols, "symbols", "BACKFILL_BENCH_SYMBOLS", "20,200,2000", "the budget part's symbol counts, comma-separated, one database each")
	f.Int(&b.rate, "rate", "BACKFILL_PROVIDER_RATE", 200, "the plan: requests a minute the fake admits (and the shared budget's PerMinute)")
	f.Int(&b.replicas, "replicas", "BACKFILL_BENCH_REPLICAS", 2, "orchestrators sharing one budget, like that many serve processes")
	f.Int(&b.freshSymbols, "fresh-symbols", "BACKFILL_BENCH_FRESH_SYMBOLS", 1000, "symbols of the freshness part")
	f.Float64(&b.scale, "scale", "BACKFILL_BENCH_SCALE", 120, "the freshness part's time scale: simulated seconds per real second during the session")
	f.Int(&b.dbSymbols, "db-symbols", "BACKFILL_BENCH_DB_SYMBOLS", 10000, "symbols of the database part (three definitions each)")
	f.String(&skip, "skip", "BACKFILL_BENCH_SKIP", "", "parts to skip, comma-separated: budget, freshness, db")
	f.String(&b.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "PostgreSQL server binaries for the throw-away database")
	log.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if b.symbols, err = parseIntList("symbols", symbols, 1, maxTickers); err != nil {
		return err
	}
	if b.skip, err = parseSkip(skip); err != nil {
		return err
	}
	if b.rate < 2 || b.rate > 100000 || b.replicas < 1 || b.replicas > 16 || b.freshSymbols < 1 || b.freshSymbols > maxTickers ||
		b.dbSymbols < 1 || b.dbSymbols > maxTickers || !(b.scale >= 1 && b.scale <= 3600) {
		return fmt.Errorf("%w: need 2 <= --rate <= 100000, 1 <= --replicas <= 16, 1 <= --fresh-symbols, --db-symbols <= %d, 1 <= --scale <= 3600",
			errUsage, maxTickers)
	}
	if b.logger, err = log.logger(e.stderr); err != nil {
		return err
	}
	if b.day, err = lastFullSession(time.Now()); err != nil {
		return err
	}

	// Everything started is undone in reverse, also on an error or Ctrl-C.
	var cleanups []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, c := range slices.Backward(cleanups) {
			err = errors.Join(err, c(cctx))
		}
	}()
	// Top-level statements only: with track=all a trigger's statements would be counted twice,
	// inside the statement that fired them and on their own.
	cluster, stop, err := throwawayCluster(ctx, b.pgBin, map[string]string{
		"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "top",
	})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, stop)
	b.url = cluster.URL("postgres")
	if b.admin, err = benchPool(ctx, b.url, "postgres", 2, "backfill-bench-provider"); err != nil {
		return err
	}
	cleanups = append(cleanups, func(context.Context) error { b.admin.Close(); return nil })
	cleanups = append(cleanups, func(ctx context.Context) error { return dropDatabase(ctx, b.admin, providerTemplate) })
	if err := b.template(ctx); err != nil {
		return err
	}
	if err := b.header(ctx, e.stdout); err != nil {
		return err
	}

	var failures []string
	if !b.skip[partBudget] {
		p := &budgetPart{b: &b}
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("budget: %w", err)
		}
		if err := p.print(e.stdout); err != nil {
			return err
		}
		failures = append(failures, p.failures()...)
	}
	if !b.skip[partFreshness] {
		p := &freshnessPart{b: &b}
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("freshness: %w", err)
		}
		if err := p.print(e.stdout); err != nil {
			return err
		}
	}
	if !b.skip[partDB] {
		p := &dbPart{b: &b}
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("database cost: %w", err)
		}
		if err := p.print(e.stdout); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "\nload average at the end: %s\n", loadAverage())
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// parseSkip reads --skip: parts of budget, freshness and db, comma-separated.
func parseSkip(s string) (map[string]bool, error) {
	out := map[string]bool{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		switch p := strings.TrimSpace(part); p {
		case partBudget, partFreshness, partDB:
			out[p] = true
		default:
			return nil, fmt.Errorf("%w: --skip %q: want parts of budget, freshness and db, comma-separated", errUsage, s)
		}
	}
	return out, nil
}

// lastFullSession is the latest NYSE session before now's New York date that is a full regular
// session (a weekday, not an early close).
func lastFullSession(now time.Time) (market.Session, error) {
	cal := market.NYSE()
	day := now.In(cal.Location())
	for range 31 {
		day = day.AddDate(0, 0, -1)
		if s, ok := cal.SessionOn(day.Date()); ok && !s.Early {
			return s, nil
		}
	}
	return market.Session{}, errors.New("no full NYSE session in the last month")
}

// template creates the migrated database every part copies, with pg_stat_statements, and reads
// the default windows.
func (b *providerBench) template(ctx context.Context) error {
	conn, err := createMigratedDB(ctx, b.admin, b.url, providerTemplate)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("enable pg_stat_statements: %w", err)
	}
	rows, err := conn.Query(ctx, benchProviderWindowsSQL)
	if err != nil {
		return fmt.Errorf("read the default windows: %w", err)
	}
	b.windows = map[market.Timeframe]int{}
	var tf string
	var days int
	if _, err := pgx.ForEachRow(rows, []any{&tf, &days}, func() error { b.windows[market.Timeframe(tf)] = days; return nil }); err != nil {
		return fmt.Errorf("read the default windows: %w", err)
	}
	return nil
}

// header prints the machine, the server and the settings.
func (b *providerBench) header(ctx context.Context, w io.Writer) error {
	var version, fsync, syncCommit, sharedBuffers, maxConns, commitTS string
	if err := b.admin.QueryRow(ctx, benchBackfillSettingsSQL).Scan(&version, &fsync, &syncCommit, &sharedBuffers, &maxConns, &commitTS); err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	syms := make([]string, len(b.symbols))
	for i, n := range b.symbols {
		syms[i] = strconv.Itoa(n)
	}
	skipped := slices.Sorted(maps.Keys(b.skip))
	windows := make([]string, 0, len(providerTimeframes))
	for _, tf := range providerTimeframes {
		windows = append(windows, fmt.Sprintf("%s %d d", tf, b.windows[tf]))
	}
	fmt.Fprintf(w, "provider budget: what fast means when the provider's requests are the scarce resource\n"+
		"machine: %d CPUs, GOMAXPROCS %d, %s/%s, %s, load average %s\n"+
		"PostgreSQL %s, throw-away cluster on loopback: fsync=%s synchronous_commit=%s shared_buffers=%s, pg_stat_statements (top level)\n"+
		"settings: --symbols %s --rate %d --replicas %d --fresh-symbols %d --scale %g --db-symbols %d --skip %q\n"+
		"provider: alpacafake (Alpaca's v2 bars API on loopback, extended hours, pages of %d bars summed over the symbols);\n"+
		"each replica: its own pool, marketdata.Alpaca client and budget.Budget on one provider_budget row (PerMinute %d, Pace %.2f),\n"+
		"orchestrator Concurrency %d, FetchConcurrency %d; windows %s; simulated session: %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), loadAverage(),
		version, fsync, syncCommit, sharedBuffers,
		strings.Join(syms, ","), b.rate, b.replicas, b.freshSymbols, b.scale, b.dbSymbols, strings.Join(skipped, ","),
		providerPageBars, b.rate, providerPace, providerConcurrency, providerFetches, strings.Join(windows, ", "), b.day.Day())
	return nil
}

// scratch creates database name as a copy of the template and opens a pool of conns on it; drop
// closes the pool and drops the database.
func (b *providerBench) scratch(ctx context.Context, name string, conns int) (pool *pgxpool.Pool, drop func(context.Context) error, err error) {
	if _, err := b.admin.Exec(ctx, fmt.Sprintf(benchCreateDBSQL, pgx.Identifier{name}.Sanitize(), pgx.Identifier{providerTemplate}.Sanitize())); err != nil {
		return nil, nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		if pool != nil {
			pool.Close()
		}
		return dropDatabase(ctx, b.admin, name)
	}
	if pool, err = benchPool(ctx, b.url, name, conns, "backfill-bench-provider"); err != nil {
		return nil, nil, errors.Join(err, drop(context.WithoutCancel(ctx)))
	}
	return pool, drop, nil
}

// defineSymbols creates n symbols × the scenario's timeframes; a non-zero backfilled marks them as a
// finished backfill leaves them (bench_provider_define.sql).
func defineSymbols(ctx context.Context, pool *pgxpool.Pool, n int, backfilled time.Time) error {
	var at *time.Time
	if !backfilled.IsZero() {
		at = &backfilled
	}
	if _, err := pool.Exec(ctx, benchProviderDefineSQL, n, market.Names(providerTimeframes), at); err != nil {
		return fmt.Errorf("create %d symbols' definitions: %w", n, err)
	}
	return nil
}

// barsPerSymbol is how many bars the fake serves one symbol for the default windows ending at
// now: the grid's bar starts in each window.
func (b *providerBench) barsPerSymbol(now time.Time) int64 {
	grid, cal := market.AlpacaGrid(), market.NYSE()
	var n int64
	for _, tf := range providerTimeframes {
		n += int64(len(grid.Starts(cal, tf, now.Add(-time.Duration(b.windows[tf])*24*time.Hour), now)))
	}
	return n
}

// floorRequests is the fewest requests bars take: full pages.
func floorRequests(bars int64) int64 { return (bars + providerPageBars - 1) / providerPageBars }

// floorTime is the least time requests take at the plan's rate.
func (b *providerBench) floorTime(requests int64) time.Duration {
	return time.Duration(float64(requests) / float64(b.rate) * float64(time.Minute))
}

// coverLimit is how long a backfill of bars may take before it counts as stalled: ten times the
// floor, plus two minutes.
func (b *providerBench) coverLimit(bars int64) time.Duration {
	return 10*b.floorTime(floorRequests(bars)) + 2*time.Minute
}

// replicaConfig is how the scenario runs its orchestrators.
type replicaConfig struct {
	db      string
	fakeURL string
	// now is the clock of the budget, the Alpaca client and the orchestrator; nil: the
	// database's (the client: the process's).
	now                       func() time.Time
	poll, tick, lease, settle time.Duration // zero: the orchestrator's defaults
}

// benchReplica is what one `serve` process runs of the backfill: its own pool, budget handle, Alpaca
// client and orchestrator, with metrics on a registry of its own.
type benchReplica struct {
	pool *pgxpool.Pool
	reg  *prometheus.Registry
	orch *orchestrator.Orchestrator
}

// benchReplicas are the scenario's orchestrators; stop ends them all.
type benchReplicas []*benchReplica

// startReplicas builds --replicas orchestrators on cfg.db and starts them; on an error the ones
// made are stopped.
func (b *providerBench) startReplicas(ctx context.Context, cfg replicaConfig) (rs benchReplicas, err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, rs.stop(context.WithoutCancel(ctx)))
			rs = nil
		}
	}()
	for i := range b.replicas {
		name := fmt.Sprintf("backfill-bench-provider-%d", i+1)
		pool, err := benchPool(ctx, b.url, cfg.db, providerConcurrency+6, name)
		if err != nil {
			return rs, err
		}
		r := &benchReplica{pool: pool, reg: prometheus.NewRegistry()}
		rs = append(rs, r)
		logger := b.logger.With("replica", i+1)
		limiter, err := budget.New(ctx, budget.Config{Pool: pool, Provider: providerName, PerMinute: float64(b.rate), Pace: providerPace,
			Now: cfg.now, Registerer: r.reg, Logger: logger.With("component", "budget")})
		if err != nil {
			return rs, fmt.Errorf("replica %d: provider budget: %w", i+1, err)
		}
		client, err := marketdata.NewAlpaca(marketdata.AlpacaConfig{BaseURL: cfg.fakeURL, KeyID: "fake-key-id", SecretKey: "fake-secret",
			Limiter: limiter, Now: cfg.now, Registerer: r.reg, Logger: logger.With("component", "provider")})
		if err != nil {
			return rs, fmt.Errorf("replica %d: %w", i+1, err)
		}
		r.orch, err = orchestrator.New(orchestrator.Config{Pool: pool, Provider: client, Concurrency: providerConcurrency, FetchConcurrency: providerFetches,
			Poll: cfg.poll, Tick: cfg.tick, Lease: cfg.lease, Settle: cfg.settle, Now: cfg.now, Owner: name,
			Registerer: r.reg, Logger: logger.With("component", "orchestrator")})
		if err != nil {
			return rs, fmt.Errorf("replica %d: %w", i+1, err)
		}
	}
	for i, r := range rs {
		if err := r.orch.Start(ctx); err != nil {
			return rs, fmt.Errorf("replica %d: %w", i+1, err)
		}
	}
	return rs, nil
}

// stop ends the orchestrators and closes their pools; it may be called again.
func (rs benchReplicas) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	for _, r := range rs {
		if r.orch != nil {
			err = errors.Join(err, r.orch.Stop(ctx))
		}
	}
	for _, r := range rs {
		r.pool.Close()
	}
	return err
}

// requests sums the replicas' provider requests (pages) by purpose.
func (rs benchReplicas) requests() (map[string]float64, error) {
	out := map[string]float64{}
	for _, r := range rs {
		mfs, err := r.reg.Gather()
		if err != nil {
			return nil, fmt.Errorf("gather metrics: %w", err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "backfill_provider_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "purpose" {
						out[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return out, nil
}

// waitCovered polls every 100 ms until every definition's window is covered (covered_at), a run
// failed for good, or limit passed; it reports whether every window was covered.
func waitCovered(ctx context.Context, pool *pgxpool.Pool, limit time.Duration) (bool, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var defs, uncovered, failed int64
		if err := pool.QueryRow(ctx, benchProviderProgressSQL).Scan(&defs, &uncovered, &failed); err != nil {
			return false, fmt.Errorf("read progress: %w", err)
		}
		switch {
		case failed > 0:
			return false, nil
		case defs > 0 && uncovered == 0:
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-deadline.C:
			return false, nil
		case <-t.C:
		}
	}
}

// budgetPart is part 1: from nothing to every window covered, for each of --symbols.
type budgetPart struct {
	b    *providerBench
	rows []budgetRow
}

// budgetRow is one symbol count's figures.
type budgetRow struct {
	n, defs  int
	expected int64 // bars the calendar puts in the windows
	limit    time.Duration
	done     bool // every window covered within limit
	wall     time.Duration
	stats    alpacafake.Stats
	purposes map[string]float64 // the clients' requests by purpose
	bars     int64              // stored
	noBars   int64              // definitions without a bar
	failed   int64              // runs failed for good
	tfFloor  int64              // the fewest requests with one timeframe per request
}

func (p *budgetPart) run(ctx context.Context) error {
	for _, n := range p.b.symbols {
		row, err := p.measure(ctx, n)
		if err != nil {
			return fmt.Errorf("%d symbols: %w", n, err)
		}
		p.rows = append(p.rows, row)
	}
	return nil
}

// measure backfills n symbols on a fresh database with a fresh fake on the real clock.
func (p *budgetPart) measure(ctx context.Context, n int) (row budgetRow, err error) {
	b := p.b
	row.n, row.defs = n, n*len(providerTimeframes)
	pool, drop, err := b.scratch(ctx, fmt.Sprintf("bench_provider_budget_%d", n), 2)
	if err != nil {
		return row, err
	}
	defer func() { err = errors.Join(err, drop(context.WithoutCancel(ctx))) }()
	if err := defineSymbols(ctx, pool, n, time.Time{}); err != nil {
		return row, err
	}
	row.expected = int64(n) * b.barsPerSymbol(time.Now())
	row.limit = b.coverLimit(row.expected)

	fake, err := alpacafake.New(alpacafake.Config{Rate: b.rate})
	if err != nil {
		return row, err
	}
	url, err := fake.Start()
	if err != nil {
		return row, err
	}
	defer fake.Close()
	start := time.Now()
	rs, err := b.startReplicas(ctx, replicaConfig{db: fmt.Sprintf("bench_provider_budget_%d", n), fakeURL: url})
	if err != nil {
		return row, err
	}
	defer func() { err = errors.Join(err, rs.stop(context.WithoutCancel(ctx))) }()
	if row.done, err = waitCovered(ctx, pool, row.limit); err != nil {
		return row, err
	}
	row.wall = time.Since(start)
	if err := rs.stop(ctx); err != nil {
		return row, err
	}
	row.stats = fake.Stats()
	if row.purposes, err = rs.requests(); err != nil {
		return row, err
	}
	if err := pool.QueryRow(ctx, benchProviderFiguresSQL).Scan(&row.bars, &row.noBars, &row.failed, &row.tfFloor); err != nil {
		return row, fmt.Errorf("count the bars: %w", err)
	}
	return row, nil
}

// failures names the symbol counts whose backfill did not finish.
func (p *budgetPart) failures() []string {
	var out []string
	for _, r := range p.rows {
		switch {
		case !r.done && r.failed > 0:
			out = append(out, fmt.Sprintf("budget, %d symbols: %d runs failed", r.n, r.failed))
		case !r.done:
			out = append(out, fmt.Sprintf("budget, %d symbols: windows not covered within %s", r.n, r.limit.Round(time.Second)))
		}
	}
	return out
}

func (p *budgetPart) print(w io.Writer) error {
	b := p.b
	fmt.Fprintf(w, "\nPart 1 — budget: N symbols × m15,h1,h4 (default windows, priority 300, inserted directly) from nothing\n"+
		"to every window covered (covered_at of every definition, polled every 100 ms), each N on a fresh database\n"+
		"and a fresh fake (%d requests a minute, sliding window) on the real clock; %d orchestrators sharing the budget.\n"+
		"floor = ceil(bars stored / %d) requests; floor time = floor / %d a minute. requests = pages the fake answered\n"+
		"200 (refresh: of them, refreshes of open slices after a bar closed during the run, from the clients' metrics);\n"+
		"zero-bar = 200 pages without a bar; closed-only = requests for closed-market time only;\n"+
		"floor/tf = the fewest requests when a request carries one timeframe, as every provider's does: Σ ceil(bars of a timeframe / %d)\n",
		b.rate, b.replicas, providerPageBars, b.rate, providerPageBars)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tdefs\tbars\tfloor req\tfloor/tf\trequests\trefresh\treq/floor\treq/floor-tf\t429\tzero-bar\tclosed-only\tfloor time\twall time\ttime/floor\tno bars\t")
	for _, r := range p.rows {
		floor := floorRequests(r.bars)
		ft := b.floorTime(floor)
		wall := secText(r.wall)
		if !r.done {
			wall = "unfinished"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", r.n, r.defs, r.bars, floor, r.tfFloor,
			r.stats.Accepted, r.purposes[marketdata.PurposeRefresh], ratioText(float64(r.stats.Accepted), float64(floor)),
			ratioText(float64(r.stats.Accepted), float64(r.tfFloor)),
			r.stats.RateLimited, r.stats.ZeroBar, r.stats.ClosedOnly, secText(ft), wall, ratioText(r.wall.Seconds(), ft.Seconds()), r.noBars)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range p.rows {
		if r.bars != r.expected && r.done {
			fmt.Fprintf(w, "note: N=%d: %d bars stored, the calendar's grid puts %d in the windows at the start (bars closing during the run add some)\n",
				r.n, r.bars, r.expected)
		}
		if r.stats.MaxInWindow > b.rate {
			fmt.Fprintf(w, "warning: N=%d: the fake admitted %d requests in one window, more than the plan's %d\n", r.n, r.stats.MaxInWindow, b.rate)
		}
	}

	fmt.Fprintf(w, "\nThe original's design, computed, not run: one request per symbol and timeframe, 5 a minute (its pg_cron\n"+
		"dispatched 5 jobs a minute): requests = 3N, time = 3N / 5 minutes; ratios against the same floor\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\trequests\treq/floor\ttime\ttime/floor\tours\tspeed-up\t")
	for _, r := range p.rows {
		floor := floorRequests(r.bars)
		req := int64(3 * r.n)
		t := time.Duration(float64(req) / originalRunsPerTick * float64(originalTick))
		ours, speed := "unfinished", "-"
		if r.done {
			ours, speed = secText(r.wall), fmt.Sprintf("%.0f×", t.Seconds()/r.wall.Seconds())
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.n, req, ratioText(float64(req), float64(floor)), humanDuration(t),
			ratioText(t.Seconds(), b.floorTime(floor).Seconds()), ours, speed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nGoals")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "N\trequests <= %.1f × floor\ttime <= %.2f × floor time\t0 × 429\tdefinitions without bars = 0\t\n", goalRequestRatio, goalTimeRatio)
	for _, r := range p.rows {
		floor := floorRequests(r.bars)
		reqRatio := float64(r.stats.Accepted) / float64(max(floor, 1))
		timeRatio := r.wall.Seconds() / b.floorTime(floor).Seconds()
		fmt.Fprintf(tw, "%d\t%.2f %s\t%s %s\t%d %s\t%d %s\t\n", r.n,
			reqRatio, yesNo(reqRatio <= goalRequestRatio),
			ratioText(r.wall.Seconds(), b.floorTime(floor).Seconds()), yesNo(r.done && timeRatio <= goalTimeRatio),
			r.stats.RateLimited, yesNo(r.stats.RateLimited == 0),
			r.noBars, yesNo(r.noBars == 0))
	}
	return tw.Flush()
}

// simClock is the freshness part's one clock: simulated time that runs at scale × the wall
// clock, from a start; the scale can change (the clock stays continuous and monotonic).
type simClock struct {
	mu     sync.Mutex
	realAt time.Time // the wall instant of the last change, with its monotonic reading
	simAt  time.Time // the simulated instant then
	scale  float64
}

func newSimClock(start time.Time, scale float64) *simClock {
	return &simClock{realAt: time.Now(), simAt: start, scale: scale}
}

// Now is the simulated instant.
func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(time.Now())
}

func (c *simClock) nowLocked(wall time.Time) time.Time {
	return c.simAt.Add(time.Duration(float64(wall.Sub(c.realAt)) * c.scale))
}

// setScale makes the clock run at scale from now on.
func (c *simClock) setScale(scale float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := time.Now()
	c.simAt, c.realAt, c.scale = c.nowLocked(wall), wall, scale
}

// sleepUntil returns when the clock reaches t, or ctx's error.
func (c *simClock) sleepUntil(ctx context.Context, t time.Time) error {
	for {
		c.mu.Lock()
		d := time.Duration(float64(t.Sub(c.nowLocked(time.Now()))) / c.scale)
		c.mu.Unlock()
		if d <= 0 {
			return nil
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		case <-timer.C:
		}
	}
}

// freshnessPart is part 2: the lag of the stored bars through a simulated session.
type freshnessPart struct {
	b                *providerBench
	tick             time.Duration
	start, open, end time.Time // the clock's start (08:30 ET), the regular session, the run's end (16:30 ET)
	limit            time.Duration

	// The backfill, at 1×.
	backfillReal time.Duration
	backfillDone time.Time // on the simulated clock
	backfill     alpacafake.Stats

	// The session, at --scale×, sampled every simulated minute from sessionFrom to the close.
	sessionFrom      time.Time
	samples, skipped int
	m15, h1          lagFigures
	session          alpacafake.Stats // during the sampled session
	sessionPurposes  map[string]float64
	total            alpacafake.Stats
}

// lagFigures are one timeframe's lags over the samples.
type lagFigures struct {
	maxP99, maxP50 time.Duration
	worst          time.Duration
	worstSymbol    string
	worstAt        time.Time
	// late counts the samples that saw a lag although no bar closed at their instant: a refresh
	// still missing a simulated minute or more after its close. (A sample right at a close sees
	// every series one bar behind until the refresh, whatever the orchestrator does.)
	late int
}

func (l *lagFigures) add(st freshness.Stats, at time.Time, atClose bool) {
	l.maxP99, l.maxP50 = max(l.maxP99, st.P99), max(l.maxP50, st.P50)
	if st.Worst > l.worst {
		l.worst, l.worstSymbol, l.worstAt = st.Worst, st.WorstSymbol, at
	}
	if st.Worst > 0 && !atClose {
		l.late++
	}
}

func (p *freshnessPart) run(ctx context.Context) (err error) {
	b := p.b
	ny := market.NYSE().Location()
	y, m, d := b.day.Date.In(ny).Date()
	p.start = time.Date(y, m, d, 8, 30, 0, 0, ny)
	p.open, p.end = b.day.Open, time.Date(y, m, d, 16, 30, 0, 0, ny)
	p.tick = max(time.Duration(float64(time.Minute)/b.scale), 50*time.Millisecond)
	p.limit = b.coverLimit(int64(b.freshSymbols) * b.barsPerSymbol(p.start))

	const db = "bench_provider_freshness"
	pool, drop, err := b.scratch(ctx, db, 2)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drop(context.WithoutCancel(ctx))) }()
	if err := defineSymbols(ctx, pool, b.freshSymbols, time.Time{}); err != nil {
		return err
	}
	// The backfill runs at 1×, so the plan's rate is real and the backfill's database work fits
	// before the open whatever the machine; the session then runs at --scale×.
	clock := newSimClock(p.start, 1)
	fake, err := alpacafake.New(alpacafake.Config{Rate: b.rate, Now: clock.Now})
	if err != nil {
		return err
	}
	url, err := fake.Start()
	if err != nil {
		return err
	}
	defer fake.Close()
	// Tick fires once a simulated minute at --scale×. Lease 1h is both a wall-clock timer (the
	// heartbeat every 20 min never fires) and, in SQL, a simulated interval (30 s at 120×), far
	// longer than any batch.
	rs, err := b.startReplicas(ctx, replicaConfig{db: db, fakeURL: url, now: clock.Now,
		poll: 100 * time.Millisecond, tick: p.tick, lease: time.Hour, settle: providerSettle})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rs.stop(context.WithoutCancel(ctx))) }()

	began := time.Now()
	covered, err := waitCovered(ctx, pool, p.limit)
	if err != nil {
		return err
	}
	p.backfillReal, p.backfillDone, p.backfill = time.Since(began), clock.Now(), fake.Stats()
	if !covered {
		return fmt.Errorf("the backfill of %d symbols did not cover every window within %s (or a run failed)", b.freshSymbols, p.limit.Round(time.Second))
	}
	clock.setScale(b.scale)

	sampler, err := freshness.New(freshness.Config{Pool: pool, Grid: market.AlpacaGrid(), Now: clock.Now})
	if err != nil {
		return err
	}
	if err := p.sample(ctx, clock, sampler, fake, rs); err != nil {
		return err
	}
	if err := clock.sleepUntil(ctx, p.end); err != nil {
		return err
	}
	if err := rs.stop(ctx); err != nil {
		return err
	}
	p.total = fake.Stats()
	return nil
}

// sample samples the freshness every simulated minute of the regular session (from the open, or
// from the backfill's end if it ran past it), and counts the requests in between.
func (p *freshnessPart) sample(ctx context.Context, clock *simClock, sampler *freshness.Sampler, fake *alpacafake.Server, rs benchReplicas) error {
	next := p.open
	if now := clock.Now(); now.After(next) {
		next = now.Truncate(time.Minute).Add(time.Minute)
	}
	var atOpen alpacafake.Stats
	var purposesAtOpen map[string]float64
	closeAt := p.b.day.Close
	for !next.After(closeAt) {
		if err := clock.sleepUntil(ctx, next); err != nil {
			return err
		}
		if p.samples == 0 {
			p.sessionFrom, atOpen = next, fake.Stats()
			var err error
			if purposesAtOpen, err = rs.requests(); err != nil {
				return err
			}
		}
		rep, err := sampler.Sample(ctx)
		if err != nil {
			return err
		}
		p.samples++
		p.m15.add(rep.Timeframes[market.M15], rep.At, closesAt(market.M15, rep.At))
		p.h1.add(rep.Timeframes[market.H1], rep.At, closesAt(market.H1, rep.At))
		next = next.Add(time.Minute)
		// A sample that took longer than a simulated minute skips the minutes it overran.
		if now := clock.Now(); now.Sub(next) >= time.Minute && now.Before(closeAt) {
			skip := now.Truncate(time.Minute).Add(time.Minute)
			p.skipped += int(skip.Sub(next) / time.Minute)
			next = skip
		}
	}
	atClose := fake.Stats()
	p.session = alpacafake.Stats{
		Accepted: atClose.Accepted - atOpen.Accepted, RateLimited: atClose.RateLimited - atOpen.RateLimited,
		ZeroBar: atClose.ZeroBar - atOpen.ZeroBar, ClosedOnly: atClose.ClosedOnly - atOpen.ClosedOnly, Bars: atClose.Bars - atOpen.Bars,
	}
	purposes, err := rs.requests()
	if err != nil {
		return err
	}
	p.sessionPurposes = map[string]float64{}
	for k, v := range purposes {
		p.sessionPurposes[k] = v - purposesAtOpen[k]
	}
	return nil
}

// closesAt reports whether a tf bar of the Alpaca grid closes at t.
func closesAt(tf market.Timeframe, t time.Time) bool {
	_, end, ok := market.AlpacaGrid().LastClosed(market.NYSE(), tf, t)
	return ok && end.Equal(t)
}

func (p *freshnessPart) print(w io.Writer) error {
	b := p.b
	ny := market.NYSE().Location()
	clock := func(t time.Time) string { return t.In(ny).Format("15:04:05") }
	fmt.Fprintf(w, "\nPart 2 — freshness: %d symbols × m15,h1,h4 through the session of %s (simulated); one clock for the fake\n"+
		"(%d requests a simulated minute), the budget, the orchestrators and the sampler: 1× from %s ET until every\n"+
		"window is covered, then %g× (one simulated minute = %s) until %s ET. Orchestrators: Poll 100ms, Tick %s (a\n"+
		"simulated minute), Lease 1h, Settle %s; the freshness sampler every simulated minute %s–%s ET\n",
		b.freshSymbols, b.day.Day(), b.rate, clock(p.start), b.scale, time.Duration(float64(time.Minute)/b.scale), clock(p.end),
		p.tick, providerSettle, clock(p.sessionFrom), clock(b.day.Close))
	fmt.Fprintf(w, "backfill: every window covered at %s ET (simulated), %s after the start; %d requests, %d × 429, %d bars served\n",
		clock(p.backfillDone), secText(p.backfillReal), p.backfill.Accepted, p.backfill.RateLimited, p.backfill.Bars)
	if p.sessionFrom.After(p.open) {
		fmt.Fprintf(w, "warning: the backfill ran past the open: the session is sampled from %s ET only\n", clock(p.sessionFrom))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "timeframe\tsamples\tp50 (max)\tp99 (max)\tworst\tgoal\tmet\tlate samples\t")
	for _, row := range []struct {
		tf   market.Timeframe
		l    lagFigures
		goal time.Duration
	}{{market.M15, p.m15, goalM15Lag}, {market.H1, p.h1, goalH1Lag}} {
		worst := fmt.Sprintf("%.0fs", row.l.worst.Seconds())
		if row.l.worst > 0 {
			worst += fmt.Sprintf(" (%s at %s)", row.l.worstSymbol, clock(row.l.worstAt))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0fs\t%.0fs\t%s\t<= %.0fs\t%s\t%d\t\n", row.tf, p.samples, row.l.maxP50.Seconds(), row.l.maxP99.Seconds(),
			worst, row.goal.Seconds(), yesNo(max(row.l.maxP99, row.l.worst) <= row.goal), row.l.late)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	hours := b.day.Close.Sub(p.sessionFrom).Hours()
	fmt.Fprintf(w, "(a sample's report gives the p50, p99 and worst lag over the definitions, not each definition's lag: p50 and\n"+
		"p99 are the largest per-sample values, worst the largest lag of any definition in any sample; one bar behind is\n"+
		"900 s in m15, 3600 s in h1, and a sample right at a bar's close sees it until the refresh, at least %s later;\n"+
		"late samples: those a simulated minute or more after a close that still saw a lag; at %g× a simulated minute\n"+
		"is %s of real time, so they count refreshes that took the database and the dispatchers that long)\n",
		providerSettle, b.scale, time.Duration(float64(time.Minute)/b.scale))
	if p.skipped > 0 {
		fmt.Fprintf(w, "note: %d simulated minutes were not sampled (a sample overran its minute)\n", p.skipped)
	}
	fmt.Fprintf(w, "session %s–%s ET: %d requests = %.1f per session hour (refresh %.0f, backfill %.0f, repair %.0f), %d × 429, %d zero-bar, %d closed-only, %d bars\n",
		clock(p.sessionFrom), clock(b.day.Close), p.session.Accepted, float64(p.session.Accepted)/math.Max(hours, 1.0/60),
		p.sessionPurposes[marketdata.PurposeRefresh], p.sessionPurposes[marketdata.PurposeBackfill], p.sessionPurposes[marketdata.PurposeRepair],
		p.session.RateLimited, p.session.ZeroBar, p.session.ClosedOnly, p.session.Bars)
	fmt.Fprintf(w, "whole run (to %s ET): %d requests, %d × 429, %d zero-bar, %d closed-only; at most %d requests in one simulated minute (plan %d)\n",
		clock(p.end), p.total.Accepted, p.total.RateLimited, p.total.ZeroBar, p.total.ClosedOnly, p.total.MaxInWindow, b.rate)
	return nil
}

// dbPart is part 3: the database's cost of planning, refreshing and claiming at --db-symbols.
type dbPart struct {
	b        *providerBench
	pool     *pgxpool.Pool
	at       time.Time // the bench's instant: 11:45:30 ET, just after an m15 boundary
	fetched  time.Time // when the generated history was fetched: a minute before
	sizes    orchestrator.SliceSizes
	maxBatch int
	grid     market.Grid
	nyse     *market.Calendar
	crypto   *market.Calendar

	defs, runs int64
	generated  time.Duration
	size       string

	steps     []dbCost
	batchLat  []time.Duration // per ClaimBatch of the drain
	singleLat []time.Duration // per Claim of one run
	cycles    []dbCost        // the simulated session hour
}

// dbCost is what one measured step took.
type dbCost struct {
	step   string
	wall   time.Duration
	dbExec time.Duration // pg_stat_statements' execution time
	dbCPU  time.Duration // the client backends' user + system CPU
	goCPU  time.Duration // this process's
	wal    float64       // bytes of WAL written
	runs   int
}

func (c dbCost) plus(o dbCost) dbCost {
	c.wall += o.wall
	c.dbExec += o.dbExec
	c.dbCPU += o.dbCPU
	c.goCPU += o.goCPU
	c.wal += o.wal
	c.runs += o.runs
	return c
}

// Claims in part 3 are timed from this process: the round trip of one statement.
const singleClaims = 200

func (p *dbPart) run(ctx context.Context) (err error) {
	b := p.b
	ny := market.NYSE().Location()
	y, m, d := b.day.Date.In(ny).Date()
	// 15 s after the 11:45 m15 close plus Settle: the next hour holds four m15 closes, one h1
	// and one h4 (12:00 ET).
	p.at = time.Date(y, m, d, 11, 45, 30, 0, ny).UTC()
	p.fetched = p.at.Add(-time.Minute)
	p.sizes = orchestrator.SliceSizesFor(providerPageBars)
	p.grid, p.nyse, p.crypto = market.AlpacaGrid(), market.NYSE(), market.Crypto()
	client, err := marketdata.NewAlpaca(marketdata.AlpacaConfig{KeyID: "fake-key-id", SecretKey: "fake-secret"})
	if err != nil {
		return err
	}
	p.maxBatch = client.MaxSymbols()

	const db = "bench_provider_db"
	pool, drop, err := b.scratch(ctx, db, 4)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drop(context.WithoutCancel(ctx))) }()
	p.pool = pool
	if err := p.prepare(ctx); err != nil {
		return err
	}
	return p.measure(ctx)
}

// prepare generates the backfilled system with SQL and checks it against the planner's grid.
func (p *dbPart) prepare(ctx context.Context) error {
	b := p.b
	start := time.Now()
	if err := defineSymbols(ctx, p.pool, b.dbSymbols, p.fetched); err != nil {
		return err
	}
	tfs := make([]string, 0, len(providerTimeframes))
	secs := make([]int64, 0, len(providerTimeframes))
	var want int64
	for _, tf := range providerTimeframes {
		tfs = append(tfs, string(tf))
		secs = append(secs, int64(p.sizes[tf]/time.Second))
		want += int64(len(orchestrator.Window(p.sizes[tf], b.windows[tf], p.at)))
	}
	want *= int64(b.dbSymbols)
	var coverage int64
	if err := p.pool.QueryRow(ctx, benchProviderHistorySQL, tfs, secs, p.at, p.fetched).Scan(&p.runs, &coverage); err != nil {
		return fmt.Errorf("generate the runs and coverage: %w", err)
	}
	if p.runs != want {
		return fmt.Errorf("generated %d runs, the planner's grid (orchestrator.Window) has %d", p.runs, want)
	}
	p.defs = int64(b.dbSymbols * len(providerTimeframes))
	if _, err := p.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	p.generated = time.Since(start)
	// The pool's connections are open before anything is measured.
	conns := make([]*pgxpool.Conn, 0, 4)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range 4 {
		c, err := p.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// measure runs steps (a)–(f).
func (p *dbPart) measure(ctx context.Context) error {
	step := func(name string, fn func() (int, error)) error {
		c, err := measureDB(ctx, p.pool, name, fn)
		if err != nil {
			return err
		}
		p.steps = append(p.steps, c)
		return nil
	}
	// (a), (b): planning with nothing to plan.
	for i := range 3 {
		if err := step(fmt.Sprintf("(a) EnqueueAll, nothing to plan (%d)", i+1), func() (int, error) {
			res, err := orchestrator.EnqueueAll(ctx, p.pool, p.at, p.sizes)
			return res.Inserted + res.Requeued, err
		}); err != nil {
			return err
		}
	}
	for i := range 3 {
		if err := step(fmt.Sprintf("(b) EnqueueChanges, nothing changed (%d)", i+1), func() (int, error) {
			res, err := orchestrator.EnqueueChanges(ctx, p.pool, p.at, p.sizes)
			return res.Inserted + res.Requeued, err
		}); err != nil {
			return err
		}
	}
	// (c): a refresh whose thresholds lie before every fetch: nothing stale.
	before := map[market.Timeframe]orchestrator.RefreshAfter{}
	for _, tf := range market.Timeframes() {
		before[tf] = orchestrator.RefreshAfter{Stock: p.fetched.Add(-time.Minute), Crypto: p.fetched.Add(-time.Minute)}
	}
	if err := step("(c) Refresh, nothing stale", func() (int, error) { return p.refresh(ctx, p.at, before) }); err != nil {
		return err
	}
	// (d): the refresh the orchestrator makes at p.at: the 11:45 m15 bar closed after the fetches.
	if err := step("(d) Refresh at an m15 close (11:45 ET + settle)", func() (int, error) {
		return p.refresh(ctx, p.at, p.thresholds(p.at))
	}); err != nil {
		return err
	}
	// (e): the drain, then single claims on the queue put back.
	if err := step(fmt.Sprintf("(e) drain with ClaimBatch(%d)", p.maxBatch), func() (int, error) { return p.drain(ctx) }); err != nil {
		return err
	}
	var back int64
	if err := p.pool.QueryRow(ctx, benchProviderPutBackSQL, providerOwner).Scan(&back); err != nil {
		return fmt.Errorf("put the runs back: %w", err)
	}
	if err := step(fmt.Sprintf("(e) Claim(1) × %d on %d queued", singleClaims, back), func() (int, error) { return p.claimSingles(ctx) }); err != nil {
		return err
	}
	var finished int64
	if err := p.pool.QueryRow(ctx, benchProviderFinishSQL, p.at).Scan(&finished); err != nil {
		return fmt.Errorf("finish the runs: %w", err)
	}
	// (f): a simulated session hour: each close as the orchestrator handles it, 30 s after it.
	closeAt := p.at
	for range 4 {
		end, ok := p.grid.NextClose(p.nyse, market.M15, closeAt)
		if !ok {
			return errors.New("no m15 close after the bench's instant")
		}
		closeAt = end
		now := end.Add(2 * providerSettle)
		c, err := measureDB(ctx, p.pool, "(f) "+p.closing(end), func() (int, error) { return p.cycle(ctx, now) })
		if err != nil {
			return err
		}
		p.cycles = append(p.cycles, c)
	}
	return nil
}

// closing names the timeframes whose bars close at end, in New York time: "12:00 ET m15+h1+h4".
func (p *dbPart) closing(end time.Time) string {
	var tfs []string
	for _, tf := range providerTimeframes {
		if _, e, ok := p.grid.LastClosed(p.nyse, tf, end); ok && e.Equal(end) {
			tfs = append(tfs, string(tf))
		}
	}
	return fmt.Sprintf("%s ET %s", end.In(p.nyse.Location()).Format("15:04"), strings.Join(tfs, "+"))
}

// thresholds are the refresh instants the orchestrator computes at now (its refreshAfter): per
// timeframe, the end of the newest bar closed by now − Settle, plus Settle, on both calendars.
func (p *dbPart) thresholds(now time.Time) map[market.Timeframe]orchestrator.RefreshAfter {
	after := func(cal *market.Calendar, tf market.Timeframe) time.Time {
		_, end, ok := p.grid.LastClosed(cal, tf, now.Add(-providerSettle))
		if !ok {
			return time.Unix(0, 0).UTC()
		}
		return end.Add(providerSettle)
	}
	out := map[market.Timeframe]orchestrator.RefreshAfter{}
	for _, tf := range market.Timeframes() {
		out[tf] = orchestrator.RefreshAfter{Stock: after(p.nyse, tf), Crypto: after(p.crypto, tf)}
	}
	return out
}

// refresh runs orchestrator.Refresh and returns how many runs it queued.
func (p *dbPart) refresh(ctx context.Context, now time.Time, after map[market.Timeframe]orchestrator.RefreshAfter) (int, error) {
	queued, err := orchestrator.Refresh(ctx, p.pool, now, after)
	n := 0
	for _, q := range queued {
		n += q
	}
	return n, err
}

// drain claims batches at p.at until nothing is due, timing each claim.
func (p *dbPart) drain(ctx context.Context) (int, error) {
	n := 0
	for {
		start := time.Now()
		runs, err := orchestrator.ClaimBatch(ctx, p.pool, p.at, providerOwner, time.Minute, p.maxBatch)
		p.batchLat = append(p.batchLat, time.Since(start))
		if err != nil || len(runs) == 0 {
			return n, err
		}
		n += len(runs)
	}
}

// claimSingles claims one run at a time, singleClaims times, timing each.
func (p *dbPart) claimSingles(ctx context.Context) (int, error) {
	n := 0
	for range singleClaims {
		start := time.Now()
		runs, err := orchestrator.Claim(ctx, p.pool, p.at, providerOwner, time.Minute, 1)
		p.singleLat = append(p.singleLat, time.Since(start))
		if err != nil {
			return n, err
		}
		n += len(runs)
	}
	return n, nil
}

// cycle is what the orchestrator does to the database after a bar close, at now: the refresh,
// then per batch PeekNext (its batch size), ClaimBatch, WriteBatch with the new bar of each run,
// and the milestones. It returns the runs written.
func (p *dbPart) cycle(ctx context.Context, now time.Time) (int, error) {
	if _, err := p.refresh(ctx, now, p.thresholds(now)); err != nil {
		return 0, err
	}
	n := 0
	for {
		if _, ok, err := orchestrator.PeekNext(ctx, p.pool, now); err != nil || !ok {
			return n, err
		}
		runs, err := orchestrator.ClaimBatch(ctx, p.pool, now, providerOwner, time.Minute, p.maxBatch)
		if err != nil || len(runs) == 0 {
			return n, err
		}
		results := make([]orchestrator.Result, len(runs))
		for i, r := range runs {
			var bars []marketdata.Bar
			if start, _, ok := p.grid.LastClosed(p.nyse, r.Timeframe, now); ok {
				bars = []marketdata.Bar{{TS: start, Open: 100, High: 101, Low: 99, Close: 100.5, Volume: 1000}}
			}
			req := r.Request()
			results[i] = orchestrator.Result{Run: r, Fetched: orchestrator.Fetched{Provider: providerName, Bars: bars,
				InSession: !p.grid.EndsSession(p.nyse, r.Timeframe, req.From, req.To, r.Claimed)}}
		}
		written, err := orchestrator.WriteBatch(ctx, p.pool, now, providerName, results)
		if err != nil {
			return n, err
		}
		byDef := make(map[string]int64, len(runs))
		for _, r := range runs {
			if w, ok := written[r.ID]; ok {
				byDef[r.JobDefID] += w
			}
		}
		if _, err := orchestrator.RecordMilestonesBatch(ctx, p.pool, now, byDef); err != nil {
			return n, err
		}
		n += len(written)
	}
}

// measureDB runs fn and takes its costs: wall time, statement time, the backends' CPU, this
// process's CPU and the WAL written.
func measureDB(ctx context.Context, pool *pgxpool.Pool, step string, fn func() (int, error)) (dbCost, error) {
	c := dbCost{step: step}
	var lsn string
	var ignored float64
	if err := pool.QueryRow(ctx, benchProviderWALSQL, nil).Scan(&lsn, &ignored); err != nil {
		return c, fmt.Errorf("read the WAL position: %w", err)
	}
	execBefore, err := dbTime(ctx, pool)
	if err != nil {
		return c, err
	}
	cpuBefore, err := backendCPU(ctx, pool)
	if err != nil {
		return c, err
	}
	goBefore := selfCPU()
	start := time.Now()
	c.runs, err = fn()
	c.wall = time.Since(start)
	if err != nil {
		return c, fmt.Errorf("%s: %w", step, err)
	}
	c.goCPU = selfCPU() - goBefore
	cpuAfter, err := backendCPU(ctx, pool)
	if err != nil {
		return c, err
	}
	execAfter, err := dbTime(ctx, pool)
	if err != nil {
		return c, err
	}
	if err := pool.QueryRow(ctx, benchProviderWALSQL, lsn).Scan(&lsn, &c.wal); err != nil {
		return c, fmt.Errorf("read the WAL position: %w", err)
	}
	c.dbExec = execAfter - execBefore
	for pid, ticks := range cpuAfter {
		c.dbCPU += ticks - cpuBefore[pid]
	}
	return c, nil
}

func (p *dbPart) print(w io.Writer) error {
	b := p.b
	ny := p.nyse.Location()
	fmt.Fprintf(w, "\nPart 3 — database cost: %d symbols × m15,h1,h4 = %d definitions, backfilled as of %s ET on %s: %d\n"+
		"successful runs on the planner's grid (checked against orchestrator.Window), coverage up to a minute before,\n"+
		"no bars; generated with SQL in %s. Every statement runs at that instant (the exported functions' now).\n"+
		"db statements = pg_stat_statements' execution time (top level); db CPU = the client backends' user + system CPU\n"+
		"(/proc, 10 ms ticks); bench CPU = this process's; WAL = pg_current_wal_lsn() after - before\n",
		b.dbSymbols, p.defs, p.at.In(ny).Format("15:04:05"), b.day.Day(), p.runs, secText(p.generated))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\twall\tdb statements\tdb CPU\tbench CPU\tWAL\truns\t")
	row := func(c dbCost) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", c.step, ms(c.wall), ms(c.dbExec), ms(c.dbCPU), ms(c.goCPU), bytesText(int64(c.wal)), c.runs)
	}
	for _, c := range p.steps {
		row(c)
	}
	var hour dbCost
	for _, c := range p.cycles {
		row(c)
		hour = hour.plus(c)
	}
	hour.step = "(f) the session hour"
	row(hour)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nclaim latency (round trip from this process)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "claim\tclaims\tp50\tp99\tmax\t")
	for _, l := range []struct {
		what string
		lat  []time.Duration
	}{
		{fmt.Sprintf("ClaimBatch(%d), draining the m15 refreshes (the last one finds none)", p.maxBatch), p.batchLat},
		{"Claim(1) on the queue put back", p.singleLat},
	} {
		sorted := slices.Sorted(slices.Values(l.lat))
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", l.what, len(sorted), ms(durationQuantile(sorted, 0.5)), ms(durationQuantile(sorted, 0.99)), ms(durationQuantile(sorted, 1)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// The cycles happen once per session hour: their CPU per hour, spread over its minutes.
	perMinute := hour.dbCPU / 60
	share := 100 * hour.dbCPU.Seconds() / time.Hour.Seconds()
	fmt.Fprintf(w, "\nsteady state: one session hour (%d refreshes and writes: four m15 closes, one h1, one h4) costs %s of\n"+
		"database CPU (statements %s, WAL %s): %s a minute = %.2f %% of one core (goal: under 10 %%: %s)\n",
		hour.runs, secText(hour.dbCPU), secText(hour.dbExec), bytesText(int64(hour.wal)), ms(perMinute), share, yesNo(share < 10))
	if idle := p.idleTick(); idle > 0 {
		fmt.Fprintf(w, "beside it, every replica's tick (EnqueueAll + Refresh with nothing to do, every 60 s, as measured in (a) and (c)\n"+
			"with max(db CPU, db statements)): %s an hour = %.2f %% of one core per replica\n",
			secText(60*idle), 100*(60*idle).Seconds()/time.Hour.Seconds())
	}
	return nil
}

// idleTick is the database's cost of one idle tick: the median idle EnqueueAll plus the idle
// Refresh, each the larger of its backends' CPU and its statements' time (the CPU comes in 10 ms
// ticks).
func (p *dbPart) idleTick() time.Duration {
	var enqueue []time.Duration
	var refresh time.Duration
	for _, c := range p.steps {
		switch {
		case strings.HasPrefix(c.step, "(a)"):
			enqueue = append(enqueue, max(c.dbCPU, c.dbExec))
		case strings.HasPrefix(c.step, "(c)"):
			refresh = max(c.dbCPU, c.dbExec)
		}
	}
	if len(enqueue) == 0 {
		return 0
	}
	slices.Sort(enqueue)
	return enqueue[len(enqueue)/2] + refresh
}

// durationQuantile is the q-quantile (nearest rank) of sorted durations; zero when there are none.
func durationQuantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func secText(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func ratioText(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
