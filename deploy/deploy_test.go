package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	// datasourceUID is the Grafana data source every panel uses (provisioning/datasources).
	datasourceUID = "backfill-prometheus"
	dashboardFile = "grafana/dashboards/backfill.json"
)

// timeframes are all the timeframes the live test backfills; panels by timeframe must show each.
var timeframes = []string{"m15", "h1", "h4", "d1", "w1"}

// httpClient keeps no idle connections, so no goroutine outlives a test.
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func TestPromtool(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"}, // checks the rule files it loads too
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			t.Parallel()
			out := promtool(t, nil, args...)
			require.Contains(t, out, "SUCCESS")
		})
	}
}

// TestDashboardShape checks what Grafana needs from a provisioned dashboard, and that it covers
// every subject it promises.
func TestDashboardShape(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	require.Equal(t, "backfill-overview", d.UID, "a stable uid keeps links working")
	require.Nil(t, d.ID, "a provisioned dashboard has no id")
	require.NotEmpty(t, d.Title)
	require.Positive(t, d.SchemaVersion)

	ds, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	require.NoError(t, err)
	uids := regexp.MustCompile(`(?m)^\s*uid:\s*(\S+)\s*$`).FindAllStringSubmatch(string(ds), -1)
	require.Len(t, uids, 1, "one data source")
	require.Equal(t, datasourceUID, uids[0][1], "the provisioned data source has the uid the panels use")

	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Title, "panel %d", p.ID)
		require.Equal(t, &datasourceRef{Type: "prometheus", UID: datasourceUID}, p.Datasource, p.Title)
		g := p.GridPos
		require.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.Y >= 0 && g.X+g.W <= 24, "%s: gridPos %+v", p.Title, g)
		require.NotEmpty(t, p.Targets, p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			require.False(t, refs[tg.RefID], "%s: refId %q twice", p.Title, tg.RefID)
			refs[tg.RefID] = true
			require.Equal(t, &datasourceRef{Type: "prometheus", UID: datasourceUID}, tg.Datasource, "%s %s", p.Title, tg.RefID)
			require.NotEmpty(t, tg.Expr, "%s %s", p.Title, tg.RefID)
			exprs = append(exprs, tg.Expr)
		}
		for _, q := range d.Panels {
			if q.ID != p.ID {
				require.False(t, overlap(p.GridPos, q.GridPos), "%q overlaps %q", p.Title, q.Title)
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, metric := range []string{
		"backfill_orchestrator_ticks_total",                           // tick throughput
		"backfill_orchestrator_runs_completed_total",                  // run outcomes by timeframe
		"backfill_orchestrator_first_bars_latency_seconds_bucket",     // backfill latency
		"backfill_orchestrator_window_covered_latency_seconds_bucket", // backfill latency
		"backfill_orchestrator_queue_depth",                           // queue depth
		"backfill_orchestrator_oldest_queued_age_seconds",             // and age
		"backfill_provider_errors_total",                              // provider errors
		"backfill_provider_rate_limit_waits_total",                    // and rate-limit waits
		"backfill_provider_rate_limit_wait_seconds_total",
		"backfill_replicator_slot_lag_bytes",                  // replication lag
		"backfill_replicator_leader",                          // replicator active
		"backfill_server_requests_total",                      // sync requests
		"backfill_server_request_duration_seconds_bucket",     // and latency
		"backfill_replicator_apply_latency_seconds_bucket",    // replication apply latency
		"backfill_replicator_last_applied_timestamp_seconds",  // last applied change
		"backfill_provider_request_duration_seconds_bucket",   // provider latency
		"backfill_orchestrator_tick_duration_seconds_bucket",  // tick duration
		"backfill_orchestrator_run_duration_seconds_bucket",   // run duration
		"backfill_orchestrator_bars_written_total",            // bars written
		"backfill_replicator_changes_applied_total",           // tracking changes applied
		"backfill_orchestrator_pickup_latency_seconds_bucket", // job pickup
		"backfill_orchestrator_write_duration_seconds_bucket", // bar writes
		"backfill_freshness_worst_lag_seconds",                // data freshness
		"backfill_freshness_lag_seconds_bucket",               // and its percentiles
	} {
		require.Contains(t, all, metric, "no panel shows %s", metric)
	}
}

// TestLiveBackfill is the acceptance test of deploy/: a real Prometheus, configured with the
// shipped prometheus.yml and alerts.yml, scrapes a live `backfill dev` during a synthetic
// backfill with injected provider errors, and every dashboard query returns data.
func TestLiveBackfill(t *testing.T) {
	t.Parallel()
	prometheusBin := tool(t, "prometheus")
	bin := buildBackfill(t)

	dev := startDev(t, bin)
	prom := startPrometheus(t, prometheusBin, dev.addr)
	eventually(t, 30*time.Second, "Prometheus scrapes backfill", func() error {
		samples, err := prom.query(`up{job="backfill"}`)
		if err != nil {
			return err
		}
		if len(samples) != 1 || samples[0].value != 1 {
			return fmt.Errorf("up: %v", samples)
		}
		return nil
	}, dev, prom)

	// The app's call: anonymous watchlist interest in three symbols, every timeframe. The
	// replicator derives 15 job definitions and the orchestrator backfills them.
	symbols := []string{"AAPL", "MSFT", "NVDA"}
	dev.sync(t, symbols, "watchlist")
	conn, err := pgx.Connect(t.Context(), dev.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(t.Context()))
	began := time.Now()
	eventually(t, 4*time.Minute, "backfill done", func() error { return backfilled(t.Context(), conn, symbols) }, dev, prom)
	t.Logf("backfill done in %s", time.Since(began).Round(time.Second))
	// The same symbols from the chart view: more tracking changes for the replicator and more
	// requests, recent enough for the rate windows of the latency panels.
	dev.sync(t, symbols, "chart_view")

	body := dev.get(t, "/metrics")
	promtool(t, strings.NewReader(body), "check", "metrics")
	m := regexp.MustCompile(`(?m)^backfill_provider_errors_total\{kind="retryable",provider="synthetic"\} (\S+)$`).FindStringSubmatch(body)
	require.NotNil(t, m, "retryable provider errors exposed")
	injected, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.Positive(t, injected, "--synthetic-error-rate injected errors")

	// Every panel's query returns a number (histogram quantiles of empty histograms are NaN,
	// which Grafana draws as nothing); panels by timeframe show every timeframe.
	queries := dashboardQueries(t, loadDashboard(t))
	pending := map[string]string{}
	for name, expr := range queries {
		pending[name] = expr
	}
	began = time.Now()
	eventually(t, 90*time.Second, "every dashboard query returns data", func() error {
		var errs []error
		for _, name := range sortedKeys(pending) {
			expr := pending[name]
			samples, err := prom.query(expr)
			if err == nil {
				err = returnsData(samples, expr)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w\n    %s", name, err, expr))
				continue
			}
			delete(pending, name)
		}
		return errors.Join(errs...)
	}, dev, prom)
	t.Logf("%d dashboard queries returned data within %s", len(queries), time.Since(began).Round(time.Second))

	// The shipped rules loaded, evaluate without error, have the shape the runbook relies on,
	// and none fires on this healthy system.
	eventually(t, 30*time.Second, "alert rules evaluated", func() error { return rulesHealthy(prom) }, dev, prom)

	require.NoError(t, prom.stop(), "prometheus exits cleanly on SIGTERM")
	require.NoError(t, dev.stop(), "backfill dev exits cleanly on SIGTERM")
}

// backfilled reports nil once the replicator has created every definition of symbols and each
// has its window covered, or a run failed for good (possible with injected errors).
func backfilled(ctx context.Context, conn *pgx.Conn, symbols []string) error {
	var total, pending int
	err := conn.QueryRow(ctx, `
SELECT count(*),
       count(*) FILTER (WHERE d.covered_at IS NULL AND NOT EXISTS (
         SELECT 1 FROM job_runs r WHERE r.job_def_id = d.id AND r.status = 'failed'))
FROM job_definitions d
WHERE d.symbol = ANY($1)`, symbols).Scan(&total, &pending)
	switch {
	case err != nil:
		return err
	case total != len(symbols)*len(timeframes):
		return fmt.Errorf("%d of %d job definitions", total, len(symbols)*len(timeframes))
	case pending > 0:
		return fmt.Errorf("%d of %d definitions not covered yet", pending, total)
	}
	return nil
}

// rulesHealthy checks the rules Prometheus loaded.
func rulesHealthy(prom *process) error {
	var res struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []struct {
					Name        string            `json:"name"`
					Type        string            `json:"type"`
					Health      string            `json:"health"`
					LastError   string            `json:"lastError"`
					State       string            `json:"state"`
					Duration    float64           `json:"duration"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := getJSON(prom.url+"/api/v1/rules", &res); err != nil {
		return err
	}
	var names []string
	for _, g := range res.Data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
			switch {
			case r.Type != "alerting":
				return fmt.Errorf("%s: a %s rule", r.Name, r.Type)
			case r.Health != "ok":
				return fmt.Errorf("%s: health %q %s", r.Name, r.Health, r.LastError)
			case r.Duration <= 0:
				return fmt.Errorf("%s: no for:", r.Name)
			case r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical":
				return fmt.Errorf("%s: severity %q", r.Name, r.Labels["severity"])
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				return fmt.Errorf("%s: summary or description missing", r.Name)
			case r.State == "firing":
				return fmt.Errorf("%s fires on a healthy system", r.Name)
			}
		}
	}
	sort.Strings(names)
	// BackfillDataStale is two rules (m15 and h1 have different `for:`).
	want := []string{"BackfillCoverageHoles", "BackfillDataStale", "BackfillDataStale", "BackfillOrchestratorNoTick", "BackfillQueuedRunTooOld",
		"BackfillReplicationSlotLagHigh", "BackfillReplicatorNotActive", "BackfillRunsFailing"}
	if !slices.Equal(names, want) {
		return fmt.Errorf("rules %v, want %v", names, want)
	}
	return nil
}

// Dashboard JSON, as far as the tests read it.
type (
	dashboard struct {
		UID           string  `json:"uid"`
		ID            *int    `json:"id"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name    string `json:"name"`
				Current struct {
					Value string `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
	}
	panel struct {
		ID         int            `json:"id"`
		Title      string         `json:"title"`
		Datasource *datasourceRef `json:"datasource"`
		GridPos    gridPos        `json:"gridPos"`
		Targets    []struct {
			RefID      string         `json:"refId"`
			Datasource *datasourceRef `json:"datasource"`
			Expr       string         `json:"expr"`
		} `json:"targets"`
	}
	datasourceRef struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	gridPos struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	}
)

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	require.NoError(t, dec.Decode(&d), dashboardFile)
	return d
}

func overlap(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// dashboardQueries returns every target's expression, named "panel title [refId]", with the
// dashboard's variables at their current values and Grafana's built-in ones at values that suit
// a 1 s scrape interval.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	vars := map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Current.Value
	}
	names := sortedKeys(vars)
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) }) // $__range before $__r…
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			expr := tg.Expr
			for _, n := range names {
				expr = strings.ReplaceAll(expr, "${"+n+"}", vars[n])
				expr = strings.ReplaceAll(expr, "$"+n, vars[n])
			}
			require.NotContains(t, expr, "$", "%s %s: unknown variable", p.Title, tg.RefID)
			out[fmt.Sprintf("%s [%s]", p.Title, tg.RefID)] = expr
		}
	}
	return out
}

var byTimeframe = regexp.MustCompile(`by \([^)]*\btimeframe\b`)

// returnsData checks an instant query's answer: at least one number (not NaN), and one per
// timeframe when the query groups by timeframe.
func returnsData(samples []sample, expr string) error {
	seen := map[string]bool{}
	for _, s := range samples {
		if !math.IsNaN(s.value) {
			seen[s.labels["timeframe"]] = true
		}
	}
	if len(seen) == 0 {
		return fmt.Errorf("no data: %d series, none a number", len(samples))
	}
	if byTimeframe.MatchString(expr) {
		for _, tf := range timeframes {
			if !seen[tf] {
				return fmt.Errorf("no data for timeframe %s", tf)
			}
		}
	}
	return nil
}

// sample is one value of an instant query.
type sample struct {
	labels map[string]string
	value  float64
}

func (p *process) query(expr string) ([]sample, error) {
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(p.url+"/api/v1/query?query="+url.QueryEscape(expr), &res); err != nil {
		return nil, err
	}
	if res.Status != "success" {
		return nil, fmt.Errorf("query failed: %s", res.Error)
	}
	var raw []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	switch res.Data.ResultType {
	case "vector":
		if err := json.Unmarshal(res.Data.Result, &raw); err != nil {
			return nil, err
		}
	case "scalar":
		raw = make([]struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}, 1)
		if err := json.Unmarshal(res.Data.Result, &raw[0].Value); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("result type %q", res.Data.ResultType)
	}
	out := make([]sample, 0, len(raw))
	for _, r := range raw {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %w", r.Value[1], err)
		}
		out = append(out, sample{labels: r.Metric, value: v})
	}
	return out, nil
}

func getJSON(u string, v any) error {
	resp, err := httpClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnprocessableEntity {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// tool returns the path of a Prometheus binary.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: `make prometheus` installs Debian's prometheus package (%v)", name, err)
	}
	return path
}

// promtool runs promtool with args in this folder and returns its output; it fails the test
// when promtool does.
func promtool(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), tool(t, "promtool"), args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func buildBackfill(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backfill")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/backfill")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/backfill:\n%s", out)
	return bin
}

// process is a program the test started; its output goes to a log file shown when the test
// fails.
type process struct {
	name  string
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
	err   error // of Wait, once done is closed
	once  sync.Once
	stopE error

	url   string // its HTTP address
	addr  string // host:port of url
	dbURL string // backfill dev only
	key   string // backfill dev only: the anon key it printed
}

func start(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	dir := t.TempDir()
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	require.NoError(t, err)
	defer f.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			t.Logf("last lines of %s's output (%s):\n%s", name, p.log, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return p
}

// exited reports an error once the process has ended.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after a minute); it reports how the
// process ended. Idempotent.
func (p *process) stop() error {
	p.once.Do(func() {
		select {
		case <-p.done:
			p.stopE = fmt.Errorf("%s had exited: %v", p.name, p.err)
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			p.stopE = p.err
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopE = fmt.Errorf("%s ignored SIGTERM for a minute", p.name)
		}
	})
	return p.stopE
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// startDev runs `backfill dev` on free ports with a fresh data folder, no seed (only what the
// test tracks gets backfilled), the synthetic provider failing a fifth of its calls and a short
// tick, and returns once it is ready.
func startDev(t *testing.T, bin string) *process {
	t.Helper()
	dbPort, err := pgtest.FreePort()
	require.NoError(t, err)
	apiPort, err := pgtest.FreePort()
	require.NoError(t, err)
	p := start(t, "backfill-dev", bin, "dev",
		"--data-dir", pgtest.DataDir(t), "--db-port", strconv.Itoa(dbPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--no-seed",
		"--provider", "synthetic", "--synthetic-error-rate", "0.2", "--tick", "3s")
	p.addr = fmt.Sprintf("127.0.0.1:%d", apiPort)
	p.url = "http://" + p.addr
	eventually(t, time.Minute, "backfill dev ready", func() error {
		resp, err := httpClient.Get(p.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	}, p)
	out := p.output()
	db := regexp.MustCompile(`(?m)^database: (\S+)$`).FindStringSubmatch(out)
	key := regexp.MustCompile(`(?m)^anon key: (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, db, "banner names the database:\n%s", out)
	require.NotNil(t, key, "banner names the anon key:\n%s", out)
	p.dbURL, p.key = db[1], key[1]
	return p
}

// sync calls sync-user-symbols as the app does: a JSON POST with the anon key as bearer.
func (p *process) sync(t *testing.T, symbols []string, source string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"symbols": symbols, "source": source, "timeframes": timeframes})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.url+"/functions/v1/sync-user-symbols", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+p.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", answer)
	require.Contains(t, string(answer), `"success":true`)
}

func (p *process) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := httpClient.Get(p.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	return string(b)
}

// startPrometheus runs Prometheus with the shipped prometheus.yml and alerts.yml, changed only
// to scrape target every second and evaluate the rules every second, and returns once it is
// ready.
func startPrometheus(t *testing.T, bin, target string) *process {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	require.NoError(t, err)
	config := string(cfg)
	for _, r := range [][2]string{
		{`targets: ["127.0.0.1:54321"]`, fmt.Sprintf("targets: [%q]", target)},
		{"scrape_interval: 15s", "scrape_interval: 1s"},
		{"evaluation_interval: 15s", "evaluation_interval: 1s"},
	} {
		require.Equal(t, 1, strings.Count(config, r[0]), "prometheus.yml has %q once", r[0])
		config = strings.Replace(config, r[0], r[1], 1)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644))
	rules, err := os.ReadFile("prometheus/alerts.yml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644))

	port, err := pgtest.FreePort()
	require.NoError(t, err)
	p := start(t, "prometheus", bin,
		"--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port), "--log.level", "warn")
	p.addr = fmt.Sprintf("127.0.0.1:%d", port)
	p.url = "http://" + p.addr
	eventually(t, time.Minute, "prometheus ready", func() error {
		resp, err := httpClient.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	}, p)
	return p
}

// eventually calls check until it returns nil, and fails the test with check's last error after
// within, or at once when one of procs has exited.
func eventually(t *testing.T, within time.Duration, what string, check func() error, procs ...*process) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		for _, p := range procs {
			if perr := p.exited(); perr != nil {
				t.Fatalf("%s: %v (last check: %v)", what, perr, err)
			}
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-deadline.C:
			t.Fatalf("%s: not after %s:\n%v", what, within, err)
		case <-poll.C:
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
