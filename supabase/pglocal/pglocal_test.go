package pglocal_test

import (
	"context"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/symbolsync/backfill/supabase/pglocal"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freePort(t *testing.T) int {
	t.Helper()
	port, err := pgtest.FreePort()
	require.NoError(t, err)
	return port
}

func stop(t *testing.T, c *pglocal.Cluster) {
	t.Helper()
	require.NoError(t, c.Stop(context.Background()))
	require.NoError(t, c.Stop(context.Background()), "Stop is idempotent")
}

func TestStartInitialisesThenReusesCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := pglocal.Config{DataDir: pgtest.DataDir(t), Port: freePort(t), Ephemeral: true}

	c, err := pglocal.Start(ctx, cfg)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	var walLevel, slots, senders string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_setting('max_replication_slots'), current_setting('max_wal_senders')").Scan(&walLevel, &slots, &senders))
	require.Equal(t, "logical", walLevel)
	require.Equal(t, "20", slots)
	require.Equal(t, "20", senders)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	stop(t, c)
	select {
	case <-c.Exited():
	default:
		t.Fatal("server still running after Stop")
	}

	// A second start reuses the cluster: the data is still there.
	c, err = pglocal.Start(ctx, cfg)
	require.NoError(t, err)
	defer stop(t, c)
	conn, err = pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, 42, v)
}

func TestStartBadInput(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() }) // after the parallel subtests, not when this function returns
	busyPort := ln.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name string
		cfg  func(dir string) pglocal.Config
		want string
		is   error
	}{
		{
			name: "missing binaries",
			cfg: func(dir string) pglocal.Config {
				return pglocal.Config{DataDir: dir, Port: freePort(t), BinDir: filepath.Join(dir, "no-such-bin")}
			},
			want: "apt-get install postgresql",
			is:   pglocal.ErrBinariesNotFound,
		},
		{
			name: "port in use",
			cfg:  func(dir string) pglocal.Config { return pglocal.Config{DataDir: dir, Port: busyPort} },
			want: "database port " + strconv.Itoa(busyPort) + " on 127.0.0.1 is already in use",
		},
		{
			name: "port out of range",
			cfg:  func(dir string) pglocal.Config { return pglocal.Config{DataDir: dir, Port: 70000} },
			want: "database port 70000 is out of range",
		},
		{
			name: "server refuses a setting",
			cfg: func(dir string) pglocal.Config {
				return pglocal.Config{DataDir: dir, Port: freePort(t), Ephemeral: true,
					Settings: map[string]string{"shared_buffers": "lots"}}
			},
			want: `invalid value for parameter "shared_buffers"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := pgtest.DataDir(t)
			c, err := pglocal.Start(t.Context(), tc.cfg(dir))
			if c != nil {
				t.Cleanup(func() { _ = c.Stop(context.Background()) })
			}
			require.Error(t, err)
			require.Nil(t, c)
			require.Contains(t, err.Error(), tc.want)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			// Nothing half-made: no cluster unless the cluster itself was complete.
			_, statErr := os.Stat(filepath.Join(dir, "pgdata.initdb"))
			require.ErrorIs(t, statErr, os.ErrNotExist)
		})
	}
}

func TestStartFailedInitdbLeavesNoCluster(t *testing.T) {
	t.Parallel()
	dir := pgtest.DataDir(t)
	bin := filepath.Join(filepath.Dir(dir), "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	// An initdb that writes half a cluster and fails, as a full disk would make it.
	require.NoError(t, os.WriteFile(filepath.Join(bin, "initdb"),
		[]byte("#!/bin/sh\nmkdir -p \"$2\" && touch \"$2/PG_VERSION\"\necho 'initdb: error: could not write file: No space left on device' >&2\nexit 1\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "postgres"), []byte("#!/bin/sh\nexit 1\n"), 0o755))

	_, err := pglocal.Start(t.Context(), pglocal.Config{DataDir: dir, Port: freePort(t), BinDir: bin})
	require.ErrorContains(t, err, "No space left on device")
	for _, leftover := range []string{"pgdata", "pgdata.initdb"} {
		_, statErr := os.Stat(filepath.Join(dir, leftover))
		require.ErrorIs(t, statErr, os.ErrNotExist, leftover)
	}
}

func TestStartRefusesDataDirOwnedBySomeoneElse(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a folder to another user")
	}
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(nobody.Uid)
	dir := pgtest.DataDir(t)
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, uid, uid))

	_, err = pglocal.Start(t.Context(), pglocal.Config{DataDir: dir, Port: freePort(t)})
	require.ErrorContains(t, err, "is owned by nobody, not by postgres")
	_, statErr := os.Stat(filepath.Join(dir, "pgdata"))
	require.ErrorIs(t, statErr, os.ErrNotExist)
}

func TestStartRefusesUnreachableDataDirAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	parent, err := os.MkdirTemp("", "pglocal-private-") // 0700: the postgres user cannot pass
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	_, err = pglocal.Start(t.Context(), pglocal.Config{DataDir: filepath.Join(parent, "data"), Port: freePort(t)})
	require.ErrorContains(t, err, "user postgres cannot reach data folder")
}

func TestStartOnAnyPort(t *testing.T) {
	t.Parallel()
	c, err := pglocal.Start(t.Context(), pglocal.Config{DataDir: pgtest.DataDir(t), AnyPort: true, Ephemeral: true})
	require.NoError(t, err)
	defer stop(t, c)
	require.NotZero(t, c.Port())
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
}
