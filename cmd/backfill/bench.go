package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

	"github.com/symbolsync/backfill/gen/symbolsync/v1/symbolsyncv1connect"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pglocal"
)

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(e.stdout, "Usage: backfill bench <scenario> [flags]\n\nScenarios:\n  sync      load sync-user-symbols on the function path and over Connect\n  cdc       latency from a tracking row's commit to its job definitions (replicator vs the original trigger)\n  backfill  the seed's 60 definitions from commit to full coverage (orchestrator vs the original's 60 s tick)\n  completeness  the completeness check over 10,000 symbols × m15/h1/h4: full check and periodic pass\n  provider  the provider's request budget: backfills against the floor, freshness through a simulated session, the database's cost")
			return nil
		}
		return fmt.Errorf("%w: name a scenario: backfill bench sync", errUsage)
	}
	switch args[0] {
	case "sync":
		return benchSync(ctx, e, args[1:])
	case "cdc":
		return benchCDC(ctx, e, args[1:])
	case "backfill":
		return benchBackfill(ctx, e, args[1:])
	case "completeness":
		return benchCompleteness(ctx, e, args[1:])
	case "provider":
		return benchProvider(ctx, e, args[1:])
	}
	return fmt.Errorf("%w: unknown scenario %q (try: sync, cdc, backfill, completeness or provider)", errUsage, args[0])
}

type syncBench struct {
	url, key string
	clients  int
	duration time.Duration
	rate     int
	paths    string
	symbols  int
	pgBin    string
}

func benchSync(ctx context.Context, e *env, args []string) error {
	var b syncBench
	f := newFlags(e, "bench sync", "[--clients 16] [--duration 10s] [--rate 0] [--path both]",
		"Load sync-user-symbols with concurrent clients and print requests/s and latency percentiles.\n"+
			"Without --url it starts its own throw-away PostgreSQL and server on loopback (the numbers\n"+
			"then include Postgres on the same machine). Each request tracks --symbols random tickers from\n"+
			"a pool of 500 with a random source, anonymously.")
	f.String(&b.url, "url", "BACKFILL_BENCH_URL", "", "load an existing server instead (e.g. http://127.0.0.1:54321)")
	f.String(&b.key, "key", "BACKFILL_KEY", server.LocalAnonKey, "bearer key for --url")
	f.Int(&b.clients, "clients", "BACKFILL_BENCH_CLIENTS", 16, "concurrent clients")
	f.Duration(&b.duration, "duration", "BACKFILL_BENCH_DURATION", 10*time.Second, "how long to load each path")
	f.Int(&b.rate, "rate", "BACKFILL_BENCH_RATE", 0, "requests per second across all clients (0: as fast as they go)")
	f.String(&b.paths, "path", "BACKFILL_BENCH_PATH", "both", "function, connect or both")
	f.Int(&b.symbols, "symbols", "BACKFILL_BENCH_SYMBOLS", 3, "symbols per request")
	f.String(&b.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "PostgreSQL server binaries for the embedded database")
	if err := f.Parse(args); err != nil {
		return err
	}
	if b.clients < 1 || b.duration <= 0 || b.rate < 0 || b.symbols < 1 || b.symbols > 100 {
		return fmt.Errorf("%w: need --clients >= 1, --duration > 0, --rate >= 0, 1 <= --symbols <= 100", errUsage)
	}
	var paths []string
	switch b.paths {
	case "both":
		paths = []string{"function", "connect"}
	case "function", "connect":
		paths = []string{b.paths}
	default:
		return fmt.Errorf("%w: --path %q: want function, connect or both", errUsage, b.paths)
	}

	target := b.url
	if target == "" {
		url, stop, err := embeddedAPI(ctx, b.pgBin)
		if err != nil {
			return err
		}
		defer stop()
		target = url
	}
	fmt.Fprintf(e.stdout, "sync-user-symbols load: %d clients, %s per path, rate %s, %d symbols per request, %d CPUs, %s\ntarget %s\n\n",
		b.clients, b.duration, rateText(b.rate), b.symbols, runtime.NumCPU(), runtime.Version(), target)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\trequests\treq/s\tp50\tp90\tp99\tmax\terrors\t")
	for _, p := range paths {
		res, err := b.load(ctx, target, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n", p, res.n, float64(res.n)/res.elapsed.Seconds(),
			ms(res.pct(0.50)), ms(res.pct(0.90)), ms(res.pct(0.99)), ms(res.pct(1)), res.errors)
	}
	return tw.Flush()
}

func rateText(r int) string {
	if r == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d/s", r)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

type loadResult struct {
	n, errors int
	elapsed   time.Duration
	latencies []time.Duration
}

func (r *loadResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p*float64(len(r.latencies))) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// load runs the clients against one path for the duration: they start requests until it ends,
// and the requests in flight then are waited for and counted. Cutting them off would drop the
// slowest requests of the run (those that straddle its end) from the percentiles, and on a slow
// machine a short run would count none at all.
func (b *syncBench) load(ctx context.Context, target, path string) (*loadResult, error) {
	endpoint := target + "/functions/v1/sync-user-symbols"
	if path == "connect" {
		endpoint = target + symbolsyncv1connect.SymbolSyncServiceSyncUserSymbolsProcedure
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.clients, MaxConnsPerHost: b.clients}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	run, cancel := context.WithTimeout(ctx, b.duration) // when to stop starting requests
	defer cancel()

	// Open loop: permits at the rate (see pace). Closed loop: no permits.
	var permits chan struct{}
	if b.rate > 0 {
		permits = make(chan struct{}, b.clients)
		go pace(run, b.rate, permits)
	}
	var (
		mu  sync.Mutex
		res = &loadResult{}
		wg  sync.WaitGroup
	)
	start := time.Now()
	for c := range b.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			var lat []time.Duration
			errs := 0
			for run.Err() == nil {
				if permits != nil {
					select {
					case <-permits:
					case <-run.Done():
						continue
					}
				}
				began := time.Now()
				err := b.once(ctx, hc, endpoint, rng)
				if ctx.Err() != nil {
					break // interrupted (Ctrl-C), not a server error
				}
				lat = append(lat, time.Since(began))
				if err != nil {
					errs++
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.latencies)
	slices.Sort(res.latencies)
	if res.n > 0 && res.errors == res.n {
		return nil, fmt.Errorf("every request to %s failed: is the server up and the key right?", endpoint)
	}
	return res, nil
}

var benchSources = []string{"watchlist", "chart_view", "recent_search"}

func (b *syncBench) once(ctx context.Context, hc *http.Client, endpoint string, rng *rand.Rand) error {
	var body bytes.Buffer
	body.WriteString(`{"symbols":[`)
	for i := range b.symbols {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `"B%03d"`, rng.IntN(500))
	}
	fmt.Fprintf(&body, `],"source":%q}`, benchSources[rng.IntN(len(benchSources))])
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// parseIntList reads a flag's comma-separated whole numbers, each between lo and hi.
func parseIntList(flag, s string, lo, hi int) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%w: --%s %q: want whole numbers between %d and %d, separated by commas", errUsage, flag, s, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

// throwawayCluster starts an ephemeral PostgreSQL for a benchmark in a temporary folder on a free
// port, with extra server settings; stop ends it and removes the folder.
func throwawayCluster(ctx context.Context, pgBin string, settings map[string]string) (c *pglocal.Cluster, stop func(context.Context) error, err error) {
	dir, err := os.MkdirTemp("", "backfill-bench-")
	if err != nil {
		return nil, nil, fmt.Errorf("create bench folder: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil { // the postgres user must pass when we are root
		_ = os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("open bench folder to the server's user: %w", err)
	}
	c, err = pglocal.Start(ctx, pglocal.Config{
		DataDir: filepath.Join(dir, "db"), AnyPort: true, Ephemeral: true, BinDir: pgBin, Settings: settings,
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return c, func(ctx context.Context) error {
		err := c.Stop(ctx)
		_ = os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("stop the throw-away PostgreSQL: %w", err)
		}
		return nil
	}, nil
}

// embeddedAPI starts a throw-away cluster and `serve` on loopback for a benchmark.
func embeddedAPI(ctx context.Context, pgBin string) (url string, stop func(), err error) {
	cluster, stopCluster, err := throwawayCluster(ctx, pgBin, nil)
	if err != nil {
		return "", nil, err
	}
	cleanup := []func(){func() { _ = stopCluster(context.Background()) }}
	stop = func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err != nil {
		return "", nil, err
	}
	if err = prepareDatabase(ctx, cluster.URL("postgres"), migrator, false); err != nil {
		return "", nil, err
	}
	pool, err := openPool(ctx, cluster.URL("postgres")+"?pool_max_conns=16", 10*time.Second)
	if err != nil {
		return "", nil, err
	}
	cleanup = append(cleanup, pool.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	readyCh := make(chan struct{})
	go func() {
		done <- serveAPI(srvCtx, apiConfig{requestTimeout: server.DefaultRequestTimeout}, pool, migrator, ln,
			slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil, func() { close(readyCh) })
	}()
	cleanup = append(cleanup, func() { cancel(); <-done })
	select {
	case <-readyCh:
	case err = <-done:
		return "", nil, fmt.Errorf("start bench server: %w", errors.Join(err, errors.New("server exited")))
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// createMigratedDB creates database name on the cluster of admin (at url) from template0 and
// applies the migrations; it returns a connection to it for the caller to finish the database
// with and close (CREATE DATABASE … TEMPLATE wants nobody connected to a template).
func createMigratedDB(ctx context.Context, admin *pgxpool.Pool, url, name string) (*pgx.Conn, error) {
	if _, err := admin.Exec(ctx, fmt.Sprintf(benchCreateDBSQL, pgx.Identifier{name}.Sanitize(), "template0")); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.Database = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s: %w", name, err)
	}
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err == nil {
		_, err = migrator.Migrate(ctx, conn)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("migrate database %s: %w", name, err)
	}
	return conn, nil
}

// benchPool opens a pool of conns connections on dbURL (--database-url, or a throw-away
// cluster's), on database instead of the URL's one when it is not empty, named application for
// pg_stat_activity, and checks that the database answers.
func benchPool(ctx context.Context, dbURL, database string, conns int, application string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url: %w", errUsage, err)
	}
	if database != "" {
		cfg.ConnConfig.Database = database
	}
	cfg.MaxConns = int32(conns) //nolint:gosec // at most 132, checked with the flags
	cfg.ConnConfig.RuntimeParams["application_name"] = application
	noJIT(cfg.ConnConfig.RuntimeParams) // as the service's own sessions
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s on %s:%d: %w", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}
