package supabase

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var (
	//go:embed sql/migrations_table.sql
	migrationsTableSQL string
	//go:embed sql/applied_migrations.sql
	appliedMigrationsSQL string
	//go:embed sql/record_migration.sql
	recordMigrationSQL string
	//go:embed sql/lock.sql
	lockSQL string
	//go:embed sql/unlock.sql
	unlockSQL string
	//go:embed sql/migrations_table_exists.sql
	migrationsTableExistsSQL string
)

// ErrMigrationChanged reports an applied migration whose file has changed since. Applied
// migrations are history: change the schema with a new migration instead.
var ErrMigrationChanged = errors.New("migration changed after it was applied")

// MigratorConfig configures a [Migrator].
type MigratorConfig struct {
	// Migrations to apply. Default: the embedded supabase/migrations ([Migrations]).
	Migrations []Migration
	// Logger receives one line per applied migration. Default: discard.
	Logger *slog.Logger
}

// Migrator applies migrations in version order, each in its own transaction, and records them in
// supabase_migrations.schema_migrations. A session advisory lock makes concurrent runs against
// one database safe: the second waits, then finds nothing left to do.
type Migrator struct {
	migrations []Migration
	logger     *slog.Logger
}

// NewMigrator returns a Migrator for cfg.
func NewMigrator(cfg MigratorConfig) (*Migrator, error) {
	ms := cfg.Migrations
	if ms == nil {
		var err error
		if ms, err = Migrations(); err != nil {
			return nil, err
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Migrator{migrations: ms, logger: logger}, nil
}

// Migrate brings the database behind conn up to date and returns the migrations it applied
// (none when it was up to date). It fails, naming the file, when an applied migration's file has
// changed, and stops at the first migration that fails, leaving that one unapplied.
func (m *Migrator) Migrate(ctx context.Context, conn *pgx.Conn) ([]Migration, error) {
	if _, err := conn.Exec(ctx, lockSQL); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; if the connection is gone, so is the lock.
		_, _ = conn.Exec(context.WithoutCancel(ctx), unlockSQL)
	}()

	if err := execScript(ctx, conn, migrationsTableSQL); err != nil {
		return nil, fmt.Errorf("create supabase_migrations.schema_migrations: %w", err)
	}
	applied, err := m.applied(ctx, conn)
	if err != nil {
		return nil, err
	}

	var done []Migration
	for _, mig := range m.migrations {
		if stmts, ok := applied[mig.Version]; ok {
			if fingerprint(strings.Join(stmts, ";")) != fingerprint(mig.SQL) {
				return done, fmt.Errorf("%s: %w (version %s)", mig.File, ErrMigrationChanged, mig.Version)
			}
			continue
		}
		if err := m.apply(ctx, conn, mig); err != nil {
			return done, err
		}
		m.logger.LogAttrs(ctx, slog.LevelInfo, "applied migration",
			slog.String("version", mig.Version), slog.String("name", mig.Name))
		done = append(done, mig)
	}
	return done, nil
}

// Pending returns the migrations not yet applied to the database behind conn, without changing it.
func (m *Migrator) Pending(ctx context.Context, conn *pgx.Conn) ([]Migration, error) {
	var exists bool
	if err := conn.QueryRow(ctx, migrationsTableExistsSQL).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for supabase_migrations.schema_migrations: %w", err)
	}
	if !exists {
		return m.migrations, nil
	}
	applied, err := m.applied(ctx, conn)
	if err != nil {
		return nil, err
	}
	var pending []Migration
	for _, mig := range m.migrations {
		if _, ok := applied[mig.Version]; !ok {
			pending = append(pending, mig)
		}
	}
	return pending, nil
}

func (m *Migrator) applied(ctx context.Context, conn *pgx.Conn) (map[string][]string, error) {
	rows, err := conn.Query(ctx, appliedMigrationsSQL)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := map[string][]string{}
	var (
		version, name string
		stmts         []string
	)
	_, err = pgx.ForEachRow(rows, []any{&version, &name, &stmts}, func() error {
		applied[version] = stmts
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return applied, nil
}

func (m *Migrator) apply(ctx context.Context, conn *pgx.Conn, mig Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin migration %s: %w", mig.File, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if err := execScript(ctx, conn, mig.SQL); err != nil {
		return fmt.Errorf("apply migration %s%s: %w", mig.File, errorLine(mig.SQL, err), err)
	}
	if _, err := tx.Exec(ctx, recordMigrationSQL, mig.Version, mig.Name, SplitStatements(mig.SQL)); err != nil {
		return fmt.Errorf("record migration %s: %w", mig.File, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit migration %s: %w", mig.File, err)
	}
	return nil
}

// execScript runs a multi-statement script with the simple query protocol, which is what allows
// several statements in one round trip.
func execScript(ctx context.Context, conn *pgx.Conn, script string) error {
	_, err := conn.PgConn().Exec(ctx, script).ReadAll()
	return err
}

// ExecScript runs a multi-statement SQL script (such as [Seed]) on conn.
func ExecScript(ctx context.Context, conn *pgx.Conn, script string) error {
	return execScript(ctx, conn, script)
}

// errorLine turns the character position PostgreSQL reports for a syntax or semantic error into
// " line N" of the script, so a failing migration names where to look.
func errorLine(script string, err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Position <= 0 {
		return ""
	}
	runes := []rune(script)
	pos := min(int(pgErr.Position)-1, len(runes))
	return fmt.Sprintf(" line %d", strings.Count(string(runes[:pos]), "\n")+1)
}
