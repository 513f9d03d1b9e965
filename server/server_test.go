package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/completeness"
	"github.com/symbolsync/backfill/control"
	symbolsyncv1 "github.com/symbolsync/backfill/gen/symbolsync/v1"
	"github.com/symbolsync/backfill/gen/symbolsync/v1/symbolsyncv1connect"
	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// api is a running server on loopback with its own database.
type api struct {
	url  string
	pool *pgxpool.Pool
	reg  *prometheus.Registry
	srv  *server.Server
	hs   *http.Server
}

type apiOptions struct {
	functions      map[string]server.FunctionConfig
	maxBody        int64
	requestTimeout time.Duration
	// control, when not nil, serves ControlService with this configuration (its Pool and
	// Registerer are the test's).
	control *control.Config
	// checker, when set with control, gives the control plane a completeness checker of the
	// test's database on this clock (VerifyCoverage).
	checker func() time.Time
}

// startAPI serves a real server (HTTP/1.1 and h2c) on a loopback port for the test.
func startAPI(t *testing.T, opts apiOptions) *api {
	t.Helper()
	pool := pgtest.DB(t)
	auth, err := server.NewJWTAuth(server.AuthConfig{
		Users:           server.NewPgUserLookup(pool),
		PublishableKeys: []string{publishable},
		SecretKeys:      []string{secretKey},
	})
	require.NoError(t, err)
	require.NoError(t, auth.Start(t.Context()))
	t.Cleanup(func() { _ = auth.Stop(context.Background()) })
	reg := prometheus.NewRegistry()
	var ctl *control.Service
	if opts.control != nil {
		cfg := *opts.control
		cfg.Pool, cfg.Registerer = pool, reg
		if opts.checker != nil {
			cfg.Checker, err = completeness.New(completeness.Config{Pool: pool, Grid: market.SyntheticGrid(market.RegularHours), Now: opts.checker})
			require.NoError(t, err)
		}
		ctl, err = control.New(cfg)
		require.NoError(t, err)
	}
	srv, err := server.New(server.Config{Pool: pool, Auth: auth, Registry: reg, Functions: opts.functions,
		MaxBodyBytes: opts.maxBody, RequestTimeout: opts.requestTimeout, Control: ctl})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := server.NewHTTPServer(srv.Handler())
	done := make(chan struct{})
	go func() { _ = hs.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Draining()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	})
	return &api{url: "http://" + ln.Addr().String(), pool: pool, reg: reg, srv: srv, hs: hs}
}

// userToken signs an access token for a user that exists in the test database.
func (a *api) userToken(t *testing.T, id string) string {
	t.Helper()
	_, err := a.pool.Exec(t.Context(), "INSERT INTO auth.users (id) VALUES ($1) ON CONFLICT DO NOTHING", id)
	require.NoError(t, err)
	return hs(t, userJWT(id))
}

func userJWT(sub string) map[string]any {
	return map[string]any{
		"sub": sub, "role": "authenticated", "aud": "authenticated",
		"iss": server.LocalIssuer, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	}
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header http.Header, body string) httpResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func (a *api) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, a.pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// syncResponse is the Swift client's SymbolSyncResponse: every field required.
type syncResponse struct {
	Success          bool   `json:"success"`
	SymbolsTracked   int    `json:"symbols_tracked"`
	SymbolsRequested int    `json:"symbols_requested"`
	Timeframes       int    `json:"timeframes"`
	JobsUpdated      int    `json:"jobs_updated"`
	Priority         int    `json:"priority"`
	Source           string `json:"source"`
}

// decodeStrict decodes like Swift's JSONDecoder into a struct of non-optional fields: every
// field must be present with the right type, and (stricter still) nothing else may be there.
func decodeStrict(t *testing.T, body string) syncResponse {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(body), &fields))
	for _, k := range []string{"success", "symbols_tracked", "symbols_requested", "timeframes", "jobs_updated", "priority", "source"} {
		require.Contains(t, fields, k)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var r syncResponse
	require.NoError(t, dec.Decode(&r))
	return r
}

func requireFunctionHeaders(t *testing.T, h http.Header) {
	t.Helper()
	require.Equal(t, "*", h.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "authorization, x-client-info, apikey, content-type", h.Get("Access-Control-Allow-Headers"))
	require.Equal(t, "GET, POST, PUT, DELETE, OPTIONS", h.Get("Access-Control-Allow-Methods"))
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.Equal(t, "no-cache, no-store, must-revalidate", h.Get("Cache-Control"))
	require.Equal(t, "no-cache", h.Get("Pragma"))
	require.Equal(t, "0", h.Get("Expires"))
}

func TestFunctionSwiftClientReplay(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	// Exactly what SymbolSyncService.swift sends: two headers, JSONEncoder's key order.
	r := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols",
		headers("Authorization", "Bearer "+server.LocalAnonKey, "Content-Type", "application/json"),
		`{"symbols":["AAPL"],"source":"watchlist","timeframes":["m15","h1","h4","d1","w1"]}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	requireFunctionHeaders(t, r.header)
	require.Equal(t, syncResponse{true, 1, 1, 5, 5, 300, "watchlist"}, decodeStrict(t, r.body))
	require.Equal(t, `{"success":true,"symbols_tracked":1,"symbols_requested":1,"timeframes":5,"jobs_updated":5,"priority":300,"source":"watchlist"}`, r.body)

	var user *string
	var tfs []string
	require.NoError(t, a.pool.QueryRow(t.Context(), "SELECT user_id::text, timeframes FROM user_symbol_tracking").Scan(&user, &tfs))
	require.Nil(t, user, "the anon key records anonymous interest")
	require.Equal(t, []string{"m15", "h1", "h4", "d1", "w1"}, tfs)

	// The deployment guide's example: AAPL from the watchlist with 3 timeframes gives 1/1/3/3/300.
	r = do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols",
		headers("Authorization", "Bearer "+server.LocalAnonKey, "Content-Type", "application/json"),
		`{"symbols":["AAPL"],"source":"watchlist","timeframes":["m15","h1","h4"]}`)
	require.Equal(t, syncResponse{true, 1, 1, 3, 3, 300, "watchlist"}, decodeStrict(t, r.body))
}

func TestFunctionPreflight(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	r := do(t, http.MethodOptions, a.url+"/functions/v1/sync-user-symbols",
		headers("Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type"), "")
	require.Equal(t, http.StatusOK, r.status)
	require.Empty(t, r.body)
	require.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "authorization, x-client-info, apikey, content-type", r.header.Get("Access-Control-Allow-Headers"))
	require.Equal(t, "GET, POST, PUT, DELETE, OPTIONS", r.header.Get("Access-Control-Allow-Methods"))
}

func TestFunctionBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{maxBody: 1024})
	anon := headers("Authorization", "Bearer "+server.LocalAnonKey, "Content-Type", "application/json")
	for _, tc := range []struct {
		name, method, body string
		status             int
		want               string
	}{
		{"no body", "POST", "", 400, `{"error":"Request body is empty: send a JSON object with symbols and source"}`},
		{"invalid JSON", "POST", `{"symbols":`, 400, `{"error":"Invalid JSON in request body: unexpected end of JSON input"}`},
		{"not an object", "POST", `["AAPL"]`, 400, `{"error":"Request body must be a JSON object with symbols and source"}`},
		{"symbols wrong type", "POST", `{"symbols":"AAPL","source":"watchlist"}`, 400, `{"error":"Invalid request body: symbols must be an array of strings"}`},
		{"source wrong type", "POST", `{"symbols":["AAPL"],"source":3}`, 400, `{"error":"Invalid request body: source must be a string"}`},
		{"timeframes wrong type", "POST", `{"symbols":["AAPL"],"source":"watchlist","timeframes":"m15"}`, 400, `{"error":"Invalid request body: timeframes must be an array of strings"}`},
		{"symbols missing", "POST", `{"source":"watchlist"}`, 400, `{"error":"No symbols provided"}`},
		{"symbols empty", "POST", `{"symbols":[],"source":"watchlist"}`, 400, `{"error":"No symbols provided"}`},
		{"symbol empty", "POST", `{"symbols":["AAPL",""],"source":"watchlist"}`, 400, `{"error":"Invalid symbol: empty"}`},
		{"symbol too long", "POST", `{"symbols":["ABCDEFGHIJKLMNOPQ"],"source":"watchlist"}`, 400, `{"error":"Invalid symbol \"ABCDEFGHIJKLMNOPQ\": longer than 16 characters"}`},
		{"symbol malformed", "POST", `{"symbols":["AA;PL"],"source":"watchlist"}`, 400, `{"error":"Invalid symbol \"AA;PL\": use letters, digits, '.', '-' or '/'"}`},
		{"too many symbols", "POST", `{"symbols":[` + strings.Repeat(`"A",`, 100) + `"B"],"source":"watchlist"}`, 400, `{"error":"Too many symbols: 101 (at most 100 per request)"}`},
		{"unknown source", "POST", `{"symbols":["AAPL"],"source":"favourites"}`, 400, `{"error":"Invalid source. Must be: watchlist, recent_search, or chart_view"}`},
		{"unknown timeframe", "POST", `{"symbols":["AAPL"],"source":"watchlist","timeframes":["m15","1D"]}`, 400, `{"error":"Invalid timeframe \"1D\". Must be one of: m15, h1, h4, d1, w1"}`},
		{"body over the limit", "POST", `{"symbols":["AAPL"],"source":"watchlist","pad":"` + strings.Repeat("x", 2048) + `"}`, 413, `{"code":413,"message":"Payload too large: the limit is 1024 bytes"}`},
		{"wrong method", "GET", "", 405, `{"error":"Method GET not allowed: POST tracks symbols, DELETE untracks them"}`},
		{"wrong method with body", "PUT", `{"symbols":["AAPL"],"source":"watchlist"}`, 405, `{"error":"Method PUT not allowed: POST tracks symbols, DELETE untracks them"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, a.url+"/functions/v1/sync-user-symbols", anon, tc.body)
			require.Equal(t, tc.status, r.status, r.body)
			require.JSONEq(t, tc.want, r.body)
			requireFunctionHeaders(t, r.header)
		})
	}
	require.Zero(t, a.count(t, "symbols"))
	require.Zero(t, a.count(t, "user_symbol_tracking"))
}

func TestFunctionGateway(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	const body = `{"symbols":["AAPL"],"source":"watchlist"}`
	const alice = "5b7e9f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	aliceToken := a.userToken(t, alice)
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
		want   string
	}{
		{"unknown function", "/functions/v1/nope", headers("Authorization", "Bearer "+server.LocalAnonKey), 404, `{"code":"NOT_FOUND","message":"Requested function was not found"}`},
		{"no credentials", "/functions/v1/sync-user-symbols", nil, 401, `{"code":401,"message":"Missing authorization header"}`},
		{"garbage bearer", "/functions/v1/sync-user-symbols", headers("Authorization", "Bearer not-a-jwt"), 401, `{"code":401,"message":"Invalid JWT"}`},
		{"unknown sb_ key", "/functions/v1/sync-user-symbols", headers("apikey", "sb_publishable_unknown"), 401, `{"code":401,"message":"Invalid JWT"}`},
		{"user not in auth.users", "/functions/v1/sync-user-symbols", headers("Authorization", "Bearer "+hs(t, userJWT("0a0a0a0a-0000-4000-8000-000000000000"))), 401, `{"code":401,"message":"Invalid JWT"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, a.url+tc.path, tc.header, body)
			require.Equal(t, tc.status, r.status, r.body)
			require.JSONEq(t, tc.want, r.body)
		})
	}
	require.Zero(t, a.count(t, "user_symbol_tracking"), "rejected requests write nothing")

	for _, h := range []http.Header{
		headers("Authorization", "Bearer "+aliceToken),
		headers("Authorization", "Bearer "+server.LocalServiceRoleKey),
		headers("apikey", publishable),
		headers("apikey", secretKey),
	} {
		r := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", h, body)
		require.Equal(t, http.StatusOK, r.status, r.body)
	}
	var users []string
	require.NoError(t, a.pool.QueryRow(t.Context(), "SELECT array_agg(coalesce(user_id::text, 'anonymous') ORDER BY user_id NULLS FIRST) FROM user_symbol_tracking").Scan(&users))
	require.Equal(t, []string{"anonymous", alice}, users, "a user token tracks for the user; keys track anonymously")

	// DELETE untracks the caller's row only.
	r := do(t, http.MethodDelete, a.url+"/functions/v1/sync-user-symbols", headers("Authorization", "Bearer "+aliceToken), body)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.JSONEq(t, `{"success":true,"symbols_untracked":1,"symbols_requested":1,"source":"watchlist"}`, r.body)
	require.Equal(t, 1, a.count(t, "user_symbol_tracking"))
}

func TestFunctionWithoutVerifyJWT(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{functions: map[string]server.FunctionConfig{server.SyncFunctionName: {VerifyJWT: false}}})
	r := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", nil, `{"symbols":["AAPL"],"source":"recent_search"}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	// A present but bad credential is still refused.
	r = do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", headers("Authorization", "Bearer x.y.z"), `{"symbols":["AAPL"],"source":"recent_search"}`)
	require.Equal(t, http.StatusUnauthorized, r.status)
}

// bearerTransport adds a credential to every request of a generated client.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(r)
}

// h2cTransport speaks HTTP/2 with prior knowledge over plain TCP, as gRPC needs.
func h2cTransport() *http.Transport {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: p}
}

func newClient(a *api, token string, opt ...connect.ClientOption) symbolsyncv1connect.SymbolSyncServiceClient {
	tr := h2cTransport()
	return symbolsyncv1connect.NewSymbolSyncServiceClient(&http.Client{Transport: bearerTransport{token: token, base: tr}}, a.url, opt...)
}

func TestGeneratedClientOverEveryProtocol(t *testing.T) {
	t.Parallel()
	for _, proto := range []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect", nil},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			a := startAPI(t, apiOptions{})
			ctx := t.Context()
			const bob = "7c8d9e0f-1a2b-4c3d-9e4f-5a6b7c8d9e0f"
			c := newClient(a, a.userToken(t, bob), proto.opts...)

			res, err := c.SyncUserSymbols(ctx, &symbolsyncv1.SyncUserSymbolsRequest{Symbols: []string{"aapl", "MSFT", "AAPL"}, Source: "chart_view", Timeframes: []string{"h1", "d1"}})
			require.NoError(t, err)
			require.Equal(t, int32(2), res.GetSymbolsTracked())
			require.Equal(t, int32(3), res.GetSymbolsRequested())
			require.Equal(t, int32(2), res.GetTimeframes())
			require.Equal(t, int32(4), res.GetJobsUpdated())
			require.Equal(t, int32(200), res.GetPriority())
			require.True(t, res.GetSuccess())

			list, err := c.ListTrackedSymbols(ctx, &symbolsyncv1.ListTrackedSymbolsRequest{})
			require.NoError(t, err)
			require.Len(t, list.GetSymbols(), 2)
			require.Equal(t, "AAPL", list.GetSymbols()[0].GetSymbol())
			require.Equal(t, []string{"h1", "d1"}, list.GetSymbols()[0].GetTimeframes())
			require.False(t, list.GetSymbols()[0].GetTrackedAt().AsTime().IsZero())

			un, err := c.UntrackUserSymbols(ctx, &symbolsyncv1.UntrackUserSymbolsRequest{Symbols: []string{"MSFT"}, Source: "chart_view"})
			require.NoError(t, err)
			require.Equal(t, int32(1), un.GetSymbolsUntracked())

			_, err = c.SyncUserSymbols(ctx, &symbolsyncv1.SyncUserSymbolsRequest{Symbols: []string{"AAPL"}, Source: "favourites"})
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
			var cerr *connect.Error
			require.True(t, errors.As(err, &cerr))
			require.Equal(t, "Invalid source. Must be: watchlist, recent_search, or chart_view", cerr.Message())

			_, err = newClient(a, "", proto.opts...).ListTrackedSymbols(ctx, &symbolsyncv1.ListTrackedSymbolsRequest{})
			require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err))
			_, err = newClient(a, "garbage", proto.opts...).SyncUserSymbols(ctx, &symbolsyncv1.SyncUserSymbolsRequest{Symbols: []string{"X"}, Source: "watchlist"})
			require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err))
			require.Equal(t, 1, a.count(t, "user_symbol_tracking"))
		})
	}
}

func TestConnectJSONEqualsFunctionJSON(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	h := headers("Authorization", "Bearer "+server.LocalAnonKey, "Content-Type", "application/json")
	body := `{"symbols":["NVDA"],"source":"recent_search","timeframes":["w1"]}`
	fn := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", h, body)
	rpc := do(t, http.MethodPost, a.url+symbolsyncv1connect.SymbolSyncServiceSyncUserSymbolsProcedure, h, body)
	require.Equal(t, http.StatusOK, fn.status, fn.body)
	require.Equal(t, http.StatusOK, rpc.status, rpc.body)
	require.JSONEq(t, fn.body, rpc.body, "the Connect path answers with the same JSON, snake_case and zero values included")
	require.Equal(t, syncResponse{true, 1, 1, 1, 1, 100, "recent_search"}, decodeStrict(t, rpc.body))

	// An invalid argument over Connect JSON carries the same message.
	bad := do(t, http.MethodPost, a.url+symbolsyncv1connect.SymbolSyncServiceSyncUserSymbolsProcedure, h, `{"symbols":[],"source":"watchlist"}`)
	require.Equal(t, http.StatusBadRequest, bad.status)
	require.JSONEq(t, `{"code":"invalid_argument","message":"No symbols provided"}`, bad.body)
}

func TestHealthReflectionAndMetrics(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	r := do(t, http.MethodGet, a.url+"/readyz", nil, "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	r = do(t, http.MethodPost, a.url+"/grpc.health.v1.Health/Check", headers("Content-Type", "application/json"), `{}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.JSONEq(t, `{"status":"SERVING_STATUS_SERVING"}`, r.body)

	anon := headers("Authorization", "Bearer "+server.LocalAnonKey, "Content-Type", "application/json")
	do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", anon, `{"symbols":["AAPL"],"source":"watchlist"}`)
	do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", anon, `{"symbols":[],"source":"watchlist"}`)
	do(t, http.MethodPost, a.url+symbolsyncv1connect.SymbolSyncServiceSyncUserSymbolsProcedure, anon, `{"symbols":["AAPL"],"source":"watchlist"}`)

	m := do(t, http.MethodGet, a.url+"/metrics", nil, "")
	require.Equal(t, http.StatusOK, m.status)
	require.Contains(t, m.body, `backfill_server_requests_total{code="200",procedure="/functions/v1/sync-user-symbols",protocol="function"} 1`)
	require.Contains(t, m.body, `backfill_server_requests_total{code="400",procedure="/functions/v1/sync-user-symbols",protocol="function"} 1`)
	require.Contains(t, m.body, `backfill_server_requests_total{code="ok",procedure="/symbolsync.v1.SymbolSyncService/SyncUserSymbols",protocol="connect"} 1`)
	require.Contains(t, m.body, `backfill_server_request_duration_seconds_bucket{procedure="/functions/v1/sync-user-symbols",protocol="function",le="+Inf"} 2`)
	n, err := testutil.GatherAndCount(a.reg, "backfill_server_requests_total")
	require.NoError(t, err)
	require.Equal(t, 3, n)
}

func TestConcurrentSyncsOverHTTP(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	users := []string{"", "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-000000000000"}
	tokens := []string{server.LocalAnonKey, a.userToken(t, users[1]), a.userToken(t, users[2])}
	var wg sync.WaitGroup
	statuses := make([]int, 50)
	for i := range statuses {
		wg.Go(func() {
			body := fmt.Sprintf(`{"symbols":["AAPL","MSFT","T%d"],"source":"%s"}`, i%5, []string{"watchlist", "chart_view"}[i%2])
			req, _ := http.NewRequest(http.MethodPost, a.url+"/functions/v1/sync-user-symbols", bytes.NewBufferString(body))
			req.Header.Set("Authorization", "Bearer "+tokens[i%3])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		require.Equal(t, http.StatusOK, s, "request %d", i)
	}
	var total, distinct int
	require.NoError(t, a.pool.QueryRow(t.Context(), "SELECT count(*), count(DISTINCT (user_id, symbol_id, source)) FROM user_symbol_tracking").Scan(&total, &distinct))
	require.Equal(t, distinct, total, "exactly one row per (user, symbol, source)")
	// Every (user, source) pair occurs (i%3, i%2 cover all 6 over 50 requests) with AAPL, MSFT and
	// the T-symbols its requests named.
	require.Equal(t, 7, a.count(t, "symbols"))
}

func TestRPCPreflightAndFunctionSubpath(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	r := do(t, http.MethodOptions, a.url+symbolsyncv1connect.SymbolSyncServiceSyncUserSymbolsProcedure,
		headers("Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization, content-type, connect-protocol-version"), "")
	require.Equal(t, http.StatusNoContent, r.status)
	require.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	for _, h := range []string{"authorization", "content-type", "connect-protocol-version", "x-grpc-web"} {
		require.Contains(t, r.header.Get("Access-Control-Allow-Headers"), h)
	}
	ok := do(t, http.MethodPost, a.url+symbolsyncv1connect.SymbolSyncServiceSyncUserSymbolsProcedure,
		headers("Origin", "http://localhost:3000", "Authorization", "Bearer "+server.LocalAnonKey, "Content-Type", "application/json"),
		`{"symbols":["AAPL"],"source":"watchlist"}`)
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	require.Equal(t, "*", ok.header.Get("Access-Control-Allow-Origin"))

	// A sub-path reaches the function, as the original (which had no router) did.
	sub := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols/extra",
		headers("Authorization", "Bearer "+server.LocalAnonKey), `{"symbols":["AAPL"],"source":"watchlist"}`)
	require.Equal(t, http.StatusOK, sub.status, sub.body)
	missing := do(t, http.MethodPost, a.url+"/functions/v1/nope/extra", headers("Authorization", "Bearer "+server.LocalAnonKey), `{}`)
	require.Equal(t, http.StatusNotFound, missing.status)
	require.JSONEq(t, `{"code":"NOT_FOUND","message":"Requested function was not found"}`, missing.body)
}
