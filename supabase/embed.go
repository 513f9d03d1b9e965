package supabase

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

//go:embed seed.sql
var seedSQL string

//go:embed monitor_multi_timeframe.sql
var monitorSQL string

// Seed returns the development seed (supabase/seed.sql). It is idempotent.
func Seed() string { return seedSQL }

// MonitorQueries returns supabase/monitor_multi_timeframe.sql, the operators' monitoring queries.
func MonitorQueries() string { return monitorSQL }

// Migration is one file of supabase/migrations.
type Migration struct {
	// Version is the file name's leading timestamp, as the Supabase CLI reads it.
	Version string
	// Name is the rest of the file name without the extension.
	Name string
	// File is the path of the file inside the migrations folder, for messages.
	File string
	// SQL is the file's content.
	SQL string
}

// The Supabase CLI's rule for migration file names: <digits>_<name>.sql.
var migrationName = regexp.MustCompile(`^([0-9]+)_(.*)\.sql$`)

// Migrations returns the embedded migrations in the order they are applied.
func Migrations() ([]Migration, error) {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	return ReadMigrations(sub)
}

// ReadMigrations reads every *.sql file at the top of fsys as a migration, in version order. It
// rejects names the Supabase CLI would not accept and two files with one version (the original
// project had four such pairs, and the CLI then skips one of each silently).
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	seen := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name must be <timestamp>_<name>.sql", e.Name())
		}
		if other, ok := seen[m[1]]; ok {
			return nil, fmt.Errorf("migration files %s and %s share version %s", other, e.Name(), m[1])
		}
		seen[m[1]] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{
			Version: m[1],
			Name:    m[2],
			File:    path.Join("supabase/migrations", e.Name()),
			SQL:     string(body),
		})
	}
	// Versions are numbers written in decimal: a shorter one is smaller.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Version, out[j].Version
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
	return out, nil
}
