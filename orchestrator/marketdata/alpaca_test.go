package marketdata

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
		"backfill_provider_rate_limit_wait_seconds_total", "backfill_provider_rate_limit_waits_total"} {
		require.True(t, names[name], name)
	}
}
