package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/supabase"
)

func runMigrate(ctx context.Context, e *env, args []string) error {
	var (
		dbURL          string
		seed, dryRun   bool
		connectTimeout time.Duration
		log            logging
	)
	f := newFlags(e, "migrate", "--database-url URL [--seed] [--dry-run]",
		"Apply the embedded supabase/migrations to a database, in order, each in its own transaction,\n"+
			"recorded in supabase_migrations.schema_migrations (as the Supabase CLI does). Re-running is a\n"+
			"no-op; concurrent runs are safe. Use a direct or session-mode connection: a transaction\n"+
			"pooler (port 6543 on Supabase) cannot hold the advisory lock that makes it safe.")
	f.String(&dbURL, "database-url", "BACKFILL_DATABASE_URL", "", "PostgreSQL URL, e.g. postgresql://postgres:postgres@127.0.0.1:54322/postgres")
	f.Bool(&seed, "seed", "BACKFILL_SEED", false, "also apply supabase/seed.sql (idempotent) after migrating")
	f.Bool(&dryRun, "dry-run", "BACKFILL_DRY_RUN", false, "list the migrations that would be applied, change nothing")
	f.Duration(&connectTimeout, "connect-timeout", "BACKFILL_CONNECT_TIMEOUT", 10*time.Second, "give up connecting after this long")
	log.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if dbURL == "" {
		return fmt.Errorf("%w: --database-url is required", errUsage)
	}
	logger, err := log.logger(e.stderr)
	if err != nil {
		return err
	}

	conn, err := connect(ctx, dbURL, connectTimeout)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	m, err := supabase.NewMigrator(supabase.MigratorConfig{Logger: logger})
	if err != nil {
		return err
	}
	if dryRun {
		pending, err := m.Pending(ctx, conn)
		if err != nil {
			return err
		}
		for _, p := range pending {
			fmt.Fprintf(e.stdout, "pending %s\n", p.File)
		}
		fmt.Fprintf(e.stdout, "%d migration(s) pending\n", len(pending))
		return nil
	}
	applied, err := m.Migrate(ctx, conn)
	if err != nil {
		return err
	}
	for _, a := range applied {
		fmt.Fprintf(e.stdout, "applied %s\n", a.File)
	}
	fmt.Fprintf(e.stdout, "%d migration(s) applied, database is up to date\n", len(applied))
	if seed {
		if err := supabase.ExecScript(ctx, conn, supabase.Seed()); err != nil {
			return fmt.Errorf("apply seed: %w", err)
		}
		fmt.Fprintln(e.stdout, "seed applied")
	}
	return nil
}

// connect opens one connection, giving up after timeout so an unreachable host fails fast.
func connect(ctx context.Context, url string, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url: %w", errUsage, err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return conn, nil
}
