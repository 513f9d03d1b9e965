package marketdata

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

const (
	metaToken1 = "TUVUQXxEfDIwMjItMDYtMDlUMDQ6MDA6MDAuMDAwMDAwMDAwWg=="
	metaToken2 = "TUVUQXxEfDIwMjItMDYtMTNUMDQ6MDA6MDAuMDAwMDAwMDAwWg=="
)

func newTestAlpaca(t *testing.T, srv *fakeServer, mod func(*AlpacaConfig)) *Alpaca {
	t.Helper()
	cfg := AlpacaConfig{
		BaseURL:           srv.URL,
		KeyID:             "key-id",
		SecretKey:         "secret-key",
		RequestsPerMinute: 600000, // no pacing unless a test asks for it
		HTTPClient:        srv.Client(),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := NewAlpaca(cfg)
	require.NoError(t, err)
	return a
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func stamps(bars []Bar) []string {
	out := make([]string, len(bars))
	for i, b := range bars {
		out[i] = b.TS.Format(time.RFC3339)
	}
	return out
}

// metaServer answers the META asof pages: page 1, page 2 (token still not null), then an empty
// final page, routed by page_token.
func metaServer(t *testing.T) *fakeServer {
	return newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page_token") {
		case "":
			writeJSON(w, 200, fixture(t, "alpaca/bars-multi-META-1Day-asof-page1.json"))
		case metaToken1:
			writeJSON(w, 200, fixture(t, "alpaca/bars-multi-META-1Day-asof-page2.json"))
		case metaToken2:
			writeJSON(w, 200, fixture(t, "alpaca/bars-multi-AAPL-1Day-empty.json"))
		default:
			writeJSON(w, 400, []byte(`{"code":40010001,"message":"bad page_token"}`))
		}
	})
}

func TestAlpacaPaginationFollowsTokenToNull(t *testing.T) {
	t.Parallel()
	srv := metaServer(t)
	a := newTestAlpaca(t, srv, nil)
	req := Request{Symbol: "META", Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")}
	bars, err := a.Bars(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, []string{"2022-06-08T04:00:00Z", "2022-06-09T04:00:00Z", "2022-06-10T04:00:00Z", "2022-06-13T04:00:00Z"}, stamps(bars))
	require.Equal(t, Bar{TS: utc("2022-06-08T04:00:00Z"), Open: 194.67, High: 202.03, Low: 194.41, Close: 196.64, Volume: 22211813}, bars[0])
	require.Equal(t, time.UTC, bars[0].TS.Location())

	reqs := srv.requests()
	require.Len(t, reqs, 3)
	for i, tok := range []string{"", metaToken1, metaToken2} {
		want := url.Values{
			"symbols": {"META"}, "timeframe": {"1Day"}, "start": {"2022-06-08T00:00:00Z"}, "end": {"2022-06-14T00:00:00Z"},
			"limit": {"10000"}, "adjustment": {"raw"}, "feed": {"iex"}, "sort": {"asc"},
		}
		if tok != "" {
			want.Set("page_token", tok)
		}
		require.Equal(t, "/v2/stocks/bars", reqs[i].Path)
		require.Equal(t, want, reqs[i].Query, "request %d", i)
		require.Equal(t, "key-id", reqs[i].Header.Get("APCA-API-KEY-ID"))
		require.Equal(t, "secret-key", reqs[i].Header.Get("APCA-API-SECRET-KEY"))
	}
}

func TestAlpacaShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		file   string
		symbol string
		tf     market.Timeframe
		from   string
		to     string
		want   []string
		first  Bar
	}{
		{name: "multi empty map", file: "alpaca/bars-multi-AAPL-1Day-empty.json", symbol: "AAPL", tf: market.D1,
			from: "2022-02-01T00:00:00Z", to: "2022-02-03T00:00:00Z", want: []string{}},
		{name: "single legacy bars null", file: "alpaca/bars-single-AAPL-1Day-empty.json", symbol: "AAPL", tf: market.D1,
			from: "2022-02-01T00:00:00Z", to: "2022-02-03T00:00:00Z", want: []string{}},
		{name: "symbol absent from map", file: "alpaca/bars-multi-AAPL-NIO-1Day-final.json", symbol: "TSLA", tf: market.D1,
			from: "2021-10-13T04:00:00Z", to: "2021-10-17T04:00:00Z", want: []string{}},
		{name: "lower-case symbol matches", file: "alpaca/bars-multi-AAPL-NIO-1Day-final.json", symbol: "nio", tf: market.D1,
			from: "2021-10-13T04:00:00Z", to: "2021-10-14T04:00:00Z",
			want:  []string{"2021-10-13T04:00:00Z"},
			first: Bar{TS: utc("2021-10-13T04:00:00Z"), Open: 35.75, High: 36.68, Low: 35.47, Close: 36.24, Volume: 33394068}},
		{name: "multi-symbol picks NIO", file: "alpaca/bars-multi-AAPL-NIO-1Day-final.json", symbol: "NIO", tf: market.D1,
			from: "2021-10-13T04:00:00Z", to: "2021-10-17T04:00:00Z",
			want:  []string{"2021-10-13T04:00:00Z", "2021-10-14T04:00:00Z", "2021-10-15T04:00:00Z"},
			first: Bar{TS: utc("2021-10-13T04:00:00Z"), Open: 35.75, High: 36.68, Low: 35.47, Close: 36.24, Volume: 33394068}},
		{name: "15Min multi, inclusive end trimmed", file: "alpaca/bars-multi-AMZN-15Min-reshaped-final.json", symbol: "AMZN", tf: market.M15,
			from: "2021-10-15T16:00:00Z", to: "2021-10-15T17:00:00Z",
			want:  []string{"2021-10-15T16:00:00Z", "2021-10-15T16:15:00Z", "2021-10-15T16:30:00Z", "2021-10-15T16:45:00Z"},
			first: Bar{TS: utc("2021-10-15T16:00:00Z"), Open: 3378.14, High: 3380.815, Low: 3376.3001, Close: 3379.72, Volume: 211689}},
		{name: "15Min legacy single, inclusive end trimmed", file: "alpaca/bars-single-AMZN-15Min-sip-split-final.json", symbol: "AMZN", tf: market.M15,
			from: "2021-10-15T16:00:00Z", to: "2021-10-15T17:00:00Z",
			want:  []string{"2021-10-15T16:00:00Z", "2021-10-15T16:15:00Z", "2021-10-15T16:30:00Z", "2021-10-15T16:45:00Z"},
			first: Bar{TS: utc("2021-10-15T16:00:00Z"), Open: 3378.14, High: 3380.815, Low: 3376.3001, Close: 3379.72, Volume: 211689}},
		{name: "15Min end past the last bar keeps it", file: "alpaca/bars-multi-AMZN-15Min-reshaped-final.json", symbol: "AMZN", tf: market.M15,
			from: "2021-10-15T16:00:00Z", to: "2021-10-15T17:15:00Z",
			want:  []string{"2021-10-15T16:00:00Z", "2021-10-15T16:15:00Z", "2021-10-15T16:30:00Z", "2021-10-15T16:45:00Z", "2021-10-15T17:00:00Z"},
			first: Bar{TS: utc("2021-10-15T16:00:00Z"), Open: 3378.14, High: 3380.815, Low: 3376.3001, Close: 3379.72, Volume: 211689}},
		{name: "multi final picks TSLA", file: "alpaca/bars-multi-AAPL-TSLA-1Day-final.json", symbol: "TSLA", tf: market.D1,
			from: "2022-03-09T00:00:00Z", to: "2022-03-10T00:00:00Z",
			want:  []string{"2022-03-09T05:00:00Z"},
			first: Bar{TS: utc("2022-03-09T05:00:00Z"), Open: 839, High: 860.56, Low: 832.01, Close: 858.97, Volume: 19227323}},
		{name: "docs multi page with token, then empty", file: "alpaca/docs-bars-multi-AAPL-TSLA-page-with-token.json", symbol: "AAPL", tf: market.D1,
			from: "2022-04-11T00:00:00Z", to: "2022-04-12T00:00:00Z",
			want:  []string{"2022-04-11T04:00:00Z"},
			first: Bar{TS: utc("2022-04-11T04:00:00Z"), Open: 168.77, High: 169.03, Low: 166.1, Close: 166.975, Volume: 40180280}},
		{name: "desc order is sorted", file: "alpaca/bars-single-TSLA-1Day-desc-limit3-page1.json", symbol: "TSLA", tf: market.D1,
			from: "2023-09-25T00:00:00Z", to: "2023-09-28T00:00:00Z",
			want:  []string{"2023-09-25T04:00:00Z", "2023-09-26T04:00:00Z", "2023-09-27T04:00:00Z"},
			first: Bar{TS: utc("2023-09-25T04:00:00Z"), Open: 243.38, High: 247.1, Low: 238.31, Close: 246.99, Volume: 104668716}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tt.file)
			srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("page_token") != "" {
					// pages with a token (desc file) end on the empty page
					writeJSON(w, 200, fixture(t, "alpaca/bars-multi-AAPL-1Day-empty.json"))
					return
				}
				writeJSON(w, 200, body)
			})
			a := newTestAlpaca(t, srv, nil)
			bars, err := a.Bars(context.Background(), Request{Symbol: tt.symbol, Timeframe: tt.tf, From: utc(tt.from), To: utc(tt.to)})
			require.NoError(t, err)
			require.Equal(t, tt.want, stamps(bars))
			if len(bars) > 0 {
				require.Equal(t, tt.first, bars[0])
			}
			reqs := srv.requests()
			require.Equal(t, alpacaTimeframes[tt.tf], reqs[0].Query.Get("timeframe"))
			require.Equal(t, tt.to, reqs[0].Query.Get("end"), "end is sent as To; the extra bar is trimmed")
		})
	}
}

func TestAlpacaLegacySinglePagination(t *testing.T) {
	t.Parallel()
	const tok = "QUFQTHxEfDIwMjItMDItMDJUMDU6MDA6MDAuMDAwMDAwMDAwWg=="
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page_token") {
		case "":
			writeJSON(w, 200, fixture(t, "alpaca/bars-single-AAPL-1Day-limit2-page1.json"))
		case tok:
			writeJSON(w, 200, fixture(t, "alpaca/bars-single-AAPL-1Day-empty.json"))
		default:
			writeJSON(w, 400, nil)
		}
	})
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Feed = "sip" })
	bars, err := a.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2022-02-01T00:00:00Z"), To: utc("2022-02-05T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2022-02-01T05:00:00Z", "2022-02-02T05:00:00Z"}, stamps(bars))
	reqs := srv.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "sip", reqs[1].Query.Get("feed"))
	require.Equal(t, tok, reqs[1].Query.Get("page_token"))
}

func TestAlpacaRepeatedTokenStops(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fixture(t, "alpaca/bars-multi-GE-1Day-dividend-spinoff-page1.json"))
	})
	a := newTestAlpaca(t, srv, nil)
	_, err := a.Bars(context.Background(), Request{Symbol: "GE", Timeframe: market.D1, From: utc("2024-04-01T00:00:00Z"), To: utc("2024-04-05T00:00:00Z")})
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, CodePagination, pe.Code)
	require.Len(t, srv.requests(), 2)
}

func TestAlpacaErrors(t *testing.T) {
	t.Parallel()
	now := utc("2026-01-02T15:04:05Z")
	truncated := fixture(t, "alpaca/bars-multi-META-1Day-asof-page1.json")[:100]
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       []byte
		kind       Kind
		code       string
		retryAfter time.Duration
		contains   []string
	}{
		{name: "422 invalid timeframe", status: 422, body: fixture(t, "alpaca/error-422-invalid-timeframe.json"),
			kind: Permanent, code: "42210000", contains: []string{"alpaca: HTTP 422 (code 42210000): invalid timeframe"}},
		{name: "400 no body", status: 400, kind: Permanent, code: "http_400", contains: []string{"bad request"}},
		{name: "404", status: 404, body: []byte(`{"message":"not found"}`), kind: Permanent, code: "http_404", contains: []string{"not found"}},
		{name: "403 recent SIP", status: 403, body: []byte(`{"message":"subscription does not permit querying recent SIP data"}`),
			kind: Permanent, code: "http_403", contains: []string{"subscription does not permit querying recent SIP data", "APCA_API_KEY_ID", "plan"}},
		{name: "401 nginx html", status: 401, header: map[string]string{"Content-Type": "text/html"}, body: []byte("<html><body><h1>401 Authorization Required</h1></body></html>"),
			kind: Permanent, code: "http_401", contains: []string{"unauthorized", "APCA_API_SECRET_KEY"}},
		{name: "429 seconds", status: 429, header: map[string]string{"Retry-After": "7"}, body: []byte(`{"message": "too many requests."}`),
			kind: RateLimited, code: "http_429", retryAfter: 7 * time.Second, contains: []string{"too many requests.", "retry after 7s"}},
		{name: "429 http date", status: 429, header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)},
			kind: RateLimited, code: "http_429", retryAfter: 90 * time.Second},
		{name: "429 without Retry-After", status: 429, kind: RateLimited, code: "http_429"},
		{name: "429 with X-RateLimit-Reset", status: 429, header: map[string]string{"X-RateLimit-Reset": fmt.Sprint(now.Add(20 * time.Second).Unix())},
			kind: RateLimited, code: "http_429", retryAfter: 20 * time.Second},
		{name: "500", status: 500, body: []byte(`{"message":"internal server error"}`), kind: Retryable, code: "http_500", contains: []string{"server error"}},
		{name: "502 html", status: 502, body: []byte("<html>bad gateway</html>"), kind: Retryable, code: "http_502"},
		{name: "503", status: 503, kind: Retryable, code: "http_503"},
		{name: "malformed json", status: 200, body: []byte(`{"bars":{"META":[{"t":"2022-06-08T04:00:00Z","o":`), kind: Retryable, code: CodeMalformed},
		{name: "truncated recorded body", status: 200, body: truncated, kind: Retryable, code: CodeMalformed, contains: []string{"malformed response body"}},
		{name: "bad timestamp", status: 200, body: []byte(`{"bars":{"META":[{"t":"yesterday","o":1}]},"next_page_token":null}`), kind: Retryable, code: CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if w.Header().Get("Content-Type") == "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write(tt.body)
			})
			reg := prometheus.NewRegistry()
			a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Now = func() time.Time { return now }; c.Registerer = reg })
			bars, err := a.Bars(context.Background(), Request{Symbol: "META", Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")})
			require.Error(t, err)
			require.Nil(t, bars)
			var pe *Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "alpaca", pe.Provider)
			require.Equal(t, tt.kind, pe.Kind, "%v", err)
			require.Equal(t, tt.code, pe.Code)
			require.Equal(t, tt.kind == Permanent, IsPermanent(err))
			require.Equal(t, tt.kind != Permanent, IsRetryable(err))
			require.Equal(t, tt.kind == RateLimited, IsRateLimited(err))
			d, ok := RetryAfter(err)
			require.Equal(t, tt.retryAfter, d)
			require.Equal(t, tt.retryAfter > 0, ok)
			for _, s := range tt.contains {
				require.Contains(t, err.Error(), s)
			}
			require.NotContains(t, err.Error(), "secret-key")
			require.NotContains(t, err.Error(), "<html")
			require.Equal(t, 1.0, testutil.ToFloat64(a.fetch.metrics.errors.WithLabelValues("alpaca", tt.kind.String())))
		})
	}
}

func TestAlpacaTimeout(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // stall until the client gives up
	})
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) {
		c.HTTPClient = &http.Client{Transport: srv.Client().Transport, Timeout: 100 * time.Millisecond}
	})
	start := time.Now()
	_, err := a.Bars(context.Background(), Request{Symbol: "META", Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")})
	require.Less(t, time.Since(start), 5*time.Second)
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, Retryable, pe.Kind)
	require.Equal(t, CodeTimeout, pe.Code)
	require.True(t, IsRetryable(err))
}

func TestAlpacaContextCancelIsNotAProviderError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	})
	a := newTestAlpaca(t, srv, nil)
	_, err := a.Bars(ctx, Request{Symbol: "META", Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, IsRetryable(err))
	require.False(t, IsPermanent(err))
}

func TestAlpacaLimiterPacesAndCountsWaits(t *testing.T) {
	t.Parallel()
	srv := metaServer(t)
	reg := prometheus.NewRegistry()
	// 300/min = one request every 200 ms, burst 1: the 3 pages need 2 waits, about 400 ms.
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.RequestsPerMinute = 300; c.Registerer = reg })
	start := time.Now()
	_, err := a.Bars(context.Background(), Request{Symbol: "META", Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 350*time.Millisecond)
	require.Equal(t, 2.0, testutil.ToFloat64(a.fetch.metrics.waits.WithLabelValues("alpaca")))
	require.Greater(t, testutil.ToFloat64(a.fetch.metrics.waitedSeconds.WithLabelValues("alpaca")), 0.2)
	n, err := testutil.GatherAndCount(reg, "backfill_provider_request_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 0.0, testutil.ToFloat64(a.fetch.metrics.errors.WithLabelValues("alpaca", "retryable")))
}

func TestAlpacaLimiterWaitHonoursContext(t *testing.T) {
	t.Parallel()
	srv := metaServer(t)
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.RequestsPerMinute = 1 }) // one a minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := a.Bars(ctx, Request{Symbol: "META", Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Len(t, srv.requests(), 1, "the second page waits for the limiter")
}

func TestAlpacaRequestChecks(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 500, nil) })
	a := newTestAlpaca(t, srv, nil)
	from := utc("2022-06-08T00:00:00Z")
	_, err := a.Bars(context.Background(), Request{Symbol: "META", Timeframe: "1D", From: from, To: from.Add(time.Hour)})
	require.True(t, IsPermanent(err))
	require.Contains(t, err.Error(), `unsupported timeframe "1D"`)
	_, err = a.Bars(context.Background(), Request{Timeframe: market.D1, From: from, To: from.Add(time.Hour)})
	require.True(t, IsPermanent(err))
	_, err = a.Bars(context.Background(), Request{Symbol: "BTC/USD", Timeframe: market.D1, From: from, To: from.Add(time.Hour)})
	require.True(t, IsPermanent(err))
	require.Contains(t, err.Error(), "crypto pair")
	bars, err := a.Bars(context.Background(), Request{Symbol: "META", Timeframe: market.D1, From: from, To: from})
	require.NoError(t, err)
	require.Empty(t, bars)
	require.Empty(t, srv.requests())
}

func TestAlpacaConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  AlpacaConfig
		err  string
	}{
		{name: "missing keys", cfg: AlpacaConfig{}, err: "KeyID and SecretKey are required"},
		{name: "bad base url", cfg: AlpacaConfig{BaseURL: "data.alpaca.markets", KeyID: "k", SecretKey: "s"}, err: "invalid BaseURL"},
		{name: "negative rate", cfg: AlpacaConfig{KeyID: "k", SecretKey: "s", RequestsPerMinute: -1}, err: "must not be negative"},
		{name: "defaults", cfg: AlpacaConfig{KeyID: "k", SecretKey: "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := NewAlpaca(tt.cfg)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "alpaca", a.Name())
			require.Equal(t, "https://data.alpaca.markets", a.cfg.BaseURL)
			require.Equal(t, "iex", a.cfg.Feed)
			require.Equal(t, 200.0, a.cfg.RequestsPerMinute)
			require.Equal(t, 30*time.Second, a.cfg.HTTPClient.Timeout)
		})
	}
}

func TestProvidersShareARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	_, err := NewAlpaca(AlpacaConfig{KeyID: "k", SecretKey: "s", Registerer: reg})
	require.NoError(t, err)
	_, err = NewMassive(MassiveConfig{APIKey: "k", Registerer: reg})
	require.NoError(t, err)
	_, err = NewSynthetic(SyntheticConfig{Registerer: reg})
	require.NoError(t, err)
	n, err := testutil.GatherAndCount(reg, "backfill_provider_errors_total")
	require.NoError(t, err)
	require.Equal(t, 9, n, "3 providers × 3 kinds")
	names := map[string]bool{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				require.NotEqual(t, "symbol", l.GetName())
			}
		}
	}
	for _, name := range []string{"backfill_provider_request_duration_seconds", "backfill_provider_errors_total",
		"backfill_provider_rate_limit_wait_seconds_total", "backfill_provider_rate_limit_waits_total",
		"backfill_provider_requests_total", "backfill_provider_zero_bar_requests_total"} {
		require.True(t, names[name], name)
	}
}

// fakeLimiter is an injected Limiter that never waits and records its calls.
type fakeLimiter struct {
	mu     sync.Mutex
	waits  int
	pauses []time.Time
}

func (l *fakeLimiter) Wait(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits++
	return nil
}

func (l *fakeLimiter) Pause(_ context.Context, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauses = append(l.pauses, until)
}

func (l *fakeLimiter) calls() (int, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waits, append([]time.Time(nil), l.pauses...)
}

// multiBars is an Alpaca multi-symbol bars endpoint over data (keyed in upper case): it honours
// symbols, start and end (both inclusive) and limit summed over all symbols, capped at pageMax
// so that small bodies page (it stands in for 10000). Bars come sorted by symbol, then time, so
// pages hold one symbol or run across two; page_token is an opaque offset.
func multiBars(t *testing.T, data map[string][]Bar, pageMax int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		start, err1 := time.Parse(time.RFC3339, q.Get("start"))
		end, err2 := time.Parse(time.RFC3339, q.Get("end"))
		limit, err3 := strconv.Atoi(q.Get("limit"))
		if err1 != nil || err2 != nil || err3 != nil || limit < 1 || limit > 10000 {
			writeJSON(w, 422, []byte(`{"code":42210000,"message":"invalid start, end or limit"}`))
			return
		}
		syms := strings.Split(q.Get("symbols"), ",")
		for i := range syms {
			syms[i] = strings.ToUpper(syms[i])
		}
		slices.Sort(syms)
		type entry struct {
			sym string
			bar Bar
		}
		var all []entry
		for _, s := range slices.Compact(syms) {
			for _, b := range data[s] {
				if !b.TS.Before(start) && !b.TS.After(end) {
					all = append(all, entry{s, b})
				}
			}
		}
		off := 0
		if tok := q.Get("page_token"); tok != "" {
			raw, err := base64.StdEncoding.DecodeString(tok)
			if off, err = strconv.Atoi(string(raw)); err != nil {
				writeJSON(w, 400, []byte(`{"code":40010001,"message":"bad page_token"}`))
				return
			}
		}
		n := min(limit, pageMax, len(all)-off)
		page := map[string][]map[string]any{}
		for _, e := range all[off : off+n] {
			page[e.sym] = append(page[e.sym], map[string]any{"t": e.bar.TS.Format(time.RFC3339), "o": e.bar.Open, "h": e.bar.High,
				"l": e.bar.Low, "c": e.bar.Close, "v": e.bar.Volume, "n": 1, "vw": e.bar.Close})
		}
		var next *string
		if off+n < len(all) {
			tok := base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(off + n)))
			next = &tok
		}
		body, err := json.Marshal(map[string]any{"bars": page, "next_page_token": next})
		require.NoError(t, err)
		writeJSON(w, 200, body)
	}
}

// dailyBars makes n daily bars from day on, priced by k.
func dailyBars(day string, n int, k float64) []Bar {
	out := make([]Bar, n)
	for i := range out {
		p := k + float64(i)
		out[i] = Bar{TS: utc(day).AddDate(0, 0, i), Open: p, High: p + 1, Low: p - 1, Close: p + 0.5, Volume: 1000 * p}
	}
	return out
}

func symbolsOf(reqs []seen) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Query.Get("symbols")
	}
	return out
}

func TestAlpacaBarsMultiPagesAcrossSymbols(t *testing.T) {
	t.Parallel()
	data := map[string][]Bar{
		"AAPL": dailyBars("2024-03-04T05:00:00Z", 5, 170),
		"MSFT": dailyBars("2024-03-04T05:00:00Z", 3, 400),
		"NVDA": dailyBars("2024-03-04T05:00:00Z", 4, 800),
	}
	// Pages of 4 bars, summed over symbols: AAPL×4 | AAPL×1 MSFT×3 | NVDA×4 (the last one
	// starts at To, sent as the inclusive end, and is trimmed).
	srv := newFakeServer(t, multiBars(t, data, 4))
	reg := prometheus.NewRegistry()
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Registerer = reg })
	from, to := utc("2024-03-04T00:00:00Z"), utc("2024-03-07T05:00:00Z")
	res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"NVDA", "AAPL", "MSFT"}, Timeframe: market.D1, From: from, To: to, Purpose: PurposeRepair})
	require.NoError(t, err)
	require.Empty(t, res.Rejected)
	require.Equal(t, map[string][]Bar{"AAPL": data["AAPL"][:3], "MSFT": data["MSFT"], "NVDA": data["NVDA"][:3]}, res.Bars)

	reqs := srv.requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		want := url.Values{
			"symbols": {"NVDA,AAPL,MSFT"}, "timeframe": {"1Day"}, "start": {"2024-03-04T00:00:00Z"}, "end": {"2024-03-07T05:00:00Z"},
			"limit": {"10000"}, "adjustment": {"raw"}, "feed": {"iex"}, "sort": {"asc"},
		}
		if i > 0 {
			want.Set("page_token", base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(4*i))))
		}
		require.Equal(t, "/v2/stocks/bars", r.Path)
		require.Equal(t, want, r.Query, "request %d: the symbols in the order given, every parameter but page_token unchanged", i)
		require.Equal(t, "key-id", r.Header.Get("APCA-API-KEY-ID"))
	}

	m := a.fetch.metrics
	require.Equal(t, 3.0, testutil.ToFloat64(m.requests.WithLabelValues("alpaca", PurposeRepair)))
	require.Equal(t, 0.0, testutil.ToFloat64(m.requests.WithLabelValues("alpaca", PurposeBackfill)))
	require.Equal(t, 0.0, testutil.ToFloat64(m.zeroBars.WithLabelValues("alpaca", PurposeRepair)))
	n, err := testutil.GatherAndCount(reg, "backfill_provider_requests_total", "backfill_provider_zero_bar_requests_total")
	require.NoError(t, err)
	require.Equal(t, 6, n, "every purpose of both counters exists from the start")
}

func TestAlpacaBarsMultiKeysAndAbsentSymbols(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fixture(t, "alpaca/bars-multi-AAPL-NIO-1Day-final.json"))
	})
	a := newTestAlpaca(t, srv, nil)
	res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"aapl", "Nio", "TSLA"}, Timeframe: market.D1,
		From: utc("2021-10-13T04:00:00Z"), To: utc("2021-10-15T04:00:00Z")})
	require.NoError(t, err)
	require.Empty(t, res.Rejected)
	require.Len(t, res.Bars, 3, "every symbol asked and not rejected has an entry")
	require.Equal(t, []string{"2021-10-13T04:00:00Z", "2021-10-14T04:00:00Z"}, stamps(res.Bars["aapl"]), "AAPL answered, aapl asked")
	require.Equal(t, Bar{TS: utc("2021-10-13T04:00:00Z"), Open: 35.75, High: 36.68, Low: 35.47, Close: 36.24, Volume: 33394068}, res.Bars["Nio"][0])
	require.Len(t, res.Bars["Nio"], 2)
	require.Empty(t, res.Bars["TSLA"], "absent from the answer: no bars, no error")
	require.Equal(t, "aapl,Nio,TSLA", srv.requests()[0].Query.Get("symbols"))
}

func TestAlpacaBarsMultiZeroBarPagesByPurpose(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fixture(t, "alpaca/bars-multi-AAPL-1Day-empty.json"))
	})
	reg := prometheus.NewRegistry()
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Registerer = reg })
	req := MultiRequest{Symbols: []string{"AAPL", "MSFT"}, Timeframe: market.D1, From: utc("2022-02-01T00:00:00Z"), To: utc("2022-02-03T00:00:00Z")}
	res, err := a.BarsMulti(context.Background(), req) // Purpose "" counts as backfill
	require.NoError(t, err)
	require.Equal(t, map[string][]Bar{"AAPL": nil, "MSFT": nil}, res.Bars)
	req.Purpose = PurposeRefresh
	_, err = a.BarsMulti(context.Background(), req)
	require.NoError(t, err)
	_, err = a.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: req.From, To: req.To, Purpose: PurposeRefresh})
	require.NoError(t, err)
	_, err = a.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: req.From, To: req.To, Purpose: "nonsense"})
	require.NoError(t, err)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP backfill_provider_zero_bar_requests_total Successful provider requests (pages) that held no bar at all, by provider and purpose: the share of requests spent on nothing.
# TYPE backfill_provider_zero_bar_requests_total counter
backfill_provider_zero_bar_requests_total{provider="alpaca",purpose="backfill"} 2
backfill_provider_zero_bar_requests_total{provider="alpaca",purpose="refresh"} 2
backfill_provider_zero_bar_requests_total{provider="alpaca",purpose="repair"} 0
`), "backfill_provider_zero_bar_requests_total"))
	require.Equal(t, 2.0, testutil.ToFloat64(a.fetch.metrics.requests.WithLabelValues("alpaca", PurposeRefresh)))
	require.Equal(t, 2.0, testutil.ToFloat64(a.fetch.metrics.requests.WithLabelValues("alpaca", PurposeBackfill)), "an unknown purpose is counted as backfill")
}

func TestAlpacaBarsMultiInvalidSymbolIsRejectedAndTheRestArrive(t *testing.T) {
	t.Parallel()
	data := map[string][]Bar{
		"AAPL": dailyBars("2024-03-04T05:00:00Z", 3, 170),
		"MSFT": dailyBars("2024-03-04T05:00:00Z", 3, 400),
		"NVDA": dailyBars("2024-03-04T05:00:00Z", 3, 800),
	}
	ok := multiBars(t, data, 4)
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(strings.Split(r.URL.Query().Get("symbols"), ","), "BAD") {
			writeJSON(w, 400, []byte(`{"code":40010001,"message":"invalid symbol: BAD"}`))
			return
		}
		ok(w, r)
	})
	reg := prometheus.NewRegistry()
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Registerer = reg })
	res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL", "BAD", "MSFT", "NVDA"}, Timeframe: market.D1,
		From: utc("2024-03-04T00:00:00Z"), To: utc("2024-03-10T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, map[string][]Bar{"AAPL": data["AAPL"], "MSFT": data["MSFT"], "NVDA": data["NVDA"]}, res.Bars)
	require.Len(t, res.Rejected, 1)
	var pe *Error
	require.ErrorAs(t, res.Rejected["BAD"], &pe)
	require.Equal(t, Permanent, pe.Kind)
	require.Equal(t, 400, pe.Status)
	require.Equal(t, "40010001", pe.Code)
	require.Contains(t, pe.Error(), "invalid symbol: BAD")

	// One refused request, then the batch again without BAD from its first page: 9 bars, 3 pages.
	require.Equal(t, []string{"AAPL,BAD,MSFT,NVDA", "AAPL,MSFT,NVDA", "AAPL,MSFT,NVDA", "AAPL,MSFT,NVDA"}, symbolsOf(srv.requests()))
	require.Empty(t, srv.requests()[1].Query.Get("page_token"))
	require.Equal(t, 1.0, testutil.ToFloat64(a.fetch.metrics.errors.WithLabelValues("alpaca", "permanent")), "one rejected symbol")
}

func TestAlpacaBarsMultiBisectsAnUnnamedRefusal(t *testing.T) {
	t.Parallel()
	syms := []string{"AAA", "BBB", "CCC", "DDD", "EEE", "ZZZ", "GGG", "HHH"}
	data := map[string][]Bar{}
	for i, s := range syms {
		if s != "ZZZ" {
			data[s] = dailyBars("2024-03-04T05:00:00Z", 1, float64(10*(i+1)))
		}
	}
	ok := multiBars(t, data, 100)
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Query().Get("symbols"), "ZZZ") {
			writeJSON(w, 422, []byte(`{"code":42210000,"message":"request is invalid"}`))
			return
		}
		ok(w, r)
	})
	a := newTestAlpaca(t, srv, nil)
	res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: syms, Timeframe: market.D1,
		From: utc("2024-03-04T00:00:00Z"), To: utc("2024-03-05T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"ZZZ"}, slices.Collect(maps.Keys(res.Rejected)))
	require.True(t, IsPermanent(res.Rejected["ZZZ"]))
	require.Len(t, res.Bars, 7)
	for _, s := range syms {
		if s != "ZZZ" {
			require.Equal(t, data[s], res.Bars[s], s)
		}
	}
	// All 8, the good half, the bad half, its bad quarter, EEE alone, ZZZ alone, the good quarter:
	// 2·log2(8)+1 requests.
	require.Equal(t, []string{"AAA,BBB,CCC,DDD,EEE,ZZZ,GGG,HHH", "AAA,BBB,CCC,DDD", "EEE,ZZZ,GGG,HHH", "EEE,ZZZ", "EEE", "ZZZ", "GGG,HHH"},
		symbolsOf(srv.requests()))
}

func TestAlpacaBarsMultiRefusesEveryoneAlone(t *testing.T) {
	t.Parallel()
	// A 4xx whatever the symbols ends with every symbol rejected on its own, in 2n−1 requests.
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, []byte(`{"code":40010000,"message":"bad request"}`))
	})
	a := newTestAlpaca(t, srv, nil)
	res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"A", "B", "C"}, Timeframe: market.D1,
		From: utc("2024-03-04T00:00:00Z"), To: utc("2024-03-05T00:00:00Z")})
	require.NoError(t, err)
	require.Len(t, res.Rejected, 3, "%v", res.Rejected)
	require.Empty(t, res.Bars)
	require.Len(t, srv.requests(), 5)
}

func TestAlpacaBarsMultiCryptoAndEmptyAreRejectedWithoutARequest(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fixture(t, "alpaca/bars-multi-AAPL-NIO-1Day-final.json"))
	})
	a := newTestAlpaca(t, srv, nil)
	req := MultiRequest{Symbols: []string{"BTC/USD", "", "AAPL", "AAPL"}, Timeframe: market.D1, From: utc("2021-10-13T04:00:00Z"), To: utc("2021-10-14T04:00:00Z")}
	res, err := a.BarsMulti(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Rejected, 2)
	require.True(t, IsPermanent(res.Rejected["BTC/USD"]))
	require.Contains(t, res.Rejected["BTC/USD"].Error(), "crypto pair")
	require.True(t, IsPermanent(res.Rejected[""]))
	require.Equal(t, []string{"2021-10-13T04:00:00Z"}, stamps(res.Bars["AAPL"]))
	require.Equal(t, []string{"AAPL"}, symbolsOf(srv.requests()))

	res, err = a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"ETH/USD"}, Timeframe: market.D1, From: req.From, To: req.To})
	require.NoError(t, err)
	require.Len(t, res.Rejected, 1)
	require.Empty(t, res.Bars)
	res, err = a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL"}, Timeframe: market.D1, From: req.From, To: req.From})
	require.NoError(t, err)
	require.Equal(t, map[string][]Bar{"AAPL": nil}, res.Bars, "an empty range asks nothing")
	_, err = a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL"}, Timeframe: "1D", From: req.From, To: req.To})
	require.True(t, IsPermanent(err))
	require.Len(t, srv.requests(), 1)
}

func TestAlpacaBarsMultiWholeCallFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		kind   Kind
	}{
		{name: "401", status: 401, kind: Permanent},
		{name: "403 naming a symbol is still the keys", status: 403, body: `{"message":"subscription does not permit querying recent SIP data for AAPL"}`, kind: Permanent},
		{name: "429", status: 429, body: `{"message":"too many requests."}`, kind: RateLimited},
		{name: "500", status: 500, kind: Retryable},
		{name: "408", status: 408, kind: Retryable},
		{name: "malformed", status: 200, body: `{"bars":{"AAPL":[{"t":"2021-10-13T04:00:00Z","o":`, kind: Retryable},
		{name: "list for many symbols", status: 200, body: `{"bars":[{"t":"2021-10-13T04:00:00Z","o":1}],"next_page_token":null}`, kind: Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tt.status, []byte(tt.body)) })
			a := newTestAlpaca(t, srv, nil)
			res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL", "MSFT"}, Timeframe: market.D1,
				From: utc("2021-10-13T04:00:00Z"), To: utc("2021-10-14T04:00:00Z")})
			var pe *Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.kind, pe.Kind, "%v", err)
			require.Empty(t, res.Bars)
			require.Empty(t, res.Rejected)
			require.Len(t, srv.requests(), 1, "the caller retries the batch; nothing is split")
		})
	}
}

func TestAlpaca429PausesTheInjectedLimiter(t *testing.T) {
	t.Parallel()
	now := utc("2026-01-02T15:04:05Z")
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		writeJSON(w, 429, []byte(`{"message":"too many requests."}`))
	})
	lim := &fakeLimiter{}
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Limiter = lim; c.Now = func() time.Time { return now } })
	_, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL", "MSFT"}, Timeframe: market.D1,
		From: utc("2021-10-13T04:00:00Z"), To: utc("2021-10-14T04:00:00Z")})
	require.True(t, IsRateLimited(err))
	waits, pauses := lim.calls()
	require.Equal(t, 1, waits)
	require.Equal(t, []time.Time{now.Add(7 * time.Second)}, pauses)

	// Bars goes through the same plumbing.
	_, err = a.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2021-10-13T04:00:00Z"), To: utc("2021-10-14T04:00:00Z")})
	require.True(t, IsRateLimited(err))
	waits, pauses = lim.calls()
	require.Equal(t, 2, waits)
	require.Len(t, pauses, 2)
}

func TestAlpacaExhaustedWindowPausesTheInjectedLimiter(t *testing.T) {
	t.Parallel()
	now := utc("2026-01-02T15:04:05Z")
	reset := now.Add(30 * time.Second)
	remaining := map[string]string{"": "0", metaToken1: "5", metaToken2: "0"}
	resets := map[string]time.Time{"": reset, metaToken1: reset, metaToken2: now.Add(-time.Second)}
	meta := metaServer(t)
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("page_token")
		w.Header().Set("X-RateLimit-Limit", "200")
		w.Header().Set("X-RateLimit-Remaining", remaining[tok])
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(resets[tok].Unix(), 10))
		meta.Config.Handler.ServeHTTP(w, r)
	})
	lim := &fakeLimiter{}
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Limiter = lim; c.Now = func() time.Time { return now } })
	res, err := a.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"META"}, Timeframe: market.D1, From: utc("2022-06-08T00:00:00Z"), To: utc("2022-06-14T00:00:00Z")})
	require.NoError(t, err)
	require.Len(t, res.Bars["META"], 4)
	waits, pauses := lim.calls()
	require.Equal(t, 3, waits, "one Wait per page")
	require.Equal(t, []time.Time{reset}, pauses, "remaining 5 and a past reset pause nothing")
}

func TestAlpacaDefaultLimiterHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, nil)
			return
		}
		writeJSON(w, 200, fixture(t, "alpaca/bars-multi-AAPL-1Day-empty.json"))
	})
	reg := prometheus.NewRegistry()
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.Registerer = reg })
	req := Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2022-02-01T00:00:00Z"), To: utc("2022-02-03T00:00:00Z")}
	_, err := a.Bars(context.Background(), req)
	require.True(t, IsRateLimited(err))
	start := time.Now()
	_, err = a.Bars(context.Background(), req)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "the in-process bucket sat out Retry-After")
	require.Equal(t, 1.0, testutil.ToFloat64(a.fetch.metrics.waits.WithLabelValues("alpaca")))
	require.Greater(t, testutil.ToFloat64(a.fetch.metrics.waitedSeconds.WithLabelValues("alpaca")), 0.9)
}

func TestBucketPause(t *testing.T) {
	t.Parallel()
	b := newBucket("alpaca", 600000, 1, time.Now)
	b.Pause(context.Background(), time.Now().Add(100*time.Millisecond))
	b.Pause(context.Background(), time.Now().Add(-time.Hour)) // earlier: no change
	start := time.Now()
	require.NoError(t, b.Wait(context.Background()))
	require.GreaterOrEqual(t, time.Since(start), 90*time.Millisecond)
	start = time.Now()
	require.NoError(t, b.Wait(context.Background()))
	require.Less(t, time.Since(start), 90*time.Millisecond, "the pause is over")

	b.Pause(context.Background(), time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Wait(ctx), context.DeadlineExceeded)

	// A clock that does not move sleeps the pause once, not forever.
	frozen := utc("2026-01-02T15:04:05Z")
	f := newBucket("alpaca", 600000, 1, func() time.Time { return frozen })
	f.Pause(context.Background(), frozen.Add(30*time.Millisecond))
	require.NoError(t, f.Wait(context.Background()))
}

func TestAlpacaMaxSymbols(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	longest := 0
	var srvURL string
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		longest = max(longest, len(srvURL+r.RequestURI))
		mu.Unlock()
		// One bar a page, so that every request but the first carries a page_token.
		multiBars(t, map[string][]Bar{"SYMBOL000": dailyBars("2024-03-04T05:00:00Z", 2, 1), "SYMBOL001": dailyBars("2024-03-04T05:00:00Z", 2, 2)}, 1)(w, r)
	})
	srvURL = srv.URL
	a := newTestAlpaca(t, srv, func(c *AlpacaConfig) { c.MaxURLBytes = 1500 })
	k := a.MaxSymbols()
	require.Positive(t, k)
	require.Less(t, k, 1500/alpacaSymbolBytes)
	syms := make([]string, k+1)
	for i := range syms {
		syms[i] = fmt.Sprintf("SYMBOL%03d", i) // 9 characters, the longest MaxSymbols assumes
	}
	req := MultiRequest{Symbols: syms[:k], Timeframe: market.M15, From: utc("2024-03-04T00:00:00Z"), To: utc("2024-03-06T00:00:00Z")}
	res, err := a.BarsMulti(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Bars, k)
	require.Len(t, srv.requests(), 4)
	mu.Lock()
	require.LessOrEqual(t, longest, 1500, "every URL, page_token included, fits")
	mu.Unlock()

	req.Symbols = syms
	_, err = a.BarsMulti(context.Background(), req)
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, Permanent, pe.Kind)
	require.Equal(t, CodeInvalidRequest, pe.Code)
	require.Contains(t, err.Error(), "MaxSymbols")

	// As many symbols, but too long to fit: refused by the URL's length.
	for i := range syms {
		syms[i] = strings.Repeat("X", 20) + strconv.Itoa(i)
	}
	req.Symbols = syms[:k]
	_, err = a.BarsMulti(context.Background(), req)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, CodeInvalidRequest, pe.Code)
	require.Contains(t, err.Error(), "MaxURLBytes")
	require.Len(t, srv.requests(), 4, "refused batches send nothing")

	def, err := NewAlpaca(AlpacaConfig{KeyID: "k", SecretKey: "s"})
	require.NoError(t, err)
	require.Greater(t, def.MaxSymbols(), 500, "8000 bytes hold several hundred symbols")
	require.Less(t, def.MaxSymbols(), 1000)
	wide, err := NewAlpaca(AlpacaConfig{KeyID: "k", SecretKey: "s", MaxURLBytes: 1 << 20})
	require.NoError(t, err)
	require.Equal(t, 1000, wide.MaxSymbols(), "capped by MaxSymbols")
	_, err = NewAlpaca(AlpacaConfig{KeyID: "k", SecretKey: "s", MaxURLBytes: 300})
	require.ErrorContains(t, err, "leaves no room for a symbol")
}

func TestNamedSymbols(t *testing.T) {
	t.Parallel()
	batch := []string{"AAPL", "BAD", "BRK", "A", "IS", "ON", "msft"}
	tests := []struct {
		msg  string
		want []string
	}{
		{msg: "invalid symbol: BAD", want: []string{"BAD"}},
		{msg: "Invalid Symbol: bad", want: []string{"BAD"}},
		{msg: "invalid symbols: bad, aapl", want: []string{"BAD", "AAPL"}},
		{msg: "invalid symbol: MSFT", want: []string{"msft"}},
		{msg: "symbol BAD is not traded.", want: []string{"BAD"}},
		{msg: "unknown symbol (MSFT)", want: []string{"msft"}},
		{msg: "no such symbol BRK.B", want: nil},
		{msg: "a bad request: limit is on the high side", want: nil},
		{msg: "request is invalid", want: nil},
		{msg: "invalid symbol: XYZ", want: nil},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, namedSymbols(tt.msg, batch), tt.msg)
	}
}
