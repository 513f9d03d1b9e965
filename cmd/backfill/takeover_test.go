package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

// buildBinary builds cmd/backfill for tests that need real processes.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backfill")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// serveProcess is `backfill serve` running as its own process.
type serveProcess struct {
	cmd    *exec.Cmd
	api    string
	stderr *lockedBuffer // its log
}

func startServeProcess(t *testing.T, bin, dbURL, slot string) *serveProcess {
	t.Helper()
	return startBackfill(t, bin, nil, "serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--replication-slot", slot, "--log-level", "warn")
}

// startBackfill runs the binary with args, and env added to the test's environment, until the
// test ends (SIGKILL), and returns once it prints its API address. Its log is shown when the
// test fails.
func startBackfill(t *testing.T, bin string, env []string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("log of backfill %s (pid %d):\n%s", args[0], cmd.Process.Pid, stderr.String())
		}
	})
	lines := bufio.NewScanner(stdout)
	apiRe := regexp.MustCompile(`^api: (http://\S+)$`)
	for lines.Scan() {
		if m := apiRe.FindStringSubmatch(lines.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return &serveProcess{cmd: cmd, api: m[1], stderr: stderr}
		}
	}
	t.Fatalf("backfill %s exited before listening: %v\n%s", args[0], lines.Err(), stderr.String())
	return nil
}

// leader reads the process's backfill_replicator_leader gauge.
func (p *serveProcess) leader(t *testing.T) bool {
	t.Helper()
	resp, err := http.Get(p.api + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), "\nbackfill_replicator_leader 1\n")
}

// TestReplicatorTakeoverAfterKill runs two serve processes on one database and kills the one
// whose replicator is active with SIGKILL: the other takes the slot over and nothing written
// before, during or after is lost.
func TestReplicatorTakeoverAfterKill(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dbURL := pgtest.URL(t)
	slot := fmt.Sprintf("takeover_%d", slotSeq.Add(1))
	procs := []*serveProcess{startServeProcess(t, bin, dbURL, slot), startServeProcess(t, bin, dbURL, slot)}

	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	track := func(ticker string) {
		_, err := conn.Exec(ctx, `WITH s AS (INSERT INTO symbols (ticker) VALUES ($1) RETURNING id)
			INSERT INTO user_symbol_tracking (symbol_id, source) SELECT id, 'watchlist' FROM s`, ticker)
		require.NoError(t, err)
	}
	track("BEFORE")
	waitFor(t, dbURL, `SELECT count(*) = 3 FROM job_definitions WHERE symbol = 'BEFORE' AND enabled`)

	var active, standby *serveProcess
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); active == nil && time.Now().Before(deadline); <-tick.C {
		for i, p := range procs {
			if p.leader(t) {
				active, standby = p, procs[1-i]
			}
		}
	}
	require.NotNil(t, active, "one replicator leads")
	require.False(t, standby.leader(t), "exactly one")

	require.NoError(t, active.cmd.Process.Signal(syscall.SIGKILL))
	_ = active.cmd.Wait()
	killedAt := time.Now()
	track("AFTER")
	waitFor(t, dbURL, `SELECT count(*) = 3 FROM job_definitions WHERE symbol = 'AFTER' AND enabled`)
	t.Logf("standby applied a change %s after the active process was killed", time.Since(killedAt).Round(time.Millisecond))
	// The takeover's reconcile may apply the change before the stream starts and the gauge
	// flips: give it the same bounded wait.
	for deadline := time.Now().Add(30 * time.Second); !standby.leader(t); <-tick.C {
		require.True(t, time.Now().Before(deadline), "the standby leads now")
	}

	// Each definition exactly once, each applied transaction recorded.
	var defs int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM job_definitions").Scan(&defs))
	require.Equal(t, 6, defs)
}
