package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pglocal"
)

// devConfig is what `backfill dev` runs with.
type devConfig struct {
	dataDir string
	listen  string
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
			"the data folder, apply the migrations and the seed, and serve /healthz and /readyz until\n"+
			"interrupted (Ctrl-C). The database is postgresql://postgres:postgres@127.0.0.1:<db-port>/postgres.")
	f.String(&cfg.dataDir, "data-dir", "BACKFILL_DATA_DIR", ".backfill", "folder for the local cluster, its socket and its log; reused on the next run")
	f.String(&cfg.listen, "listen", "BACKFILL_LISTEN", "127.0.0.1:54321", "address of the HTTP API")
	f.Int(&cfg.dbPort, "db-port", "BACKFILL_DB_PORT", pglocal.DefaultPort, "PostgreSQL port on 127.0.0.1")
	f.String(&cfg.pgBin, "pg-bin", "BACKFILL_PG_BIN", "", "folder with the PostgreSQL server binaries (default: found on PATH, by pg_config or in /usr/lib/postgresql/*/bin)")
	f.Bool(&cfg.noSeed, "no-seed", "BACKFILL_NO_SEED", false, "skip supabase/seed.sql")
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
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: address already in use or not available: %w", cfg.listen, err)
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

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("open database pool: %w", err)
	}
	defer pool.Close()

	mux := http.NewServeMux()
	server.NewHealth(server.HealthConfig{Checks: []server.Check{
		{Name: "database", Run: func(ctx context.Context) error { return databaseReady(ctx, pool, migrator) }},
	}}).Register(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	fmt.Fprintf(e.stdout, "database: %s\napi:      http://%s\nready in %s (Ctrl-C to stop)\n",
		dbURL, ln.Addr(), time.Since(began).Round(time.Millisecond))
	logger.Info("ready", slog.String("database_url", dbURL), slog.String("listen", ln.Addr().String()))

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("stopping", slog.Any("cause", context.Cause(ctx)))
	case <-cluster.Exited():
		runErr = errors.New("postgres exited unexpectedly; see postgres.log in the data folder")
	case err := <-served:
		runErr = fmt.Errorf("serve http: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && runErr == nil {
		runErr = fmt.Errorf("shut down http server: %w", err)
	}
	return runErr
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
