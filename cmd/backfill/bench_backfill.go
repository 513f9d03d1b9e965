package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	neturl "net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/supabase"
)

// Embedded SQL of the backfill scenario; see the files for what each does.
var (
	//go:embed sql/bench_backfill_template.sql
	benchBackfillTemplateSQL string
	//go:embed sql/bench_backfill_define.sql
	benchBackfillDefineSQL string
	//go:embed sql/bench_backfill_progress.sql
	benchBackfillProgressSQL string
	//go:embed sql/bench_backfill_figures.sql
	benchBackfillFiguresSQL string
	//go:embed sql/bench_backfill_settings.sql
	benchBackfillSettingsSQL string
	//go:embed sql/bench_backfill_windows.sql
	benchBackfillWindowsSQL string
	//go:embed sql/bench_backfill_track.sql
	benchBackfillTrackSQL string
	//go:embed sql/bench_backfill_pickup.sql
	benchBackfillPickupSQL string
	//go:embed sql/bench_backfill_pickup_wait.sql
	benchBackfillPickupWaitSQL string
)

// The ways the benchmark's work can appear.
const (
	viaTracking    = "tracking"    // tracking rows, turned into definitions by the replicator
	viaDefinitions = "definitions" // the seed's definitions, inserted directly
)

// The original design's pace: one pg_cron tick a minute dispatching 5 runs.
const (
	originalTick        = time.Minute
	originalRunsPerTick = 5
)

// backfillBench is the `bench backfill` scenario's settings.
type backfillBench struct {
	pgBin       string
	latencies   []time.Duration
	concurrency []int
	tickers     int
	pickups     int
	writers     int
	via         string
	timeout     time.Duration
	fsync       bool
	logger      *slog.Logger
}

// backfillFigures are one measurement's results (bench_backfill_figures.sql).
type backfillFigures struct {
	latency     time.Duration
	concurrency int
	defs        int64
	origSlices  int64
	runs        int64
	failed      int64
	makespan    *float64 // seconds; nil when nothing succeeded
	bars        int64
	stored      int64
	writeS      float64
	firstMS     *float64
	busyMS      *float64
	defMS       []float64 // p50, p99
	runMS       []float64 // p50, p99
	idleMS      []float64 // idle pickup samples, sorted
	done        bool      // every window covered before the timeout
}

func benchBackfill(ctx context.Context, e *env, args []string) (err error) {
	var (
		b                   backfillBench
		latencies, concText string
		log                 logging
	)
	f := newFlags(e, "bench backfill", "[--latencies 0s,100ms] [--concurrency 5,32] [--tickers 20]",
		"The original test case: the seed's 20 tickers × m15/h1/h4 (60 definitions) from tracking\n"+
			"to every window covered, with the synthetic provider at each of --latencies and the\n"+
			"orchestrator at each of --concurrency. It starts a throw-away PostgreSQL\n"+
			"(track_commit_timestamp on), migrates and seeds a template database, and measures every\n"+
			"combination on a fresh copy of it: the replicator and the orchestrator start idle, the\n"+
			"tickers become tracked in one transaction (anonymous watchlist interest, as one\n"+
			"sync-user-symbols call), the replicator creates the definitions and wakes the orchestrator,\n"+
			"and the figures come from the database clock: makespan, bars and bars/s, runs, and pickup\n"+
			"latency. With --via definitions the seed's definitions appear directly instead, with the\n"+
			"replicator's notification (the orchestrator alone; `bench cdc` measures the replicator).\n"+
			"Beside them, the original design's arithmetic for the same work (60 s tick, 5 runs per\n"+
			"tick) and the issue's goals. It exits 1 when a combination does not finish within\n"+
			"--timeout or a run fails.")
	f.String(&latencies, "latencies", "BACKFILL_BENCH_LATENCIES", "0s,100ms", "simulated provider latencies per call, comma-separated")
	f.String(&concText, "concurrency", "BACKFILL_BENCH_CONCURRENCY", "5,32", "orchestrator concurrencies, comma-separated")
	f.Int(&b.tickers, "tickers", "BACKFILL_BENCH_TICKERS", 20, "how many of the seed's 20 tickers (alphabetical), 3 definitions each")
	f.Int(&b.pickups, "pickups", "BACKFILL_BENCH_PICKUPS", 20, "after each backfill, how many single new symbols to time from commit to claim, one at a time, into idle workers (0: none)")
	f.Int(&b.writers, "write-concurrency", "BACKFILL_WRITE_CONCURRENCY", 4, "how many runs write their bars at once")
	f.String(&b.via, "via", "BACKFILL_BENCH_VIA", viaTracking, "how the work appears: tracking (rows in user_symbol_tracking, through the replicator) or definitions (the seed's, directly)")
	f.Duration(&b.timeout, "timeout", "BACKFILL_BENCH_TIMEOUT", 2*time.Minute, "how long one combination may take to cover every window")
	f.Bool(&b.fsync, "fsync", "BACKFILL_BENCH_FSYNC", false, "run the throw-away PostgreSQL with fsync and full_page_writes on (synchronous_commit is always on)")
	f.String(&b.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "PostgreSQL server binaries for the throw-away database")
	log.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if b.latencies, err = parseLatencies(latencies); err != nil {
		return err
	}
	if b.concurrency, err = parseConcurrency(concText); err != nil {
		return err
	}
	if b.tickers < 1 || b.tickers > 20 || b.timeout <= 0 {
		return fmt.Errorf("%w: need 1 <= --tickers <= 20 and --timeout > 0", errUsage)
	}
	if b.pickups < 0 || b.pickups > 1000 {
		return fmt.Errorf("%w: --pickups must be between 0 and 1000", errUsage)
	}
	if b.writers < 1 {
		return fmt.Errorf("%w: --write-concurrency must be at least 1", errUsage)
	}
	if b.via != viaTracking && b.via != viaDefinitions {
		return fmt.Errorf("%w: --via %q: want tracking or definitions", errUsage, b.via)
	}
	if b.logger, err = log.logger(e.stderr); err != nil {
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
	url, stop, err := b.cluster(ctx)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, stop)
	admin, err := benchPool(ctx, url, "postgres", 2, "backfill-bench-backfill")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func(context.Context) error { admin.Close(); return nil })
	const template = "bench_backfill_template"
	cleanups = append(cleanups, func(ctx context.Context) error { return dropDatabase(ctx, admin, template) })
	if err := b.template(ctx, admin, url, template); err != nil {
		return err
	}
	if err := b.header(ctx, e.stdout, url, template); err != nil {
		return err
	}

	var all []backfillFigures
	var failures []string
	for _, lat := range b.latencies {
		for _, c := range b.concurrency {
			db := fmt.Sprintf("bench_backfill_%d", len(all)+1)
			fig, err := b.measure(ctx, admin, url, template, db, lat, c)
			if err != nil {
				return fmt.Errorf("latency %s, concurrency %d: %w", lat, c, err)
			}
			if !fig.done {
				failures = append(failures, fmt.Sprintf("latency %s, concurrency %d: windows not covered within %s", lat, c, b.timeout))
			}
			if fig.failed > 0 {
				failures = append(failures, fmt.Sprintf("latency %s, concurrency %d: %d runs failed", lat, c, fig.failed))
			}
			all = append(all, fig)
		}
	}
	if err := printBackfill(e.stdout, all); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nload average at the end: %s\n", loadAverage())
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// parseLatencies reads --latencies: durations >= 0 separated by commas.
func parseLatencies(s string) ([]time.Duration, error) {
	var out []time.Duration
	for part := range strings.SplitSeq(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 || d > time.Minute {
			return nil, fmt.Errorf("%w: --latencies %q: want durations between 0s and 1m, separated by commas", errUsage, s)
		}
		out = append(out, d)
	}
	return out, nil
}

// parseConcurrency reads --concurrency: whole numbers from 1 to 128 separated by commas.
func parseConcurrency(s string) ([]int, error) { return parseIntList("concurrency", s, 1, 128) }

// cluster starts the throw-away PostgreSQL.
func (b *backfillBench) cluster(ctx context.Context) (url string, stop func(context.Context) error, err error) {
	// Commit timestamps give every figure on the database clock, commit to commit.
	// synchronous_commit stays on, as in production: with it off a commit's WAL waits for the
	// WAL writer (up to 3 × wal_writer_delay) before the replicator can see it.
	settings := map[string]string{"track_commit_timestamp": "on", "synchronous_commit": "on"}
	if b.fsync {
		settings["fsync"] = "on"
		settings["full_page_writes"] = "on"
	}
	c, stop, err := throwawayCluster(ctx, b.pgBin, settings)
	if err != nil {
		return "", nil, err
	}
	return c.URL("postgres"), stop, nil
}

// template creates the migrated, seeded database every measurement copies, with the seed's
// definitions moved aside (bench_backfill_template.sql).
func (b *backfillBench) template(ctx context.Context, admin *pgxpool.Pool, url, name string) error {
	conn, err := createMigratedDB(ctx, admin, url, name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := supabase.ExecScript(ctx, conn, supabase.Seed()); err != nil {
		return fmt.Errorf("seed template database: %w", err)
	}
	if err := supabase.ExecScript(ctx, conn, benchBackfillTemplateSQL); err != nil {
		return fmt.Errorf("set the seed's definitions aside: %w", err)
	}
	return nil
}

// header prints what the figures depend on: the machine, the server, the work.
func (b *backfillBench) header(ctx context.Context, w io.Writer, url, template string) error {
	pool, err := benchPool(ctx, url, template, 1, "backfill-bench-backfill")
	if err != nil {
		return err
	}
	defer pool.Close()
	var version, fsync, syncCommit, sharedBuffers, maxConns, commitTS string
	if err := pool.QueryRow(ctx, benchBackfillSettingsSQL).Scan(&version, &fsync, &syncCommit, &sharedBuffers, &maxConns, &commitTS); err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	rows, err := pool.Query(ctx, benchBackfillWindowsSQL, b.tickers)
	if err != nil {
		return fmt.Errorf("read the seed's definitions: %w", err)
	}
	type tfRow struct {
		tf                     string
		defs, window, priority int
	}
	tfs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tfRow, error) {
		var t tfRow
		err := r.Scan(&t.tf, &t.defs, &t.window, &t.priority)
		return t, err
	})
	if err != nil {
		return fmt.Errorf("read the seed's definitions: %w", err)
	}
	synthetic, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{})
	if err != nil {
		return err
	}
	sizes := orchestrator.SliceSizesFor(synthetic.PageLimit())
	work := make([]string, 0, len(tfs))
	for _, t := range tfs {
		priority := t.priority
		if b.via == viaTracking {
			priority = 300 // watchlist
		}
		work = append(work, fmt.Sprintf("%s %d × %d d (priority %d, %s slices)", t.tf, t.defs, t.window, priority,
			days(sizes[market.Timeframe(t.tf)])))
	}
	event := "the seed's definitions committed"
	if b.via == viaTracking {
		event = "the tickers' tracking committed (watchlist) -> the replicator's definitions"
	}
	lat := make([]string, len(b.latencies))
	for i, l := range b.latencies {
		lat[i] = l.String()
	}
	conc := make([]string, len(b.concurrency))
	for i, c := range b.concurrency {
		conc[i] = strconv.Itoa(c)
	}
	fmt.Fprintf(w, "backfill: %s -> every window covered (synthetic provider)\n"+
		"%d CPUs, GOMAXPROCS %d, %s, load average %s\n"+
		"PostgreSQL %s, throw-away cluster on loopback: fsync=%s synchronous_commit=%s shared_buffers=%s max_connections=%s track_commit_timestamp=%s\n"+
		"work: %d tickers; %s\n"+
		"latencies %s; concurrency %s (writing at most %d at once); a fresh copy of one migrated, seeded database per combination; tick 60s (the safety net only)\n",
		event, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), loadAverage(),
		version, fsync, syncCommit, sharedBuffers, maxConns, commitTS,
		b.tickers, strings.Join(work, "; "), strings.Join(lat, ","), strings.Join(conc, ","), b.writers)
	return nil
}

// measure runs one combination on a fresh copy of the template and returns its figures.
func (b *backfillBench) measure(ctx context.Context, admin *pgxpool.Pool, url, template, db string, latency time.Duration, concurrency int) (fig backfillFigures, err error) {
	fig.latency, fig.concurrency = latency, concurrency
	if _, err := admin.Exec(ctx, fmt.Sprintf(benchCreateDBSQL, pgx.Identifier{db}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
		return fig, fmt.Errorf("create database %s: %w", db, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, dropDatabase(dctx, admin, db))
	}()
	// The orchestrator wants Concurrency + 2 connections; the rest is slack for heartbeats.
	pool, err := benchPool(ctx, url, db, concurrency+4, "backfill-bench-backfill")
	if err != nil {
		return fig, err
	}
	defer pool.Close()
	watch, err := benchPool(ctx, url, db, 1, "backfill-bench-backfill")
	if err != nil {
		return fig, err
	}
	defer watch.Close()

	if b.via == viaTracking {
		stopReplicator, err := b.replicator(ctx, watch, url, db)
		if err != nil {
			return fig, err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			err = errors.Join(err, stopReplicator(sctx))
		}()
	}
	provider, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Latency: latency, Logger: b.logger})
	if err != nil {
		return fig, err
	}
	reg := prometheus.NewRegistry()
	o, err := orchestrator.New(orchestrator.Config{
		Pool: pool, Provider: provider, Concurrency: concurrency, WriteConcurrency: b.writers, Registerer: reg,
		Logger: b.logger.With("component", "orchestrator"),
	})
	if err != nil {
		return fig, err
	}
	if err := o.Start(ctx); err != nil {
		return fig, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, o.Stop(sctx))
	}()
	// The orchestrator starts idle: its first planning pass (on start, nothing to plan) is over
	// before the definitions appear.
	if err := waitCounter(ctx, reg, "backfill_orchestrator_ticks_total", 1, 10*time.Second); err != nil {
		return fig, err
	}

	if b.via == viaTracking {
		var tracked int64
		if err := watch.QueryRow(ctx, benchBackfillTrackSQL, b.tickers).Scan(&tracked); err != nil {
			return fig, fmt.Errorf("track the tickers: %w", err)
		}
	} else {
		var defined int64
		var notified bool
		if err := watch.QueryRow(ctx, benchBackfillDefineSQL, b.tickers, replicator.NotifyChannel).Scan(&defined, &notified); err != nil {
			return fig, fmt.Errorf("insert the definitions: %w", err)
		}
	}
	if fig.done, err = b.wait(ctx, watch, int64(3*b.tickers)); err != nil {
		return fig, err
	}
	err = watch.QueryRow(ctx, benchBackfillFiguresSQL, concurrency).Scan(&fig.defs, &fig.origSlices, &fig.runs, &fig.failed,
		&fig.makespan, &fig.bars, &fig.stored, &fig.writeS, &fig.firstMS, &fig.busyMS, &fig.defMS, &fig.runMS)
	if err != nil {
		return fig, fmt.Errorf("compute the figures: %w", err)
	}
	if fig.done {
		if fig.idleMS, err = b.idlePickups(ctx, watch); err != nil {
			return fig, err
		}
	}
	return fig, nil
}

// idlePickups times --pickups new symbols one at a time, each from its commit to its first
// claim, while every worker is idle (the backfill is done): the pickup latency of the wake-up
// path itself, without queueing. It returns the samples in milliseconds, sorted.
func (b *backfillBench) idlePickups(ctx context.Context, pool *pgxpool.Pool) ([]float64, error) {
	out := make([]float64, 0, b.pickups)
	for i := range b.pickups {
		ticker := fmt.Sprintf("PICK%d", i)
		var n int64
		var notified *bool
		if err := pool.QueryRow(ctx, benchBackfillPickupSQL, ticker, b.via == viaTracking, replicator.NotifyChannel).Scan(&n, &notified); err != nil {
			return nil, fmt.Errorf("pickup %d: %w", i, err)
		}
		ms, err := b.waitClaimed(ctx, pool, ticker)
		if err != nil {
			return nil, fmt.Errorf("pickup %d: %w", i, err)
		}
		out = append(out, ms)
	}
	slices.Sort(out)
	return out, nil
}

// waitClaimed polls until ticker's first run is claimed and returns its pickup in ms.
func (b *backfillBench) waitClaimed(ctx context.Context, pool *pgxpool.Pool, ticker string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		var claimed bool
		var ms *float64
		if err := pool.QueryRow(ctx, benchBackfillPickupWaitSQL, ticker).Scan(&claimed, &ms); err != nil {
			return 0, fmt.Errorf("wait for the claim of %s: %w", ticker, err)
		}
		if claimed && ms != nil {
			return *ms, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s was not claimed: %w", ticker, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// replicator starts a replicator on database db with a slot of its own and waits until it
// streams; stop ends it and drops the slot (a database with a slot cannot be dropped).
func (b *backfillBench) replicator(ctx context.Context, pool *pgxpool.Pool, url, db string) (stop func(context.Context) error, err error) {
	dbURL, err := withDatabase(url, db)
	if err != nil {
		return nil, err
	}
	slot := db // slot names are cluster-wide; database names are unique too
	r, err := replicator.New(replicator.Config{
		DatabaseURL: dbURL,
		SlotName:    slot,
		Publication: replicator.DefaultPublication,
		Logger:      b.logger.With("component", "replicator"),
	})
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	stop = func(ctx context.Context) error { return errors.Join(r.Stop(ctx), dropSlot(ctx, pool, slot)) }
	if err := waitActive(ctx, r, 30*time.Second); err != nil {
		return nil, errors.Join(err, stop(context.WithoutCancel(ctx)))
	}
	return stop, nil
}

// withDatabase returns the URL with its database replaced.
func withDatabase(dbURL, db string) (string, error) {
	u, err := neturl.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

// wait polls until all want definitions exist with their windows covered and no run queued
// or running, a run failed, or --timeout passed. The figures come from commit timestamps, so
// the polling interval does not enter them.
func (b *backfillBench) wait(ctx context.Context, pool *pgxpool.Pool, want int64) (bool, error) {
	deadline := time.NewTimer(b.timeout)
	defer deadline.Stop()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		var defs, covered, runs, pending, failed int64
		if err := pool.QueryRow(ctx, benchBackfillProgressSQL).Scan(&defs, &covered, &runs, &pending, &failed); err != nil {
			return false, fmt.Errorf("read progress: %w", err)
		}
		if failed > 0 {
			return false, nil
		}
		if defs == want && covered == defs && runs > 0 && pending == 0 {
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

// waitCounter waits until the counter name in reg reaches at least want.
func waitCounter(ctx context.Context, reg *prometheus.Registry, name string, want float64, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		mfs, err := reg.Gather()
		if err != nil {
			return fmt.Errorf("gather metrics: %w", err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) > 0 && mf.GetMetric()[0].GetCounter().GetValue() >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s >= %v: %w", name, want, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// printBackfill prints the measurements, the original design's arithmetic and the goals.
func printBackfill(w io.Writer, all []backfillFigures) error {
	fmt.Fprintf(w, "\nBackfill: makespan = the definitions' transaction -> the last run's commit;\n"+
		"bars/s = bars / makespan; writer bars/s = bars / the time at least one write was in progress\n"+
		"(the one statement writing bars, coverage and success, start to commit; overlapping writes count once); bound = ceil(runs / conc) × latency,\n"+
		"the least any design needs for these runs at this concurrency; original = runs / 5 per 60 s tick\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency\tconc\tdefs\truns\tfailed\tmakespan\tbound\tbars\tbars/s\twriter bars/s\toriginal\tspeed-up\t")
	for _, f := range all {
		orig := originalTime(f.runs)
		waves := (f.runs + int64(f.concurrency) - 1) / int64(f.concurrency)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.3fs\t%d\t%s\t%s\t%s\t%s\t\n", f.latency, f.concurrency, f.defs, f.runs, f.failed,
			secondsText(f.makespan, f.done), (time.Duration(waves) * f.latency).Seconds(), f.bars, rateOf(f.bars, f.makespan), rateOf(f.bars, nonZero(f.writeS)),
			humanDuration(orig), speedUp(orig, f.makespan, f.done))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range all {
		if f.stored != f.bars {
			fmt.Fprintf(w, "warning: latency %s, concurrency %d: %d bars written but %d stored\n", f.latency, f.concurrency, f.bars, f.stored)
		}
	}

	fmt.Fprintf(w, "\nPickup (database clock): first = definitions' transaction -> the first claim; all busy = -> the conc-th\n"+
		"claim (every worker busy); per definition = -> its first claim, p50/p99 (includes waiting for a free\n"+
		"worker: higher-priority runs go first); per run = queued (created_at) -> claimed (started_at)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency\tconc\tfirst\tall busy\tdef p50\tdef p99\trun p50\trun p99\t")
	for _, f := range all {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.latency, f.concurrency, msText(f.firstMS), msText(f.busyMS),
			pctText(f.defMS, 0), pctText(f.defMS, 1), pctText(f.runMS, 0), pctText(f.runMS, 1))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nIdle pickup (database clock): after each backfill, new symbols one at a time into idle workers,\n"+
		"commit -> first claim (through the replicator unless --via definitions)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency\tconc\tsamples\tp50\tp99\tmax\t")
	for _, f := range all {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t\n", f.latency, f.concurrency, len(f.idleMS),
			msText(quantile(f.idleMS, 0.5)), msText(quantile(f.idleMS, 0.99)), msText(quantile(f.idleMS, 1)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(all) == 0 {
		return nil
	}
	best := all[0]
	for _, f := range all[1:] {
		if f.makespan != nil && (best.makespan == nil || *f.makespan < *best.makespan) {
			best = f
		}
	}
	fmt.Fprintf(w, "\nThe original design's arithmetic for the same %d definitions (pg_cron tick every 60 s, 5 runs per tick);\n"+
		"ours = the best makespan above (latency %s, concurrency %d)\n", best.defs, best.latency, best.concurrency)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "counting\truns\tticks\ttime\tours\tspeed-up\t")
	for _, row := range []struct {
		what string
		runs int64
	}{
		{"one run per definition (its docs: 60 jobs, 12 min)", best.defs},
		{"our slices (one provider page each)", best.runs},
		{"its own 2 h intraday slices", best.origSlices},
	} {
		orig := originalTime(row.runs)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t\n", row.what, row.runs, ticks(row.runs), humanDuration(orig),
			secondsText(best.makespan, best.done), speedUp(orig, best.makespan, best.done))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printGoals(w, all)
}

// printGoals sets the goals beside the matching figures.
func printGoals(w io.Writer, all []backfillFigures) error {
	find := func(lat time.Duration, conc int) *backfillFigures {
		for i := range all {
			if all[i].latency == lat && all[i].concurrency == conc {
				return &all[i]
			}
		}
		return nil
	}
	fmt.Fprintln(w, "\nGoals (issue 5; performance-anchors G4, G7, G10)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\ttarget\tmeasured\tmet\t")
	for _, g := range []struct {
		what    string
		target  float64
		unit    string
		atLeast bool
		lat     time.Duration
		conc    int
		value   func(*backfillFigures) *float64
	}{
		{"makespan, 100ms latency, concurrency 32", 1, "s", false, 100 * time.Millisecond, 32, func(f *backfillFigures) *float64 { return doneOr(f, f.makespan) }},
		{"makespan, 0s latency, concurrency 32 (G7)", 0.3, "s", false, 0, 32, func(f *backfillFigures) *float64 { return doneOr(f, f.makespan) }},
		{"pickup, commit -> first claim, 100ms/32", 50, "ms", false, 100 * time.Millisecond, 32, func(f *backfillFigures) *float64 { return f.firstMS }},
		{"pickup, commit -> all 32 workers busy, 100ms/32", 50, "ms", false, 100 * time.Millisecond, 32, func(f *backfillFigures) *float64 { return f.busyMS }},
		{"idle pickup p50, commit -> claim, 100ms/32 (G4)", 10, "ms", false, 100 * time.Millisecond, 32, func(f *backfillFigures) *float64 { return quantile(f.idleMS, 0.5) }},
		{"idle pickup p99, commit -> claim, 100ms/32 (G4)", 50, "ms", false, 100 * time.Millisecond, 32, func(f *backfillFigures) *float64 { return quantile(f.idleMS, 0.99) }},
		{"pickup p99 per definition, 100ms/32 (queueing incl.)", 50, "ms", false, 100 * time.Millisecond, 32, func(f *backfillFigures) *float64 { return pct(f.defMS, 1) }},
		{"pickup p99 per definition, 0s/32 (queueing incl.)", 50, "ms", false, 0, 32, func(f *backfillFigures) *float64 { return pct(f.defMS, 1) }},
		{"bar writes, overall bars/s, 0s/5", 50000, "/s", true, 0, 5, func(f *backfillFigures) *float64 { return rate(f.bars, f.makespan) }},
		{"bar writes, writer bars/s, 0s/5", 50000, "/s", true, 0, 5, func(f *backfillFigures) *float64 { return rate(f.bars, nonZero(f.writeS)) }},
		{"bar writes, overall bars/s, 0s/32", 50000, "/s", true, 0, 32, func(f *backfillFigures) *float64 { return rate(f.bars, f.makespan) }},
		{"bar writes, writer bars/s, 0s/32", 50000, "/s", true, 0, 32, func(f *backfillFigures) *float64 { return rate(f.bars, nonZero(f.writeS)) }},
	} {
		target := fmt.Sprintf("<= %g%s", g.target, g.unit)
		if g.atLeast {
			target = fmt.Sprintf(">= %g%s", g.target, g.unit)
		}
		measured, met := "not measured", "-"
		if f := find(g.lat, g.conc); f != nil {
			if v := g.value(f); v != nil {
				measured = fmt.Sprintf("%.3f%s", *v, g.unit)
				if g.unit == "/s" {
					measured = fmt.Sprintf("%.0f%s", *v, g.unit)
				}
				met = "no"
				if (g.atLeast && *v >= g.target) || (!g.atLeast && *v <= g.target) {
					met = "yes"
				}
			} else {
				measured = "unfinished"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", g.what, target, measured, met)
	}
	return tw.Flush()
}

func doneOr(f *backfillFigures, v *float64) *float64 {
	if !f.done {
		return nil
	}
	return v
}

// quantile is the q-quantile (nearest rank) of sorted samples; nil when there are none.
func quantile(sorted []float64, q float64) *float64 {
	if len(sorted) == 0 {
		return nil
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	v := sorted[min(max(i, 0), len(sorted)-1)]
	return &v
}

func pct(p []float64, i int) *float64 {
	if i >= len(p) {
		return nil
	}
	return &p[i]
}

func nonZero(v float64) *float64 {
	if v <= 0 {
		return nil
	}
	return &v
}

func rate(n int64, seconds *float64) *float64 {
	if seconds == nil || *seconds <= 0 {
		return nil
	}
	r := float64(n) / *seconds
	return &r
}

func rateOf(n int64, seconds *float64) string {
	r := rate(n, seconds)
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", *r)
}

func secondsText(s *float64, done bool) string {
	switch {
	case s == nil:
		return "-"
	case !done:
		return "unfinished"
	}
	return fmt.Sprintf("%.3fs", *s)
}

func msText(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fms", *v)
}

// ticks is how many of the original's ticks runs need at 5 per tick.
func ticks(runs int64) int64 {
	return (runs + originalRunsPerTick - 1) / originalRunsPerTick
}

// originalTime is how long the original's ticks take to dispatch runs: the last tick that
// dispatches one, counting the first at 60 s (a new job waited 0–60 s, here the whole tick).
func originalTime(runs int64) time.Duration {
	return time.Duration(ticks(runs)) * originalTick
}

func speedUp(orig time.Duration, makespan *float64, done bool) string {
	if makespan == nil || !done || *makespan <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f×", orig.Seconds() / *makespan)
}

// humanDuration prints minutes, hours or days, whichever reads best.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f d", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.0f min", d.Minutes())
}

func days(d time.Duration) string { return fmt.Sprintf("%.0f d", d.Hours()/24) }

// loadAverage is the machine's 1, 5 and 15 minute load, to tell a disturbed run; "-" when
// unknown (not Linux).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "-"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "-"
	}
	return strings.Join(f[:3], " ")
}

// dropDatabase removes a database of the benchmark, ending its sessions.
func dropDatabase(ctx context.Context, admin *pgxpool.Pool, name string) error {
	if _, err := admin.Exec(ctx, fmt.Sprintf(benchDropDBSQL, pgx.Identifier{name}.Sanitize())); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}
