package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/supabase"
)

// Embedded SQL of the cdc scenario; see the files for what each does.
var (
	//go:embed sql/bench_insert.sql
	benchInsertSQL string
	//go:embed sql/bench_latency.sql
	benchLatencySQL string
	//go:embed sql/bench_applied.sql
	benchAppliedSQL string
	//go:embed sql/bench_settings.sql
	benchSettingsSQL string
	//go:embed sql/bench_drop_slot.sql
	benchDropSlotSQL string
	//go:embed sql/bench_forget_symbols.sql
	benchForgetSymbolsSQL string
	//go:embed sql/bench_create_db.sql
	benchCreateDBSQL string
	//go:embed sql/bench_drop_db.sql
	benchDropDBSQL string
	//go:embed sql/bench_trigger.sql
	benchTriggerSQL string
)

// cdcBench is the `bench cdc` scenario: its settings and the names of this run.
type cdcBench struct {
	dbURL       string
	pgBin       string
	rates       []int
	duration    time.Duration
	writers     int
	maxDuration time.Duration
	maxWriters  int
	wait        time.Duration
	fsync       bool

	// run makes this run's names unique: tickers start with run, the slot and the scratch
	// databases are named after it.
	run string
}

// codeObjectInUse is PostgreSQL's object_in_use: a walsender still holds the slot.
const codeObjectInUse = "55006"

func benchCDC(ctx context.Context, e *env, args []string) (err error) {
	var (
		b     cdcBench
		rates string
		log   logging
	)
	f := newFlags(e, "bench cdc", "[--rates 100,1000] [--duration 10s] [--max-duration 10s] [--database-url URL]",
		"Measure how soon the replicator turns a tracking row into its job definitions, and what the\n"+
			"original design's trigger cost the user's transaction. Without --database-url it starts a\n"+
			"throw-away PostgreSQL (synchronous_commit and track_commit_timestamp on; fsync as --fsync says)\n"+
			"and migrates it. Every row written is a new symbol and an anonymous watchlist row for it, in\n"+
			"one transaction, so that row is what creates the symbol's m15/h1/h4 definitions.\n\n"+
			"  1. Latency at each of --rates for --duration: job_definitions.created_at minus\n"+
			"     user_symbol_tracking.created_at (both transaction starts, one database clock) and, with\n"+
			"     track_commit_timestamp on, commit to commit.\n"+
			"  2. Sustained: --max-writers insert as fast as they go for --max-duration: rows/s written and\n"+
			"     applied, the replicator's backlog and lag when the writers stop, time to catch up.\n"+
			"  3. The original AFTER INSERT trigger on a scratch database beside one without it: the\n"+
			"     client-side latency of the user's transaction at the first rate, for --duration.\n\n"+
			"It exits 1 when a row's definitions are still missing --wait after its step. With\n"+
			"--database-url, give a migrated database that nothing else writes to; the role must be able\n"+
			"to replicate and to create databases. What the run writes there is deleted at the end.")
	f.String(&b.dbURL, "database-url", "BACKFILL_BENCH_DATABASE_URL", "", "measure an existing migrated database instead of a throw-away one")
	f.String(&rates, "rates", "BACKFILL_BENCH_RATES", "100,1000", "tracking rows per second of the latency steps, comma-separated")
	f.Duration(&b.duration, "duration", "BACKFILL_BENCH_DURATION", 10*time.Second, "how long each latency step and the trigger comparison write")
	f.Int(&b.writers, "writers", "BACKFILL_BENCH_WRITERS", 4, "connections writing in the latency steps and on each scratch database")
	f.Duration(&b.maxDuration, "max-duration", "BACKFILL_BENCH_MAX_DURATION", 10*time.Second, "how long the sustained step writes (0: skip it)")
	f.Int(&b.maxWriters, "max-writers", "BACKFILL_BENCH_MAX_WRITERS", 8, "connections writing as fast as they go in the sustained step")
	f.Duration(&b.wait, "wait", "BACKFILL_BENCH_WAIT", time.Minute, "how long the replicator may take to apply a step's rows before they count as missing")
	f.Bool(&b.fsync, "fsync", "BACKFILL_BENCH_FSYNC", false, "run the throw-away PostgreSQL with fsync and full_page_writes on, so the figures include the disk")
	f.String(&b.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "PostgreSQL server binaries for the throw-away database")
	log.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if b.rates, err = parseRates(rates); err != nil {
		return err
	}
	if b.duration <= 0 || b.maxDuration < 0 || b.wait <= 0 || b.writers < 1 || b.writers > 64 ||
		b.maxWriters < 1 || b.maxWriters > 64 {
		return fmt.Errorf("%w: need --duration > 0, --max-duration >= 0, --wait > 0, 1 <= --writers <= 64, 1 <= --max-writers <= 64", errUsage)
	}
	logger, err := log.logger(e.stderr)
	if err != nil {
		return err
	}
	b.run = newRunID()

	// Everything started is undone in reverse, also on an error or Ctrl-C: a forgotten slot
	// would pin WAL on the server for good.
	var cleanups []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, c := range slices.Backward(cleanups) {
			err = errors.Join(err, c(cctx))
		}
	}()

	dbURL, where := b.dbURL, "the database given"
	if dbURL == "" {
		url, stop, err := b.embedded(ctx)
		if err != nil {
			return err
		}
		cleanups = append(cleanups, stop)
		dbURL, where = url, "a throw-away cluster"
	}
	pool, err := benchPool(ctx, dbURL, "", max(b.writers, b.maxWriters)+2, "backfill-bench-cdc")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func(context.Context) error { pool.Close(); return nil })
	if b.dbURL != "" {
		cleanups = append(cleanups, func(ctx context.Context) error {
			if _, err := pool.Exec(ctx, benchForgetSymbolsSQL, b.run+"-"); err != nil {
				return fmt.Errorf("delete the benchmark's symbols: %w", err)
			}
			return nil
		})
	}
	if err := b.header(ctx, e, pool, where); err != nil {
		return err
	}

	slot := strings.ReplaceAll("bench_"+b.run, "-", "_")
	r, err := replicator.New(replicator.Config{
		DatabaseURL: dbURL,
		SlotName:    slot,
		Publication: replicator.DefaultPublication,
		Logger:      logger.With("component", "replicator"),
	})
	if err != nil {
		return err
	}
	// Start's context is the replicator's lifetime: Ctrl-C ends it too.
	if err := r.Start(ctx); err != nil {
		return err
	}
	cleanups = append(cleanups, func(ctx context.Context) error {
		return errors.Join(r.Stop(ctx), dropSlot(ctx, pool, slot))
	})
	if err := waitActive(ctx, r, b.wait); err != nil {
		return err
	}

	// The scratch databases are made before measuring anything, so a role that may not create
	// databases fails the run at once.
	nonePool, trigPool, dropScratch, err := b.scratch(ctx, pool, dbURL)
	cleanups = append(cleanups, dropScratch)
	if err != nil {
		return err
	}

	missing, first, err := b.latencySteps(ctx, e, pool, r)
	if err != nil {
		return err
	}
	if b.maxDuration > 0 {
		m, err := b.sustained(ctx, e, pool, r)
		if err != nil {
			return err
		}
		missing += m
	}
	if err := b.triggerStep(ctx, e, nonePool, trigPool, first); err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d tracking rows still had no job definitions %s after their step", missing, b.wait)
	}
	return nil
}

// parseRates reads --rates: rows per second from 1 to 100000, separated by commas.
func parseRates(s string) ([]int, error) { return parseIntList("rates", s, 1, 100_000) }

// newRunID returns a short random name part: lowercase letters and digits, so it fits tickers,
// slot names and database names alike.
func newRunID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	id := make([]byte, 6)
	for i := range id {
		id[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return "cdc-" + string(id)
}

// embedded starts a throw-away cluster in a temporary folder and migrates its postgres database.
func (b *cdcBench) embedded(ctx context.Context) (url string, stop func(context.Context) error, err error) {
	settings := map[string]string{
		// The walsender sends only flushed WAL. With synchronous_commit off (the throw-away
		// default) a commit would reach it only when the WAL writer flushes, up to
		// wal_writer_delay (200ms) later: the figures would measure that timer.
		"synchronous_commit": "on",
		// Commit to commit latency (pg_xact_commit_timestamp).
		"track_commit_timestamp": "on",
	}
	if b.fsync {
		settings["fsync"] = "on"
		settings["full_page_writes"] = "on"
	}
	cluster, stop, err := throwawayCluster(ctx, b.pgBin, settings)
	if err != nil {
		return "", nil, err
	}
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err == nil {
		err = prepareDatabase(ctx, cluster.URL("postgres"), migrator, false)
	}
	if err != nil {
		return "", nil, errors.Join(err, stop(context.WithoutCancel(ctx)))
	}
	return cluster.URL("postgres"), stop, nil
}

// header prints what the figures depend on: the machine, the server and its settings, the steps.
func (b *cdcBench) header(ctx context.Context, e *env, pool *pgxpool.Pool, where string) error {
	var version, fsync, syncCommit, commitTS, walLevel string
	if err := pool.QueryRow(ctx, benchSettingsSQL).Scan(&version, &fsync, &syncCommit, &commitTS, &walLevel); err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	rates := make([]string, len(b.rates))
	for i, r := range b.rates {
		rates[i] = strconv.Itoa(r)
	}
	c := pool.Config().ConnConfig
	fmt.Fprintf(e.stdout, "tracking row -> job definitions: replicator (logical replication) vs the original trigger\n"+
		"%d CPUs, %s, PostgreSQL %s on %s (%s:%d/%s)\n"+
		"server: fsync=%s synchronous_commit=%s track_commit_timestamp=%s wal_level=%s\n"+
		"steps: rates %s/s for %s with %d writers; sustained %s with %d writers; wait up to %s; run %s\n"+
		"one row = a new symbol + its anonymous watchlist tracking row (m15, h1, h4), one transaction\n",
		runtime.NumCPU(), runtime.Version(), version, where, c.Host, c.Port, c.Database,
		fsync, syncCommit, commitTS, walLevel,
		strings.Join(rates, ","), b.duration, b.writers, b.maxDuration, b.maxWriters, b.wait, b.run)
	return nil
}

// waitActive waits until the replicator streams from its slot (after its first reconcile).
func waitActive(ctx context.Context, r *replicator.Replicator, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := r.Status(ctx)
		if err == nil && st.Active {
			return nil
		}
		select {
		case <-r.Done():
			return errors.New("the replicator stopped before it streamed (its log is on stderr)")
		case <-ctx.Done():
			return fmt.Errorf("the replicator was not streaming after %s: %w", limit, errors.Join(err, context.Cause(ctx)))
		case <-t.C:
		}
	}
}

// dropSlot removes the benchmark's slot once its replicator has stopped, waiting for the
// walsender to let go of it.
func dropSlot(ctx context.Context, pool *pgxpool.Pool, slot string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		_, err := pool.Exec(ctx, benchDropSlotSQL, slot)
		var pgErr *pgconn.PgError
		if err == nil {
			return nil
		} else if !errors.As(err, &pgErr) || pgErr.Code != codeObjectInUse {
			return fmt.Errorf("drop replication slot %q: %w", slot, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop replication slot %q: %w", slot, errors.Join(err, context.Cause(ctx)))
		case <-t.C:
		}
	}
}

// scratch creates the two scratch databases of the trigger comparison beside the main one: one
// migrated, without trigger, and a copy of it with the original trigger installed. drop removes
// both (and is safe to call whatever happened).
func (b *cdcBench) scratch(ctx context.Context, admin *pgxpool.Pool, dbURL string) (nonePool, trigPool *pgxpool.Pool, drop func(context.Context) error, err error) {
	base := strings.ReplaceAll("bench_"+b.run, "-", "_")
	none, trig := base+"_none", base+"_trigger"
	var pools []*pgxpool.Pool
	drop = func(ctx context.Context) error {
		for _, p := range pools {
			p.Close()
		}
		var errs []error
		for _, db := range []string{trig, none} {
			if _, err := admin.Exec(ctx, fmt.Sprintf(benchDropDBSQL, pgx.Identifier{db}.Sanitize())); err != nil {
				errs = append(errs, fmt.Errorf("drop scratch database %s: %w", db, err))
			}
		}
		return errors.Join(errs...)
	}
	create := func(db, template string) error {
		if _, err := admin.Exec(ctx, fmt.Sprintf(benchCreateDBSQL, pgx.Identifier{db}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
			return fmt.Errorf("create scratch database %s: %w", db, err)
		}
		return nil
	}
	// script connects to db and runs a script (the migrations, or the trigger).
	script := func(db string, run func(*pgx.Conn) error) error {
		cfg, err := pgx.ParseConfig(dbURL)
		if err != nil {
			return fmt.Errorf("%w: --database-url: %w", errUsage, err)
		}
		cfg.Database = db
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("connect to scratch database %s: %w", db, err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return run(conn)
	}
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err != nil {
		return nil, nil, drop, err
	}
	if err := create(none, "template0"); err != nil {
		return nil, nil, drop, err
	}
	if err := script(none, func(conn *pgx.Conn) error {
		if _, err := migrator.Migrate(ctx, conn); err != nil {
			return fmt.Errorf("migrate scratch database %s: %w", none, err)
		}
		return nil
	}); err != nil {
		return nil, nil, drop, err
	}
	// A copy of a database nobody is connected to, so both start from the same files.
	if err := create(trig, none); err != nil {
		return nil, nil, drop, err
	}
	if err := script(trig, func(conn *pgx.Conn) error {
		if err := supabase.ExecScript(ctx, conn, benchTriggerSQL); err != nil {
			return fmt.Errorf("install the original trigger on %s: %w", trig, err)
		}
		return nil
	}); err != nil {
		return nil, nil, drop, err
	}
	for _, db := range []string{none, trig} {
		p, err := benchPool(ctx, dbURL, db, b.writers+1, "backfill-bench-cdc")
		if err != nil {
			return nil, nil, drop, err
		}
		pools = append(pools, p)
	}
	return pools[0], pools[1], drop, nil
}

// latencySteps runs step 1 at every rate and prints its table. It returns the rows left
// without definitions and the client-side latencies of the first rate's writers.
func (b *cdcBench) latencySteps(ctx context.Context, e *env, pool *pgxpool.Pool, r *replicator.Replicator) (missing int64, first *loadResult, err error) {
	fmt.Fprintf(e.stdout, "\nLatency, tracking row -> its 3 job definitions, at a fixed rate for %s with %d writers.\n"+
		"p50..max: definitions' transaction start - tracking row's transaction start (created_at, one DB clock);\n"+
		"commit p50..max: commit to commit (track_commit_timestamp; - when off)\n", b.duration, b.writers)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rate\trows\tachieved/s\tp50\tp90\tp99\tmax\tcommit p50\tcommit p99\tcommit max\tmissing\t")
	for i, rate := range b.rates {
		step := fmt.Sprintf("r%d", rate)
		res, err := b.write(ctx, pool, b.writers, rate, b.duration, step)
		if err != nil {
			return 0, nil, err
		}
		if i == 0 {
			first = res
		}
		if _, err := b.drain(ctx, pool, r, step); err != nil {
			return 0, nil, err
		}
		fig, err := b.figures(ctx, pool, step)
		if err != nil {
			return 0, nil, err
		}
		missing += fig.missing
		fmt.Fprintf(tw, "%d/s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", rate, fig.rows, float64(res.n)/res.elapsed.Seconds(),
			pctText(fig.start, 0), pctText(fig.start, 1), pctText(fig.start, 2), pctText(fig.start, 3),
			pctText(fig.commit, 0), pctText(fig.commit, 2), pctText(fig.commit, 3), fig.missing)
	}
	return missing, first, tw.Flush()
}

// sustained runs step 2 and prints its table. It returns the rows left without definitions.
func (b *cdcBench) sustained(ctx context.Context, e *env, pool *pgxpool.Pool, r *replicator.Replicator) (missing int64, err error) {
	const step = "max"
	res, err := b.write(ctx, pool, b.maxWriters, 0, b.maxDuration, step)
	if err != nil {
		return 0, err
	}
	stoppedAt := time.Now()
	// How far behind the replicator is the moment the writers stop.
	st, err := r.Status(ctx)
	if err != nil {
		return 0, err
	}
	var rows, applied int64
	if err := pool.QueryRow(ctx, benchAppliedSQL, b.prefix(step)).Scan(&rows, &applied); err != nil {
		return 0, fmt.Errorf("count applied rows: %w", err)
	}
	caughtUp, err := b.drain(ctx, pool, r, step)
	if err != nil {
		return 0, err
	}
	fig, err := b.figures(ctx, pool, step)
	if err != nil {
		return 0, err
	}
	catchUp, catchUpRate := "not within "+b.wait.String(), "-"
	if !caughtUp.IsZero() {
		took := caughtUp.Sub(stoppedAt)
		catchUp, catchUpRate = ms(took), fmt.Sprintf("%.1f", float64(rows-applied)/took.Seconds())
	}
	fmt.Fprintf(e.stdout, "\nSustained: %d writers insert as fast as they go for %s. applied/s: rows with all 3 definitions when\n"+
		"the writers stopped; behind and lag (slot WAL not confirmed): at that moment; caught up in: until the last row\n"+
		"was applied, at catch-up/s with the writers gone; p50..: latency as above, over all rows\n",
		b.maxWriters, b.maxDuration)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writers\trows\twritten/s\tapplied/s\tbehind\tlag\tcaught up in\tcatch-up/s\tp50\tp99\tmax\tcommit p99\tmissing\t")
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", b.maxWriters, fig.rows,
		float64(res.n)/res.elapsed.Seconds(), float64(applied)/res.elapsed.Seconds(), rows-applied, bytesText(st.LagBytes),
		catchUp, catchUpRate, pctText(fig.start, 0), pctText(fig.start, 2), pctText(fig.start, 3), pctText(fig.commit, 2), fig.missing)
	return fig.missing, tw.Flush()
}

// triggerStep runs step 3: the same writers at the first rate on both scratch databases at once
// (so both see the same machine), and prints the user's transaction latency beside the one
// measured on the main database in the first latency step.
func (b *cdcBench) triggerStep(ctx context.Context, e *env, nonePool, trigPool *pgxpool.Pool, ours *loadResult) error {
	rate := b.rates[0]
	var (
		wg                 sync.WaitGroup
		noneRes, trigRes   *loadResult
		noneErr, trigErr   error
		noneStep, trigStep = "none", "trigger"
	)
	wg.Go(func() { noneRes, noneErr = b.write(ctx, nonePool, b.writers, rate, b.duration, noneStep) })
	wg.Go(func() { trigRes, trigErr = b.write(ctx, trigPool, b.writers, rate, b.duration, trigStep) })
	wg.Wait()
	if err := errors.Join(noneErr, trigErr); err != nil {
		return err
	}
	// The trigger must have done its work in the user's transaction, or the comparison is void.
	fig, err := b.figures(ctx, trigPool, trigStep)
	if err != nil {
		return err
	}
	if fig.missing > 0 || fig.rows == 0 {
		return fmt.Errorf("the original trigger left %d of %d rows without their definitions", fig.missing, fig.rows)
	}
	fmt.Fprintf(e.stdout, "\nThe user's transaction (new symbol + tracking row, commit), client side, %d/s for %s with %d writers;\n"+
		"none and trigger ran at the same time on two scratch copies of the schema\n", rate, b.duration, b.writers)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "design\tdatabase\trows\tachieved/s\tp50\tp90\tp99\tmax\t")
	for _, row := range []struct {
		design, where string
		res           *loadResult
	}{
		{"none", "scratch, no trigger", noneRes},
		{"trigger", "scratch, original trigger", trigRes},
		{"replicator", fmt.Sprintf("main, slot streaming (%d/s step)", rate), ours},
	} {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t\n", row.design, row.where, row.res.n, float64(row.res.n)/row.res.elapsed.Seconds(),
			ms(row.res.pct(0.50)), ms(row.res.pct(0.90)), ms(row.res.pct(0.99)), ms(row.res.pct(1)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "the trigger adds %s at p50 and %s at p99 to the user's transaction\n",
		signedMS(trigRes.pct(0.50)-noneRes.pct(0.50)), signedMS(trigRes.pct(0.99)-noneRes.pct(0.99)))
	return nil
}

// prefix is the ticker prefix of a step's rows.
func (b *cdcBench) prefix(step string) string { return b.run + "-" + step + "-" }

// write has writers connections of pool insert rows (bench_insert.sql) named after step, at rate
// rows/s across all of them (0: as fast as they go), for d, and returns the client-side latency
// of every transaction.
func (b *cdcBench) write(ctx context.Context, pool *pgxpool.Pool, writers, rate int, d time.Duration, step string) (*loadResult, error) {
	conns := make([]*pgxpool.Conn, 0, writers)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for i := range writers {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("acquire a writer connection: %w", err)
		}
		conns = append(conns, c)
		// Outside the measurement: the first use of the statement on a connection prepares it.
		// Warm-up rows are named apart from the step's, so no figure counts them.
		if _, err := c.Exec(ctx, benchInsertSQL, fmt.Sprintf("%s-warm-%s-%d", b.run, step, i)); err != nil {
			return nil, fmt.Errorf("insert a tracking row: %w", err)
		}
	}

	lctx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var permits chan struct{}
	paced := make(chan struct{})
	if rate > 0 {
		permits = make(chan struct{}, writers)
		go func() {
			defer close(paced)
			pace(lctx, rate, permits)
		}()
	} else {
		close(paced)
	}
	var (
		seq      atomic.Int64
		mu       sync.Mutex
		res      = &loadResult{}
		firstErr error
		wg       sync.WaitGroup
	)
	prefix := b.prefix(step)
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			var lat []time.Duration
			for lctx.Err() == nil {
				if permits != nil {
					select {
					case <-permits:
					case <-lctx.Done():
						continue
					}
				}
				ticker := fmt.Sprintf("%s%06d", prefix, seq.Add(1))
				began := time.Now()
				// ctx, not lctx: a transaction under way when the time is up completes and counts.
				if _, err := c.Exec(ctx, benchInsertSQL, ticker); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("insert tracking row %s: %w", ticker, err)
					}
					mu.Unlock()
					stop()
					break
				}
				lat = append(lat, time.Since(began))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	stop()
	<-paced
	if firstErr != nil {
		return nil, firstErr
	}
	res.n = len(res.latencies)
	slices.Sort(res.latencies)
	return res, nil
}

// pace hands out rate permits per second until ctx ends, on a fixed schedule: a late permit goes
// out at once, so the average rate holds, and one that finds every writer busy and the queue
// full is dropped (the writers are behind; the achieved rate shows it).
func pace(ctx context.Context, rate int, permits chan<- struct{}) {
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case permits <- struct{}{}:
		default:
		}
		next = next.Add(interval)
		t.Reset(max(time.Until(next), 0))
	}
}

// drain writes an end marker after a step and waits, at most --wait, until the replicator has
// applied it: the marker commits after every row of the step and the replicator applies in
// commit order, so then every row is applied. It returns when that was, zero if not in time.
func (b *cdcBench) drain(ctx context.Context, pool *pgxpool.Pool, r *replicator.Replicator, step string) (time.Time, error) {
	var text string
	if err := pool.QueryRow(ctx, benchInsertSQL, b.run+"-end-"+step).Scan(&text); err != nil {
		return time.Time{}, fmt.Errorf("insert the end marker of step %s: %w", step, err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse LSN %q: %w", text, err)
	}
	wctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := r.WaitApplied(wctx, lsn); err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return time.Time{}, nil // the figures count what is missing
		}
		return time.Time{}, err
	}
	return time.Now(), nil
}

// stepFigures are what the database says about a step's rows (bench_latency.sql).
type stepFigures struct {
	rows, missing int64
	// start and commit are p50, p90, p99 and max in milliseconds; nil when unknown.
	start, commit []float64
}

func (b *cdcBench) figures(ctx context.Context, pool *pgxpool.Pool, step string) (stepFigures, error) {
	var f stepFigures
	if err := pool.QueryRow(ctx, benchLatencySQL, b.prefix(step)).Scan(&f.rows, &f.missing, &f.start, &f.commit); err != nil {
		return f, fmt.Errorf("compute the figures of step %s: %w", step, err)
	}
	return f, nil
}

func pctText(p []float64, i int) string {
	if i >= len(p) {
		return "-"
	}
	return fmt.Sprintf("%.2fms", p[i])
}

func signedMS(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "-" + ms(-d)
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fkB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
