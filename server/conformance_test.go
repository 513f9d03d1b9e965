package server_test

// Conformance: a running server driven by clients no one here wrote. supabase-js calls the
// function path through functions.invoke (server/testdata/supabase-js, pinned by its
// package-lock.json and installed by `make conformance-deps`); buf curl calls SymbolSyncService
// over Connect, gRPC and gRPC-Web with its schema from the server's reflection (tools/buf, `make
// buf`). `make test` installs both. Missing tools fail these tests rather than skip them silently;
// BACKFILL_SKIP_CONFORMANCE=1 skips the tests that need them, on purpose. The CORS preflight
// needs neither.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/server"
)

const (
	skipConformanceEnv = "BACKFILL_SKIP_CONFORMANCE"
	// Paths from the package directory, where go test runs the tests.
	supabaseJSDir = "testdata/supabase-js"
	bufPath       = "../tools/buf/node_modules/.bin/buf"
)

// skipConformance skips the test when BACKFILL_SKIP_CONFORMANCE=1.
func skipConformance(t *testing.T) {
	t.Helper()
	if os.Getenv(skipConformanceEnv) == "1" {
		t.Skipf("%s=1", skipConformanceEnv)
	}
}

// conformanceMissing fails the test for a missing client.
func conformanceMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf(format+"\nRun `make test` from the repository root (it installs node, supabase-js and buf), or set %s=1 to skip the conformance tests.",
		append(args, skipConformanceEnv)...)
}

// supabaseJS is node with the pinned supabase-js and invoke.mjs.
type supabaseJS struct {
	node, dir string
}

// newSupabaseJS finds node and checks that the installed supabase-js is the pinned one.
func newSupabaseJS(t *testing.T) supabaseJS {
	t.Helper()
	skipConformance(t)
	node, err := exec.LookPath("node")
	if err != nil {
		conformanceMissing(t, "node not found on PATH: %v", err)
	}
	dir, err := filepath.Abs(supabaseJSDir)
	require.NoError(t, err)
	var pinned struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &pinned))
	want := pinned.Dependencies["@supabase/supabase-js"]
	require.NotEmpty(t, want, "package.json pins @supabase/supabase-js")

	var installed struct {
		Version string `json:"version"`
	}
	raw, err = os.ReadFile(filepath.Join(dir, "node_modules", "@supabase", "supabase-js", "package.json"))
	if errors.Is(err, os.ErrNotExist) {
		conformanceMissing(t, "supabase-js is not installed in %s/node_modules", supabaseJSDir)
	}
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &installed))
	if installed.Version != want {
		t.Fatalf("%s/node_modules has supabase-js %s, package.json pins %s: run `make conformance-deps` (or `make test`)", supabaseJSDir, installed.Version, want)
	}
	return supabaseJS{node: node, dir: dir}
}

// jsCall is one functions.invoke call of invoke.mjs.
type jsCall struct {
	Function string `json:"function,omitempty"` // default sync-user-symbols
	Method   string `json:"method,omitempty"`   // default POST
	Body     any    `json:"body,omitempty"`
}

// jsResult is invoke.mjs's line for one call: what functions.invoke returned.
type jsResult struct {
	Status int             `json:"status"`
	Data   json.RawMessage `json:"data"`
	Error  *jsError        `json:"error"`
}

// jsError is the error functions.invoke returned; Status and Body come from error.context, the
// Response a FunctionsHttpError carries.
type jsError struct {
	Name    string          `json:"name"`
	Message string          `json:"message"`
	Status  int             `json:"status"`
	Body    json.RawMessage `json:"body"`
}

// invoke runs invoke.mjs: a supabase-js client for a.url with key and, when token is not
// empty, a signed-in user's access token, making calls in order.
func (js supabaseJS) invoke(t *testing.T, a *api, key, token string, calls ...jsCall) []jsResult {
	t.Helper()
	arg, err := json.Marshal(calls)
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), js.node, "invoke.mjs", string(arg))
	cmd.Dir = js.dir
	cmd.Env = append(os.Environ(), "SUPABASE_URL="+a.url, "SUPABASE_KEY="+key, "SUPABASE_ACCESS_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "node invoke.mjs\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, len(calls), "one line per call\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	out := make([]jsResult, len(lines))
	for i, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&out[i]), "line %d: %s", i, line)
	}
	return out
}

// requireData asserts a successful call and returns its data as JSON text.
func requireData(t *testing.T, r jsResult) string {
	t.Helper()
	require.Nil(t, r.Error, "functions.invoke returned an error: %+v", r.Error)
	require.Equal(t, http.StatusOK, r.Status)
	return string(r.Data)
}

// requireHTTPError asserts a FunctionsHttpError with status and JSON body want.
func requireHTTPError(t *testing.T, r jsResult, status int, want string) {
	t.Helper()
	require.NotNil(t, r.Error, "want an error, got data %s", r.Data)
	require.Equal(t, "FunctionsHttpError", r.Error.Name, "%+v", r.Error)
	require.Equal(t, status, r.Error.Status)
	require.JSONEq(t, want, string(r.Error.Body))
	require.JSONEq(t, "null", string(r.Data))
}

// trackedRow is one user_symbol_tracking row; User is "" for anonymous interest (NULL).
type trackedRow struct {
	User, Symbol, Source string
	Priority             int
	Timeframes           []string
}

func (a *api) tracked(t *testing.T) []trackedRow {
	t.Helper()
	rows, err := a.pool.Query(t.Context(), `
		SELECT coalesce(t.user_id::text, ''), s.ticker, t.source, t.priority, t.timeframes
		FROM user_symbol_tracking t JOIN symbols s ON s.id = t.symbol_id
		ORDER BY 1, 2, 3`)
	require.NoError(t, err)
	defer rows.Close()
	var out []trackedRow
	for rows.Next() {
		var r trackedRow
		require.NoError(t, rows.Scan(&r.User, &r.Symbol, &r.Source, &r.Priority, &r.Timeframes))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestConformanceSupabaseJSAnonKey(t *testing.T) {
	t.Parallel()
	js := newSupabaseJS(t)
	a := startAPI(t, apiOptions{})
	res := js.invoke(t, a, server.LocalAnonKey, "",
		jsCall{Body: map[string]any{"symbols": []string{"aapl", " MSFT ", "AAPL"}, "source": "watchlist", "timeframes": []string{"m15", "h1", "h4", "d1", "w1"}}},
		jsCall{Body: map[string]any{"symbols": []string{"BTC/USD"}, "source": "chart_view"}},
	)
	// All seven fields, as the Swift client's strict decoder wants them.
	require.Equal(t, syncResponse{true, 2, 3, 5, 10, 300, "watchlist"}, decodeStrict(t, requireData(t, res[0])))
	require.Equal(t, syncResponse{true, 1, 1, 3, 3, 200, "chart_view"}, decodeStrict(t, requireData(t, res[1])))

	require.Equal(t, []trackedRow{
		{"", "AAPL", "watchlist", 300, []string{"m15", "h1", "h4", "d1", "w1"}},
		{"", "BTC/USD", "chart_view", 200, []string{"m15", "h1", "h4"}},
		{"", "MSFT", "watchlist", 300, []string{"m15", "h1", "h4", "d1", "w1"}},
	}, a.tracked(t), "the anon key records anonymous interest (user_id NULL)")
	var assetType string
	require.NoError(t, a.pool.QueryRow(t.Context(), "SELECT asset_type FROM symbols WHERE ticker = 'BTC/USD'").Scan(&assetType))
	require.Equal(t, "crypto", assetType)
}

func TestConformanceSupabaseJSUserToken(t *testing.T) {
	t.Parallel()
	js := newSupabaseJS(t)
	a := startAPI(t, apiOptions{})
	const carol = "3d4e5f60-7182-4394-a5b6-c7d8e9f0a1b2"
	token := a.userToken(t, carol)
	// Someone else's anonymous interest in the same symbol stays apart.
	requireData(t, js.invoke(t, a, server.LocalAnonKey, "", jsCall{Body: map[string]any{"symbols": []string{"NVDA"}, "source": "recent_search"}})[0])

	res := js.invoke(t, a, server.LocalAnonKey, token,
		jsCall{Body: map[string]any{"symbols": []string{"NVDA", "TSLA"}, "source": "recent_search", "timeframes": []string{"d1"}}})
	require.Equal(t, syncResponse{true, 2, 2, 1, 2, 100, "recent_search"}, decodeStrict(t, requireData(t, res[0])))
	require.Equal(t, []trackedRow{
		{"", "NVDA", "recent_search", 100, []string{"m15", "h1", "h4"}},
		{carol, "NVDA", "recent_search", 100, []string{"d1"}},
		{carol, "TSLA", "recent_search", 100, []string{"d1"}},
	}, a.tracked(t), "the user's token tracks for the user")
}

func TestConformanceSupabaseJSErrors(t *testing.T) {
	t.Parallel()
	js := newSupabaseJS(t)
	a := startAPI(t, apiOptions{})
	const dave = "8e9fa0b1-c2d3-44e5-96f7-a8b9c0d1e2f3"
	token := a.userToken(t, dave)

	res := js.invoke(t, a, server.LocalAnonKey, "",
		jsCall{Body: map[string]any{"symbols": []string{"AAPL"}, "source": "favourites"}},
		jsCall{Body: map[string]any{"symbols": []string{"AAPL"}, "source": "watchlist", "timeframes": []string{"1D"}}},
		jsCall{Function: "no-such-function", Body: map[string]any{"symbols": []string{"AAPL"}, "source": "watchlist"}},
	)
	requireHTTPError(t, res[0], http.StatusBadRequest, `{"error":"Invalid source. Must be: watchlist, recent_search, or chart_view"}`)
	requireHTTPError(t, res[1], http.StatusBadRequest, `{"error":"Invalid timeframe \"1D\". Must be one of: m15, h1, h4, d1, w1"}`)
	requireHTTPError(t, res[2], http.StatusNotFound, `{"code":"NOT_FOUND","message":"Requested function was not found"}`)

	// A session token the server does not accept.
	res = js.invoke(t, a, server.LocalAnonKey, "not-a-jwt", jsCall{Body: map[string]any{"symbols": []string{"AAPL"}, "source": "watchlist"}})
	requireHTTPError(t, res[0], http.StatusUnauthorized, `{"code":401,"message":"Invalid JWT"}`)
	require.Empty(t, a.tracked(t), "rejected calls write nothing")

	// DELETE untracks the caller's rows for those symbols and that source, nothing else.
	body := map[string]any{"symbols": []string{"AAPL", "MSFT"}, "source": "watchlist"}
	requireData(t, js.invoke(t, a, server.LocalAnonKey, "", jsCall{Body: body})[0])
	res = js.invoke(t, a, server.LocalAnonKey, token,
		jsCall{Body: body},
		jsCall{Body: map[string]any{"symbols": []string{"AAPL"}, "source": "chart_view"}},
		jsCall{Method: http.MethodDelete, Body: map[string]any{"symbols": []string{"aapl", "MSFT", "IBM"}, "source": "watchlist"}},
		jsCall{Method: http.MethodDelete, Body: map[string]any{"symbols": []string{"AAPL"}, "source": "favourites"}},
	)
	requireData(t, res[0])
	requireData(t, res[1])
	require.JSONEq(t, `{"success":true,"symbols_untracked":2,"symbols_requested":3,"source":"watchlist"}`, requireData(t, res[2]))
	requireHTTPError(t, res[3], http.StatusBadRequest, `{"error":"Invalid source. Must be: watchlist, recent_search, or chart_view"}`)
	require.Equal(t, []trackedRow{
		{"", "AAPL", "watchlist", 300, []string{"m15", "h1", "h4"}},
		{"", "MSFT", "watchlist", 300, []string{"m15", "h1", "h4"}},
		{dave, "AAPL", "chart_view", 200, []string{"m15", "h1", "h4"}},
	}, a.tracked(t))
}

func TestConformanceSupabaseJSAPIKeys(t *testing.T) {
	t.Parallel()
	js := newSupabaseJS(t)
	// supabase-js sends an sb_ key only in apikey, never as a Bearer token to functions: the
	// server must find it there.
	for _, tc := range []struct {
		name, key string
	}{
		{"publishable", publishable},
		{"secret", secretKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startAPI(t, apiOptions{})
			res := js.invoke(t, a, tc.key, "", jsCall{Body: map[string]any{"symbols": []string{"AMD"}, "source": "watchlist"}})
			require.Equal(t, syncResponse{true, 1, 1, 3, 3, 300, "watchlist"}, decodeStrict(t, requireData(t, res[0])))
			require.Equal(t, []trackedRow{{"", "AMD", "watchlist", 300, []string{"m15", "h1", "h4"}}}, a.tracked(t), "API keys track anonymously")
		})
	}
	t.Run("unknown publishable", func(t *testing.T) {
		t.Parallel()
		a := startAPI(t, apiOptions{})
		res := js.invoke(t, a, "sb_publishable_unknown", "", jsCall{Body: map[string]any{"symbols": []string{"AMD"}, "source": "watchlist"}})
		requireHTTPError(t, res[0], http.StatusUnauthorized, `{"code":401,"message":"Invalid JWT"}`)
		require.Empty(t, a.tracked(t))
	})
}

// commaList splits a header list such as "GET, POST" into lower-case items.
func commaList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.ToLower(strings.TrimSpace(item)); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func TestConformancePreflight(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	// What a browser sends before functions.invoke: no credentials, the method and the
	// non-safelisted headers supabase-js adds. Chromium sends the header names lower-case, sorted,
	// without spaces; the second spelling is Supabase's CORS list.
	for _, tc := range []struct {
		method, requestHeaders string
	}{
		{http.MethodPost, "apikey,authorization,content-type,x-client-info"},
		{http.MethodPost, "authorization, x-client-info, apikey, content-type"},
		{http.MethodDelete, "apikey,authorization,content-type,x-client-info"},
	} {
		t.Run(tc.method+" "+tc.requestHeaders, func(t *testing.T) {
			r := do(t, http.MethodOptions, a.url+"/functions/v1/sync-user-symbols", headers(
				"Origin", "http://localhost:3000",
				"Access-Control-Request-Method", tc.method,
				"Access-Control-Request-Headers", tc.requestHeaders,
				"Sec-Fetch-Mode", "cors",
				"Sec-Fetch-Site", "cross-site",
				"Sec-Fetch-Dest", "empty",
				"Referer", "http://localhost:3000/",
				"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
				"Accept", "*/*",
			), "")
			require.Equal(t, http.StatusOK, r.status)
			require.Empty(t, r.body)
			require.Contains(t, []string{"*", "http://localhost:3000"}, r.header.Get("Access-Control-Allow-Origin"))
			require.Contains(t, commaList(r.header.Get("Access-Control-Allow-Methods")), strings.ToLower(tc.method))
			allowed := commaList(r.header.Get("Access-Control-Allow-Headers"))
			for _, h := range commaList(tc.requestHeaders) {
				require.True(t, slices.Contains(allowed, h) || slices.Contains(allowed, "*"), "header %q not allowed by %q", h, allowed)
			}
		})
	}
}

// bufCLI is the pinned buf.
type bufCLI string

func newBufCLI(t *testing.T) bufCLI {
	t.Helper()
	skipConformance(t)
	buf, err := filepath.Abs(bufPath)
	require.NoError(t, err)
	if _, err := os.Stat(buf); err != nil {
		conformanceMissing(t, "buf is not installed at %s: %v", bufPath, err)
	}
	return bufCLI(buf)
}

// curl runs `buf curl args…` and returns its output and exit code.
func (buf bufCLI) curl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), string(buf), append([]string{"curl"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		require.NoError(t, err, "buf curl %s", strings.Join(args, " "))
	}
	return out.String(), errOut.String(), code
}

// requireCurl runs buf curl, requires it to succeed and returns its output.
func (buf bufCLI) requireCurl(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := buf.curl(t, args...)
	require.Zero(t, code, "buf curl %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout, stderr)
	return stdout
}

func TestConformanceBufCurl(t *testing.T) {
	t.Parallel()
	buf := newBufCLI(t)
	a := startAPI(t, apiOptions{})
	const svc = "/symbolsync.v1.SymbolSyncService/"
	anon := "Authorization: Bearer " + server.LocalAnonKey
	const erin = "0f1e2d3c-4b5a-4697-8877-66554433221a"

	// The clients' calls run in parallel on the one server; each tracks its own symbol.
	t.Run("clients", func(t *testing.T) {
		t.Run("list methods", func(t *testing.T) {
			t.Parallel()
			out := buf.requireCurl(t, "--http2-prior-knowledge", "--list-methods", a.url)
			methods := strings.Fields(out)
			for _, m := range []string{"SyncUserSymbols", "UntrackUserSymbols", "ListTrackedSymbols"} {
				require.Contains(t, methods, "symbolsync.v1.SymbolSyncService/"+m, out)
			}
		})

		for _, tc := range []struct{ protocol, symbol string }{
			{"connect", "AAPL"},
			{"grpc", "MSFT"},
			{"grpcweb", "NVDA"},
		} {
			t.Run(tc.protocol, func(t *testing.T) {
				t.Parallel()
				out := buf.requireCurl(t, "--http2-prior-knowledge", "--protocol", tc.protocol, "-H", anon,
					"-d", `{"symbols":["`+strings.ToLower(tc.symbol)+`"],"source":"watchlist"}`, a.url+svc+"SyncUserSymbols")
				require.Equal(t, syncResponse{true, 1, 1, 3, 3, 300, "watchlist"}, decodeStrict(t, out), "buf curl prints the snake_case JSON names")

				// A zero count only shows with --emit-defaults.
				out = buf.requireCurl(t, "--http2-prior-knowledge", "--protocol", tc.protocol, "-H", anon, "--emit-defaults",
					"-d", `{"symbols":["`+tc.symbol+`-X"],"source":"watchlist"}`, a.url+svc+"UntrackUserSymbols")
				require.JSONEq(t, `{"success":true,"symbols_untracked":0,"symbols_requested":1,"source":"watchlist"}`, out)

				_, stderr, code := buf.curl(t, "--http2-prior-knowledge", "--protocol", tc.protocol,
					"-d", `{"symbols":["`+tc.symbol+`"],"source":"watchlist"}`, a.url+svc+"SyncUserSymbols")
				require.Equal(t, 16<<3, code, "no credentials: exit code unauthenticated (16) << 3\n%s", stderr)
				require.JSONEq(t, `{"code":"unauthenticated","message":"missing authorization header"}`, stderr)

				_, stderr, code = buf.curl(t, "--http2-prior-knowledge", "--protocol", tc.protocol, "-H", anon,
					"-d", `{"symbols":["`+tc.symbol+`"],"source":"favourites"}`, a.url+svc+"SyncUserSymbols")
				require.Equal(t, 3<<3, code, "exit code invalid_argument (3) << 3\n%s", stderr)
				require.JSONEq(t, `{"code":"invalid_argument","message":"Invalid source. Must be: watchlist, recent_search, or chart_view"}`, stderr)
			})
		}

		t.Run("user token", func(t *testing.T) {
			t.Parallel()
			user := "Authorization: Bearer " + a.userToken(t, erin)
			buf.requireCurl(t, "--http2-prior-knowledge", "--protocol", "grpc", "-H", user,
				"-d", `{"symbols":["AMZN"],"source":"chart_view","timeframes":["h4"]}`, a.url+svc+"SyncUserSymbols")
			out := buf.requireCurl(t, "--http2-prior-knowledge", "-H", user, "--emit-defaults", "-d", `{}`, a.url+svc+"ListTrackedSymbols")
			var list struct {
				Symbols []map[string]any `json:"symbols"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &list), out)
			require.Len(t, list.Symbols, 1, "only the caller's own symbols: %s", out)
			got := list.Symbols[0]
			require.NotEmpty(t, got["tracked_at"])
			delete(got, "tracked_at")
			require.Equal(t, map[string]any{
				"symbol": "AMZN", "source": "chart_view", "priority": float64(200), "timeframes": []any{"h4"},
				"m15_bars": float64(0), "h1_bars": float64(0), "h4_bars": float64(0), "d1_bars": float64(0), "w1_bars": float64(0),
				"jobs_pending": float64(0), "jobs_running": float64(0),
			}, got)
		})
	})
	require.Equal(t, []trackedRow{
		{"", "AAPL", "watchlist", 300, []string{"m15", "h1", "h4"}},
		{"", "MSFT", "watchlist", 300, []string{"m15", "h1", "h4"}},
		{"", "NVDA", "watchlist", 300, []string{"m15", "h1", "h4"}},
		{erin, "AMZN", "chart_view", 200, []string{"h4"}},
	}, a.tracked(t), "the calls wrote what they answered; rejected calls wrote nothing")
}
