// Package pgtest gives tests a real PostgreSQL: one private cluster per test package, started on
// first use and stopped by [Main], and a fresh migrated database per test, cloned from a
// template database that is migrated once.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and in a test:
//
//	pool := pgtest.DB(t)
//
// The cluster lives in package state because `go test` gives a package one process and one
// TestMain: the state is confined to test binaries.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pglocal"
)

// TemplateDB is the migrated database every test database is cloned from.
const TemplateDB = "backfill_template"

//nolint:gochecknoglobals // one cluster per test binary; see the package comment.
var shared struct {
	once    sync.Once
	err     error
	dir     string
	cluster *pglocal.Cluster
	seq     atomic.Int64
}

// Main runs the package's tests, then stops the cluster if one was started, removes its files
// and fails the run if goroutines leaked. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop cluster:", err)
		}
		cancel()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Cluster returns the package's cluster, starting it (and migrating the template) on first use.
func Cluster(t testing.TB) *pglocal.Cluster {
	t.Helper()
	shared.once.Do(func() { shared.cluster, shared.err = startShared() })
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.cluster
}

func startShared() (*pglocal.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Under /tmp rather than t.TempDir: the folder outlives any one test, and as root it must be
	// reachable by the postgres user.
	dir, err := os.MkdirTemp("", "backfill-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster folder: %w", err)
	}
	shared.dir = dir
	// MkdirTemp makes it 0700; as root the postgres user must be able to pass through it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("open cluster folder to the server's user: %w", err)
	}
	cluster, err := pglocal.Start(ctx, pglocal.Config{
		DataDir:   filepath.Join(dir, "db"),
		AnyPort:   true,
		Ephemeral: true,
		BinDir:    os.Getenv("BACKFILL_PG_BIN"),
	})
	if err != nil {
		return nil, fmt.Errorf("start test cluster: %w", err)
	}
	if err := createTemplate(ctx, cluster); err != nil {
		_ = cluster.Stop(ctx)
		return nil, err
	}
	return cluster, nil
}

func createTemplate(ctx context.Context, cluster *pglocal.Cluster) error {
	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to test cluster: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+TemplateDB); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	conn, err := pgx.Connect(ctx, cluster.URL(TemplateDB))
	if err != nil {
		return fmt.Errorf("connect to template database: %w", err)
	}
	defer conn.Close(ctx)
	m, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, conn); err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	return nil
}

// DataDir returns a fresh folder for a cluster of the test's own, removed when the test ends. As
// root the cluster runs as the postgres user, so the folder is made reachable by it (a plain
// t.TempDir is private to root).
func DataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "backfill-test-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return filepath.Join(dir, "data")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// URL creates a fresh migrated database for the test, dropped when the test ends, and returns
// its connection URL.
func URL(t testing.TB) string {
	t.Helper()
	return create(t, TemplateDB)
}

// EmptyURL creates a fresh empty (unmigrated) database for the test, dropped when the test ends,
// and returns its connection URL. The cluster-wide roles the migrations create (anon,
// authenticated, service_role) exist already, as they do on Supabase.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return create(t, "template0")
}

func create(t testing.TB, template string) string {
	t.Helper()
	cluster := Cluster(t)
	url, drop, err := Clone(context.Background(), cluster, template, sanitize(t.Name()))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(context.Background()); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return url
}

// Clone creates a database on cluster as a copy of template, named after hint and unique in this
// process, and returns its URL and a function that drops it (ending its sessions).
func Clone(ctx context.Context, cluster *pglocal.Cluster, template, hint string) (url string, drop func(context.Context) error, err error) {
	name := fmt.Sprintf("t%d_%s", shared.seq.Add(1), hint)
	if err := admin(ctx, cluster, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY file_copy",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		if err := admin(ctx, cluster, fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return cluster.URL(name), drop, nil
}

// admin runs one statement on the cluster's postgres database. CREATE and DROP DATABASE cannot
// run inside a transaction or on the database they act on, hence a connection of its own.
func admin(ctx context.Context, cluster *pglocal.Cluster, sql string) error {
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to test cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// DB creates a fresh migrated database for the test and returns a pool on it; both are closed
// and dropped when the test ends.
func DB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close) // registered after the drop, so it runs before it
	return pool
}

// Listen opens a connection of the test's own (a pooled one would hand its LISTEN to other
// users) on pool's database, listening on channel; it is closed when the test ends.
func Listen(t testing.TB, pool *pgxpool.Pool, channel string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(t.Context(), pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatalf("pgtest: connect to listen on %s: %v", channel, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatalf("pgtest: listen on %s: %v", channel, err)
	}
	return conn
}

// NextNotification waits up to 30 s for the next notification on conn (from Listen) and
// returns its payload.
func NextNotification(t testing.TB, conn *pgx.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("pgtest: wait for a notification: %v", err)
	}
	return n.Payload
}

// sanitize keeps a database name short and plain: PostgreSQL truncates names at 63 bytes.
func sanitize(name string) string {
	name = strings.ToLower(name)
	var b strings.Builder
	for _, r := range name {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
