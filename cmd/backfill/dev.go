package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pglocal"
)

// devConfig is what `backfill dev` runs with.
type devConfig struct {
	api     apiConfig
	repl    replConfig
	orch    orchConfig
	dataDir string
	dbPort  int
	pgBin   string
	noSeed  bool
}

func runDev(ctx context.Context, e *env, args []string) error {
	var (
		cfg devConfig
		log logging
	)
	f := newFlags(e, "dev", "[--data-dir .backfill] [--listen 127.0.0.1:54321] [--db-port 54322]",
		"Run the whole system locally: start (or reuse) a PostgreSQL cluster with wal_level=logical in\n"+
			"the data folder, apply the migrations and the seed, and serve the API (as `backfill serve`) until\n"+
			"interrupted (Ctrl-C). The database is postgresql://postgres:postgres@127.0.0.1:<db-port>/postgres.")
	f.String(&cfg.dataDir, "data-dir", "BACKFILL_DATA_DIR", ".backfill", "folder for the local cluster, its socket and its log; reused on the next run")
	f.Int(&cfg.dbPort, "db-port", "BACKFILL_DB_PORT", pglocal.DefaultPort, "PostgreSQL port on 127.0.0.1")
	f.String(&cfg.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "folder with the PostgreSQL server binaries (default: found on PATH, by pg_config or in /usr/lib/postgresql/*/bin)")
	f.Bool(&cfg.noSeed, "no-seed", "BACKFILL_NO_SEED", false, "skip supabase/seed.sql")
	cfg.api.register(f)
	cfg.repl.register(f)
	cfg.orch.register(f, "synthetic")
	log.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	logger, err := log.logger(e.stderr)
	if err != nil {
		return err
	}
	return dev(ctx, e, cfg, logger)
}

// dev is the composition root of `backfill dev`: it builds the parts in order and tears them down
// in reverse.
func dev(ctx context.Context, e *env, cfg devConfig, logger *slog.Logger) error {
	began := time.Now()
	// Take the API port first: if it is busy, fail before starting anything.
	ln, err := net.Listen("tcp", cfg.api.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: address already in use or not available: %w", cfg.api.listen, err)
	}
	defer ln.Close()

	cluster, err := pglocal.Start(ctx, pglocal.Config{
		DataDir: cfg.dataDir,
		Port:    cfg.dbPort,
		BinDir:  cfg.pgBin,
		Logger:  logger.With("component", "postgres"),
	})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(stopCtx); err != nil {
			logger.Error("stop postgres", slog.Any("error", err))
		}
	}()
	dbURL := cluster.URL("postgres")

	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{Logger: logger.With("component", "migrate")})
	if err != nil {
		return err
	}
	if err := prepareDatabase(ctx, dbURL, migrator, !cfg.noSeed); err != nil {
		return err
	}
	pool, err := openPool(ctx, dbURL, 10*time.Second)
	if err != nil {
		return err
	}
	defer pool.Close()

	// The cluster dying ends the API too.
	apiCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-cluster.Exited():
			cancel(errPostgresExited)
		case <-apiCtx.Done():
		}
	}()
	err = runServices(apiCtx, e, cfg.api, cfg.repl, cfg.orch, dbURL, pool, migrator, ln, logger, func() {
		printDevBanner(e, dbURL, ln.Addr().String(), time.Since(began))
	})
	if errors.Is(context.Cause(apiCtx), errPostgresExited) {
		return errPostgresExited
	}
	return err
}

var errPostgresExited = errors.New("postgres exited unexpectedly; see postgres.log in the data folder")

// printDevBanner tells a developer how to reach everything, with commands that work as printed.
func printDevBanner(e *env, dbURL, addr string, took time.Duration) {
	api := "http://" + addr
	fmt.Fprintf(e.stdout, `database: %s
api:      %s
anon key: %s
service key (control plane): %s

try:
  curl -s %s/functions/v1/sync-user-symbols -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{"symbols":["AAPL"],"source":"watchlist"}'
  buf curl --http2-prior-knowledge -H 'Authorization: Bearer %s' -d '{"symbols":["AAPL"],"source":"watchlist"}' %s/symbolsync.v1.SymbolSyncService/SyncUserSymbols
  buf curl --http2-prior-knowledge -H 'Authorization: Bearer %s' -d '{"symbol":"AAPL"}' %s/backfill.v1.ControlService/GetSymbolCoverage

ready in %s (Ctrl-C to stop)
`, dbURL, api, server.LocalAnonKey, server.LocalServiceRoleKey, api, server.LocalAnonKey, server.LocalAnonKey, api,
		server.LocalServiceRoleKey, api, took.Round(time.Millisecond))
}

// prepareDatabase migrates and optionally seeds the database on one short-lived connection.
func prepareDatabase(ctx context.Context, dbURL string, m *supabase.Migrator, seed bool) error {
	conn, err := connect(ctx, dbURL, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := m.Migrate(ctx, conn); err != nil {
		return err
	}
	if seed {
		if err := supabase.ExecScript(ctx, conn, supabase.Seed()); err != nil {
			return fmt.Errorf("apply seed: %w", err)
		}
	}
	return nil
}

// databaseReady is the readiness check: the database answers and no migration is pending.
func databaseReady(ctx context.Context, pool *pgxpool.Pool, m *supabase.Migrator) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	defer conn.Release()
	pending, err := m.Pending(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%d migration(s) pending, first %s", len(pending), pending[0].File)
	}
	return nil
}
