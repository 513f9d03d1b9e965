// Package pglocal runs a private PostgreSQL server from a data folder, for `backfill dev` and for
// tests: it finds the server binaries, runs initdb on first use, starts postgres with logical
// replication enabled on a chosen loopback port and a private socket folder, waits until it
// accepts connections, and stops it cleanly.
//
// PostgreSQL refuses to run as root. When the process runs as root, initdb and postgres run as
// the `postgres` system user and the folders are handed to that user.
package pglocal

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults for [Config].
const (
	DefaultPort         = 54322
	DefaultUser         = "postgres"
	DefaultStartTimeout = 60 * time.Second
)

// ErrBinariesNotFound means no PostgreSQL server binaries (initdb, postgres) were found.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// ErrPortInUse means the cluster's TCP port is taken by something else.
var ErrPortInUse = errors.New("port already in use")

// Config configures a local cluster.
type Config struct {
	// DataDir is the folder that holds everything: the cluster (pgdata/), the socket folder
	// (run/) and the server log (postgres.log). Required. Created when missing.
	DataDir string
	// Port is the TCP port on 127.0.0.1. Default DefaultPort (54322, as `supabase start`).
	Port int
	// AnyPort picks a free port instead of Port (see [Cluster.Port]), and another one should
	// something else take it before the server binds it: for test and benchmark clusters.
	AnyPort bool
	// BinDir is the folder with initdb and postgres. Default: found by [FindBinDir].
	BinDir string
	// SearchDirs are the glob patterns [FindBinDir] tries after PATH and pg_config.
	// Default: /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /opt/homebrew/opt/postgresql*/bin.
	SearchDirs []string
	// Ephemeral trades durability for speed (initdb --no-sync, fsync off): for test clusters
	// that are thrown away. Default false.
	Ephemeral bool
	// Settings are extra server settings passed as -c name=value; they override the defaults
	// (wal_level=logical, max_replication_slots=20, max_wal_senders=20, max_connections=200,
	// max_slot_wal_keep_size=1GB).
	Settings map[string]string
	// StartTimeout bounds how long Start waits for the server to accept connections.
	// Default DefaultStartTimeout.
	StartTimeout time.Duration
	// Logger receives lifecycle lines. Default: discard.
	Logger *slog.Logger
}

// Cluster is a running local PostgreSQL server.
type Cluster struct {
	cfg     Config
	pgdata  string
	runDir  string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// FindBinDir returns the folder holding the PostgreSQL server binaries: the one on PATH, then
// `pg_config --bindir`, then the newest match of the search patterns.
func FindBinDir(search []string) (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		// Follow symlinks (/usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres): the
		// real folder is where initdb and the server's share files belong together.
		if real, err := filepath.EvalSymlinks(p); err == nil && hasServer(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if hasServer(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServer(dir) {
			return dir, nil
		}
	}
	var found []string
	for _, pattern := range search {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if hasServer(m) {
				found = append(found, m)
			}
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%w in PATH, pg_config --bindir or %s: install them (Debian/Ubuntu: apt-get install postgresql) or pass their folder with --pg-bin",
			ErrBinariesNotFound, strings.Join(search, ", "))
	}
	// Prefer the newest major version: /usr/lib/postgresql/17/bin over .../15/bin.
	sort.Slice(found, func(i, j int) bool { return versionOf(found[i]) > versionOf(found[j]) })
	return found[0], nil
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start starts the cluster in cfg.DataDir, creating it on first use, and returns once it accepts
// connections. When creation fails, nothing half-made is left in the data folder.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data folder %s: %w", cfg.DataDir, err)
	}
	c := &Cluster{
		cfg:     cfg,
		pgdata:  filepath.Join(dataDir, "pgdata"),
		runDir:  filepath.Join(dataDir, "run"),
		logPath: filepath.Join(dataDir, "postgres.log"),
		exited:  make(chan struct{}),
	}
	owner, err := runAs()
	if err != nil {
		return nil, err
	}
	if err := prepareDirs(dataDir, c.runDir, owner); err != nil {
		return nil, err
	}
	if !cfg.AnyPort {
		// Before initdb: a busy port must not leave a new cluster behind.
		if err := checkPortFree(cfg.Port); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(c.pgdata, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx, owner); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("inspect data folder %s: %w", c.pgdata, err)
	} else if err := checkOwner(c.pgdata, owner); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if cfg.AnyPort {
			if c.cfg.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err := checkPortFree(c.cfg.Port)
		if err == nil {
			err = c.start(ctx, owner)
		}
		switch {
		case err == nil:
			return c, nil
		case cfg.AnyPort && errors.Is(err, ErrPortInUse) && attempt < 5:
			// Taken between our probe and the server's bind: try another.
			c.exited = make(chan struct{})
			c.stopOnce, c.stopErr = sync.Once{}, nil
			c.cmd = nil
			continue
		}
		return nil, err
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, errors.New("pglocal: DataDir is required")
	}
	cfg.Port = cmp.Or(cfg.Port, DefaultPort)
	if cfg.Port < 1 || cfg.Port > 65535 {
		return cfg, fmt.Errorf("database port %d is out of range 1-65535", cfg.Port)
	}
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, DefaultStartTimeout)
	if cfg.SearchDirs == nil {
		cfg.SearchDirs = []string{"/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BinDir == "" {
		dir, err := FindBinDir(cfg.SearchDirs)
		if err != nil {
			return cfg, err
		}
		cfg.BinDir = dir
	} else if !hasServer(cfg.BinDir) {
		return cfg, fmt.Errorf("%w in %s: install them (Debian/Ubuntu: apt-get install postgresql) or pass their folder with --pg-bin",
			ErrBinariesNotFound, cfg.BinDir)
	}
	return cfg, nil
}

// account is the system user that runs the server.
type account struct {
	name     string
	uid, gid int
	switched bool // true when we are root and run the server as another user
}

func runAs() (account, error) {
	if os.Geteuid() != 0 {
		return account{name: currentUserName(), uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return account{}, fmt.Errorf("running as root, and PostgreSQL refuses root: need the 'postgres' system user (apt-get install postgresql creates it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return account{name: "postgres", uid: uid, gid: gid, switched: true}, nil
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Geteuid())
}

// prepareDirs creates the data and socket folders and makes sure the server's user owns them.
// As root it hands them to that user, but only folders root or that user own already: a folder
// of someone else's is an error, not something to take over.
func prepareDirs(dataDir, runDir string, owner account) error {
	for _, dir := range []string{dataDir, runDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data folder %s: %w", dir, err)
		}
		if err := checkOwner(dir, owner); err != nil {
			return err
		}
		if owner.switched {
			if err := os.Chown(dir, owner.uid, owner.gid); err != nil {
				return fmt.Errorf("hand data folder %s to user %s: %w", dir, owner.name, err)
			}
			if err := reachable(dir, owner); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkOwner(dir string, owner account) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("inspect data folder %s: %w", dir, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := int(sys.Uid)
	if uid == owner.uid || (owner.switched && uid == 0) {
		return nil
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return fmt.Errorf("data folder %s is owned by %s, not by %s who runs PostgreSQL: choose another --data-dir or fix its owner", dir, name, owner.name)
}

// reachable checks that the server's user can walk down to dir: a data folder under /root is
// invisible to the postgres user, and postgres would fail with a puzzling message.
func reachable(dir string, owner account) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", p, err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if ok {
			perm := st.Mode().Perm()
			canSearch := perm&0o001 != 0 ||
				(int(sys.Uid) == owner.uid && perm&0o100 != 0) ||
				(int(sys.Gid) == owner.gid && perm&0o010 != 0)
			if !canSearch {
				return fmt.Errorf("user %s cannot reach data folder %s: %s is not searchable by it; choose a --data-dir outside %s (e.g. /var/tmp/backfill) or run chmod o+x %s",
					owner.name, dir, p, p, p)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func checkPortFree(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("database port %d on 127.0.0.1 is already in use: stop what listens there or choose another with --db-port (%w)", port, ErrPortInUse)
	}
	_ = ln.Close()
	return nil
}

// initdb creates the cluster in a temporary sibling folder and renames it into place, so an
// interrupted or failed initdb leaves no half-made cluster behind.
func (c *Cluster) initdb(ctx context.Context, owner account) error {
	tmp := c.pgdata + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	args := []string{
		"-D", tmp, "-U", DefaultUser, "-E", "UTF8", "--locale=C",
		// Loopback only (see start), so trust: any password is accepted, as the well-known
		// local URL postgresql://postgres:postgres@127.0.0.1:54322/postgres expects.
		"--auth-local=trust", "--auth-host=trust",
	}
	if c.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.cfg.BinDir, "initdb"), args...)
	cmd.Dir = filepath.Dir(c.pgdata)
	setCredential(cmd, owner)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("initdb %s: %w: %s", c.pgdata, err, lastLines(out.String(), 3))
	}
	if err := os.Rename(tmp, c.pgdata); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("move new cluster into %s: %w", c.pgdata, err)
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "initialised database cluster",
		slog.String("pgdata", c.pgdata), slog.Duration("took", time.Since(start)))
	return nil
}

func setCredential(cmd *exec.Cmd, owner account) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a Ctrl-C in the terminal reaches us, and we stop the server
		// in order instead of it dying under our feet.
		Setpgid: true,
		// If we die without stopping it, the server shuts down instead of living on orphaned.
		Pdeathsig: syscall.SIGINT,
	}
	if owner.switched {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(owner.uid), Gid: uint32(owner.gid)}
	}
}

func (c *Cluster) settings() []string {
	s := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(c.cfg.Port),
		"unix_socket_directories": c.runDir,
		"wal_level":               "logical",
		"max_replication_slots":   "20",
		"max_wal_senders":         "20",
		"max_connections":         "200",
		"max_slot_wal_keep_size":  "1GB",
		"logging_collector":       "off",
	}
	if c.cfg.Ephemeral {
		s["fsync"] = "off"
		s["synchronous_commit"] = "off"
		s["full_page_writes"] = "off"
	}
	for k, v := range c.cfg.Settings {
		s[k] = v
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, "-c", k+"="+s[k])
	}
	return args
}

func (c *Cluster) start(ctx context.Context, owner account) error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open server log %s: %w", c.logPath, err)
	}
	defer logFile.Close() // the child has its own copy
	args := append([]string{"-D", c.pgdata}, c.settings()...)
	// Not CommandContext: the server's life is ours to end with Stop, not a context's.
	cmd := exec.Command(filepath.Join(c.cfg.BinDir, "postgres"), args...)
	cmd.Dir = filepath.Dir(c.pgdata)
	setCredential(cmd, owner)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	exited := c.exited
	go func() {
		c.waitErr = cmd.Wait()
		close(exited)
	}()

	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	if err := c.waitReady(waitCtx); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		tail := c.logTail(logStart)
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w (%w)", err, ErrPortInUse)
		}
		return fmt.Errorf("%w; server log %s says: %s", err, c.logPath, tail)
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "database ready",
		slog.Int("port", c.cfg.Port), slog.Duration("took", time.Since(began)))
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgconn.Connect(attempt, c.URL("postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited while starting: %v", c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections on port %d: %w", c.cfg.Port, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

func (c *Cluster) logTail(from int64) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || int64(len(b)) < from {
		return "(unreadable)"
	}
	return lastLines(string(b[from:]), 3)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// URL returns a connection URL for database db over TCP on loopback.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgresql://%s:postgres@127.0.0.1:%d/%s", DefaultUser, c.cfg.Port, db)
}

// Port returns the server's TCP port.
func (c *Cluster) Port() int { return c.cfg.Port }

// Exited is closed when the server process ends, for whatever reason.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

// Stop shuts the server down: a fast shutdown (SIGINT, which ends sessions and checkpoints),
// then an immediate one (SIGQUIT) if ctx ends first. It is idempotent.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		if c.cmd == nil || c.cmd.Process == nil {
			return
		}
		select {
		case <-c.exited:
			return
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-ctx.Done():
			_ = c.cmd.Process.Signal(syscall.SIGQUIT)
			<-c.exited
			c.stopErr = fmt.Errorf("postgres did not stop in time, sent SIGQUIT: %w", context.Cause(ctx))
		}
	})
	return c.stopErr
}
