package main

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbolsync/backfill/completeness"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/supabase"
)

// Embedded SQL of the completeness scenario; see the files for what each does.
var (
	//go:embed sql/bench_completeness_define.sql
	benchCompletenessDefineSQL string
	//go:embed sql/bench_completeness_bars.sql
	benchCompletenessBarsSQL string
	//go:embed sql/bench_completeness_symbols.sql
	benchCompletenessSymbolsSQL string
	//go:embed sql/bench_completeness_stats.sql
	benchCompletenessStatsSQL string
	//go:embed sql/bench_completeness_pids.sql
	benchCompletenessPidsSQL string
	//go:embed sql/bench_completeness_delete.sql
	benchCompletenessDeleteSQL string
	//go:embed sql/bench_completeness_size.sql
	benchCompletenessSizeSQL string
)

// completenessBench is the `bench completeness` scenario's settings.
type completenessBench struct {
	pgBin      string
	symbols    int
	timeframes []market.Timeframe
	passes     int
	holes      int
	batch      int
	interval   time.Duration
	sweep      time.Duration
}

// costs are what one measured step took.
type costs struct {
	step    string
	wall    time.Duration
	dbExec  time.Duration // pg_stat_statements' execution time
	dbCPU   time.Duration // the client backends' user + system CPU
	goCPU   time.Duration // this process's user + system CPU
	checked int
	holes   int
	repairs int
}

func benchCompleteness(ctx context.Context, e *env, args []string) (err error) {
	var b completenessBench
	var tfs string
	f := newFlags(e, "bench completeness", "[--symbols 10000] [--timeframes m15,h1,h4] [--passes 5]",
		"The completeness check at scale: --symbols symbols × --timeframes definitions at the default\n"+
			"windows (timeframe_settings), every bar of every window stored as the synthetic provider\n"+
			"(regular hours) returns them, generated with SQL from the calendar's bar starts, on a\n"+
			"throw-away PostgreSQL with pg_stat_statements. It measures one full check of every\n"+
			"definition (twice: the first inserts the results), the periodic pass with nothing changed\n"+
			"(--passes times: the rolling sweep's share, --check-interval / --check-sweep of the\n"+
			"definitions), and a pass after one session of m15 bars was deleted for --holes symbols.\n"+
			"Figures: wall time, the database's statement time and its backends' CPU, this process's\n"+
			"CPU; and the periodic check's cost in a day as a share of one core.")
	f.Int(&b.symbols, "symbols", "BACKFILL_BENCH_SYMBOLS", 10000, "symbols, one definition per timeframe each")
	f.String(&tfs, "timeframes", "BACKFILL_BENCH_TIMEFRAMES", "m15,h1,h4", "timeframes, comma-separated")
	f.Int(&b.passes, "passes", "BACKFILL_BENCH_PASSES", 5, "periodic passes with nothing changed to time")
	f.Int(&b.holes, "holes", "BACKFILL_BENCH_HOLES", 100, "symbols whose m15 bars of one session are deleted before the last pass")
	f.Int(&b.batch, "batch", "BACKFILL_BENCH_BATCH", 500, "definitions per round of the check's statements")
	f.Duration(&b.interval, "check-interval", "BACKFILL_CHECK_INTERVAL", time.Minute, "the periodic check's interval")
	f.Duration(&b.sweep, "check-sweep", "BACKFILL_CHECK_SWEEP", 24*time.Hour, "the rolling sweep's period")
	f.String(&b.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "PostgreSQL server binaries for the throw-away database")
	if err := f.Parse(args); err != nil {
		return err
	}
	for part := range strings.SplitSeq(tfs, ",") {
		tf := market.Timeframe(strings.TrimSpace(part))
		if !tf.Valid() || slices.Contains(b.timeframes, tf) {
			return fmt.Errorf("%w: --timeframes %q: want distinct timeframes of m15, h1, h4, d1, w1", errUsage, tfs)
		}
		b.timeframes = append(b.timeframes, tf)
	}
	if b.symbols < 1 || b.symbols > 99999 || b.passes < 1 || b.holes < 0 || b.holes > b.symbols || b.batch < 1 ||
		b.interval <= 0 || b.sweep < b.interval {
		return fmt.Errorf("%w: need 1 <= --symbols <= 99999, --passes >= 1, 0 <= --holes <= --symbols, --batch >= 1, 0 < --check-interval <= --check-sweep", errUsage)
	}

	var cleanups []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, c := range slices.Backward(cleanups) {
			err = errors.Join(err, c(cctx))
		}
	}()
	cluster, stop, err := throwawayCluster(ctx, b.pgBin, map[string]string{
		"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all",
	})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, stop)
	url := cluster.URL("postgres")
	pool, err := benchPool(ctx, url, "", 8, "backfill-bench-completeness")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func(context.Context) error { pool.Close(); return nil })
	if err := b.prepare(ctx, e.stdout, pool); err != nil {
		return err
	}
	// One instant for the whole run: the data's windows end there, and the checker's clock is
	// it, so every pass judges the same sessions whatever the wall clock does meanwhile.
	now := time.Now().UTC().Truncate(time.Minute)
	if err := b.generate(ctx, e.stdout, pool, now); err != nil {
		return err
	}
	checker, err := completeness.New(completeness.Config{Pool: pool, Grid: market.SyntheticGrid(market.RegularHours),
		Interval: b.interval, SweepEvery: b.sweep, Batch: b.batch, Now: func() time.Time { return now }})
	if err != nil {
		return err
	}

	var all []costs
	measure := func(step string, fn func() (checked, holes, repairs int, err error)) (costs, error) {
		c, err := b.measure(ctx, pool, step, fn)
		if err == nil {
			all = append(all, c)
		}
		return c, err
	}
	full := func() (int, int, int, error) {
		res, err := checker.Check(ctx, nil)
		holes := 0
		for _, r := range res {
			holes += len(r.Holes)
		}
		return len(res), holes, 0, err
	}
	pass := func() (int, int, int, error) {
		res, err := checker.Pass(ctx)
		return res.Checked, res.Holes, res.Repairs, err
	}
	if _, err := measure("full check (first: inserts the results)", full); err != nil {
		return err
	}
	fullAgain, err := measure("full check (again)", full)
	if err != nil {
		return err
	}
	var idle []costs
	for i := range b.passes {
		c, err := measure(fmt.Sprintf("periodic pass, nothing changed (%d)", i+1), pass)
		if err != nil {
			return err
		}
		idle = append(idle, c)
	}
	if b.holes > 0 && slices.Contains(b.timeframes, market.M15) {
		day, err := b.holeDay(now)
		if err != nil {
			return err
		}
		if _, err := pool.Exec(ctx, benchCompletenessDeleteSQL, b.holes, day); err != nil {
			return fmt.Errorf("delete a session's bars: %w", err)
		}
		if _, err := measure(fmt.Sprintf("periodic pass after deleting %s's m15 bars of %d symbols", day, b.holes), pass); err != nil {
			return err
		}
	}
	return b.print(e.stdout, all, fullAgain, idle)
}

// prepare migrates the scratch database and turns the statement statistics on.
func (b *completenessBench) prepare(ctx context.Context, w io.Writer, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, conn.Conn()); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("enable pg_stat_statements: %w", err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	fmt.Fprintf(w, "completeness check: %d symbols × %s at the default windows (synthetic provider, regular hours)\n"+
		"%d CPUs, GOMAXPROCS %d, %s, PostgreSQL %s (throw-away, fsync off), check batch %d, interval %s, sweep %s\n",
		b.symbols, strings.Join(market.Names(b.timeframes), ","), runtime.NumCPU(), runtime.GOMAXPROCS(0),
		runtime.Version(), version, b.batch, b.interval, b.sweep)
	return nil
}

// generate stores the definitions and every bar of their windows, with SQL, at the bar starts
// the calendar and the synthetic grid give.
func (b *completenessBench) generate(ctx context.Context, w io.Writer, pool *pgxpool.Pool, now time.Time) error {
	start := time.Now()
	if _, err := pool.Exec(ctx, benchCompletenessDefineSQL, b.symbols, market.Names(b.timeframes)); err != nil {
		return fmt.Errorf("create the definitions: %w", err)
	}
	rows, err := pool.Query(ctx, benchCompletenessSymbolsSQL)
	if err != nil {
		return fmt.Errorf("list the symbols: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the symbols: %w", err)
	}
	windows := map[market.Timeframe]int{}
	rows, err = pool.Query(ctx, "SELECT timeframe, default_window_days FROM public.timeframe_settings")
	if err != nil {
		return fmt.Errorf("read the windows: %w", err)
	}
	var tf string
	var days int
	if _, err := pgx.ForEachRow(rows, []any{&tf, &days}, func() error { windows[market.Timeframe(tf)] = days; return nil }); err != nil {
		return fmt.Errorf("read the windows: %w", err)
	}
	cal, grid := market.NYSE(), market.SyntheticGrid(market.RegularHours)
	// Bars of a few hundred symbols per statement: big enough to be quick, small enough for
	// the server's memory.
	const perStatement = 200
	for _, tf := range b.timeframes {
		from := now.Add(-time.Duration(windows[tf]) * 24 * time.Hour)
		starts := grid.Starts(cal, tf, from, now)
		for chunk := range slices.Chunk(ids, perStatement) {
			if _, err := pool.Exec(ctx, benchCompletenessBarsSQL, string(tf), starts, chunk, from, now); err != nil {
				return fmt.Errorf("store the %s bars: %w", tf, err)
			}
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	var bars int64
	var size string
	if err := pool.QueryRow(ctx, benchCompletenessSizeSQL).Scan(&bars, &size); err != nil {
		return fmt.Errorf("measure the data: %w", err)
	}
	fmt.Fprintf(w, "data: %d definitions, %d bars (%s with indexes), generated in %s; windows end at %s\n\n",
		len(ids)*len(b.timeframes), bars, size, time.Since(start).Round(time.Second), now.Format(time.RFC3339))
	return nil
}

// holeDay is the session of the m15 window to empty: the second-to-last one that has ended.
func (b *completenessBench) holeDay(now time.Time) (string, error) {
	cal := market.NYSE()
	ss := cal.Sessions(now.AddDate(0, 0, -14), now)
	var ended []market.Session
	for _, s := range ss {
		if !s.Close.After(now) {
			ended = append(ended, s)
		}
	}
	if len(ended) < 2 {
		return "", errors.New("no ended session in the last two weeks")
	}
	return ended[len(ended)-2].Day(), nil
}

// measure runs fn and takes its costs.
func (b *completenessBench) measure(ctx context.Context, pool *pgxpool.Pool, step string, fn func() (int, int, int, error)) (costs, error) {
	c := costs{step: step}
	dbBefore, err := dbTime(ctx, pool)
	if err != nil {
		return c, err
	}
	cpuBefore, err := backendCPU(ctx, pool)
	if err != nil {
		return c, err
	}
	goBefore := selfCPU()
	start := time.Now()
	c.checked, c.holes, c.repairs, err = fn()
	c.wall = time.Since(start)
	if err != nil {
		return c, fmt.Errorf("%s: %w", step, err)
	}
	c.goCPU = selfCPU() - goBefore
	dbAfter, err := dbTime(ctx, pool)
	if err != nil {
		return c, err
	}
	cpuAfter, err := backendCPU(ctx, pool)
	if err != nil {
		return c, err
	}
	c.dbExec = dbAfter - dbBefore
	for pid, ticks := range cpuAfter {
		c.dbCPU += ticks - cpuBefore[pid]
	}
	return c, nil
}

// dbTime is pg_stat_statements' total execution time so far.
func dbTime(ctx context.Context, pool *pgxpool.Pool) (time.Duration, error) {
	var ms float64
	if err := pool.QueryRow(ctx, benchCompletenessStatsSQL).Scan(&ms); err != nil {
		return 0, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// backendCPU is the user + system CPU of each client backend so far (from /proc: the
// throw-away server runs on this machine).
func backendCPU(ctx context.Context, pool *pgxpool.Pool) (map[int32]time.Duration, error) {
	rows, err := pool.Query(ctx, benchCompletenessPidsSQL)
	if err != nil {
		return nil, fmt.Errorf("list the backends: %w", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("list the backends: %w", err)
	}
	out := make(map[int32]time.Duration, len(pids))
	for _, pid := range pids {
		out[pid] = procCPU(pid)
	}
	return out, nil
}

// procCPU reads a process's utime + stime from /proc/PID/stat (0 when it is gone).
func procCPU(pid int32) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// selfCPU is this process's user + system CPU so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// print writes the figures and the day's estimate.
func (b *completenessBench) print(w io.Writer, all []costs, full costs, idle []costs) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\twall\tdb statements\tdb CPU\tbench CPU\tchecked\tholes\trepairs\t")
	for _, c := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", c.step, ms(c.wall), ms(c.dbExec), ms(c.dbCPU), ms(c.goCPU), c.checked, c.holes, c.repairs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// A day of the periodic check: one pass per interval with the sweep's share; inside
	// sessions writes do not mark definitions, so a pass checks only that share; after each
	// timeframe's last bar of the day every definition is marked once: one full check a day.
	slices.SortFunc(idle, func(a, b costs) int { return cmp.Compare(a.wall, b.wall) })
	med := idle[len(idle)/2]
	passes := float64(24*time.Hour) / float64(b.interval)
	// The backends' CPU comes in 10 ms ticks; their statement time is finer and, on a server
	// whose data is in memory, close to CPU. Take the larger, plus this process's CPU.
	cpu := func(c costs) float64 { return float64(max(c.dbCPU, c.dbExec) + c.goCPU) }
	day := passes*cpu(med) + cpu(full)
	fmt.Fprintf(w, "\nperiodic check over a day: %.0f passes × %s (median pass: max(db CPU, db statements) + bench CPU) + one full check %s (the marks after the close) = %s a day = %.3f %% of one core\n",
		passes, ms(time.Duration(cpu(med))), ms(time.Duration(cpu(full))), time.Duration(day).Round(time.Millisecond), 100*day/float64(24*time.Hour))
	fmt.Fprintf(w, "a full check reads every bar of every window: %s wall for %d definitions (%.2f ms each)\n",
		ms(full.wall), full.checked, float64(full.wall)/float64(time.Millisecond)/float64(max(full.checked, 1)))
	fmt.Fprintf(w, "load average at the end: %s\n", loadAverage())
	return nil
}
