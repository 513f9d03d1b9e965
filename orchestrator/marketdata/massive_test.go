package marketdata

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

const massiveKey = "massive-secret-key"

func newTestMassive(t *testing.T, baseURL string, client *http.Client, mod func(*MassiveConfig)) *Massive {
	t.Helper()
	cfg := MassiveConfig{BaseURL: baseURL, APIKey: massiveKey, RequestsPerMinute: 600000, HTTPClient: client}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewMassive(cfg)
	require.NoError(t, err)
	return m
}

func TestMassiveDailyMillisecondsAndExponentVolumes(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fixture(t, "massive/aggs-AAPL-1-day-2023-01-01-2023-01-10-asc.json"))
	})
	m := newTestMassive(t, srv.URL, srv.Client(), nil)
	bars, err := m.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2023-01-01T05:00:00Z"), To: utc("2023-01-11T05:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2023-01-03T05:00:00Z", "2023-01-04T05:00:00Z", "2023-01-05T05:00:00Z", "2023-01-06T05:00:00Z",
		"2023-01-09T05:00:00Z", "2023-01-10T05:00:00Z"}, stamps(bars))
	require.Equal(t, Bar{TS: utc("2023-01-03T05:00:00Z"), Open: 130.28, High: 130.9, Low: 124.17, Close: 125.07, Volume: 112117471}, bars[0])
	require.Equal(t, time.UTC, bars[0].TS.Location())

	reqs := srv.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "/v2/aggs/ticker/AAPL/range/1/day/2023-01-01/2023-01-10", reqs[0].Path)
	require.Equal(t, url.Values{"adjusted": {"false"}, "sort": {"asc"}, "limit": {"50000"}, "apiKey": {massiveKey}}, reqs[0].Query)
}

func TestMassiveDescAnswersAreSorted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, asc, desc string
		req             Request
		wantLen         int
	}{
		{name: "AAPL recorded both ways", asc: "massive/aggs-AAPL-1-day-2023-01-01-2023-01-10-asc.json", desc: "massive/aggs-AAPL-1-day-2023-01-01-2023-01-10-desc.json",
			req: Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2023-01-01T05:00:00Z"), To: utc("2023-01-11T05:00:00Z")}, wantLen: 6},
		{name: "GME daily desc", desc: "massive/aggs-GME-1-day-2021-12-01-2021-12-02-desc.json",
			req: Request{Symbol: "GME", Timeframe: market.D1, From: utc("2021-12-01T05:00:00Z"), To: utc("2021-12-03T05:00:00Z")}, wantLen: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			get := func(file string) []Bar {
				srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, fixture(t, file)) })
				bars, err := newTestMassive(t, srv.URL, srv.Client(), nil).Bars(context.Background(), tt.req)
				require.NoError(t, err)
				return bars
			}
			desc := get(tt.desc)
			require.Len(t, desc, tt.wantLen)
			for i := 1; i < len(desc); i++ {
				require.True(t, desc[i-1].TS.Before(desc[i].TS))
			}
			if tt.asc != "" {
				require.Equal(t, get(tt.asc), desc)
			}
		})
	}
}

func TestMassiveIntradayDescIsSortedAndTrimmed(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fixture(t, "massive/aggs-GME-60-minute-2021-12-01-2021-12-02-desc.json"))
	})
	m := newTestMassive(t, srv.URL, srv.Client(), nil)
	from, to := utc("2021-12-01T05:00:00Z"), utc("2021-12-03T05:00:00Z")
	bars, err := m.Bars(context.Background(), Request{Symbol: "GME", Timeframe: market.H1, From: from, To: to})
	require.NoError(t, err)
	require.Len(t, bars, 29)
	for i := 1; i < len(bars); i++ {
		require.True(t, bars[i-1].TS.Before(bars[i].TS))
	}
	require.Equal(t, "2021-12-01T09:00:00Z", bars[0].TS.Format(time.RFC3339)) // 04:00 ET pre-market
	var found bool
	for _, b := range bars {
		if b.TS.Equal(time.UnixMilli(1638457200000)) {
			require.Equal(t, 2534380.0, b.Volume) // "v":2.53438e+06
			found = true
		}
	}
	require.True(t, found)
	require.Equal(t, "/v2/aggs/ticker/GME/range/1/hour/1638334800000/1638507599999", srv.requests()[0].Path)

	// A narrower request trims what the provider sent beyond [From, To).
	bars, err = m.Bars(context.Background(), Request{Symbol: "GME", Timeframe: market.H1, From: utc("2021-12-01T14:00:00Z"), To: utc("2021-12-01T16:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2021-12-01T14:00:00Z", "2021-12-01T15:00:00Z"}, stamps(bars))
}

func TestMassiveNextURLPagination(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"api.massive.com", "api.polygon.io"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2020-01-10":
					writeJSON(w, 200, fixture(t, "massive/docs-aggs-AAPL-1-day-page-with-next_url-"+host+".json"))
				case "/v2/aggs/ticker/AAPL/range/1/day/1578114000000/2020-01-10":
					writeJSON(w, 200, fixture(t, "massive/aggs-AAPL-1-day-2005-04-01-2005-04-04.json"))
				default:
					writeJSON(w, 404, []byte(`{"status":"NOT_FOUND","message":"no route"}`))
				}
			})
			m := newTestMassive(t, srv.URL, srv.Client(), nil)
			bars, err := m.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2005-04-01T05:00:00Z"), To: utc("2020-01-11T05:00:00Z")})
			require.NoError(t, err)
			// Fri 2005-04-01 is EST (05:00Z), Mon 04-04 EDT (04:00Z); sorted across pages.
			require.Equal(t, []string{"2005-04-01T05:00:00Z", "2005-04-04T04:00:00Z", "2020-01-02T05:00:00Z", "2020-01-03T05:00:00Z"}, stamps(bars))
			require.Equal(t, 642646396.0, bars[0].Volume) // "v":6.42646396e+08
			reqs := srv.requests()
			require.Len(t, reqs, 2)
			require.Equal(t, "/v2/aggs/ticker/AAPL/range/1/day/1578114000000/2020-01-10", reqs[1].Path)
			require.Equal(t, url.Values{"cursor": {"bGltaXQ9MiZzb3J0PWFzYw"}, "apiKey": {massiveKey}}, reqs[1].Query,
				"next_url is followed on the configured host with apiKey added again")
		})
	}
}

func TestMassiveEmptyResults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body []byte
	}{
		{name: "results null (recorded)", body: fixture(t, "massive/aggs-empty-results-null-2020.json")},
		{name: "results empty", body: []byte(`{"ticker":"AAPL","queryCount":0,"resultsCount":0,"adjusted":false,"results":[],"status":"OK","request_id":"x","count":0}`)},
		{name: "results missing", body: []byte(`{"ticker":"AAPL","queryCount":0,"resultsCount":0,"adjusted":false,"status":"OK","request_id":"x","count":0}`)},
		{name: "delayed status", body: []byte(`{"ticker":"AAPL","resultsCount":0,"status":"DELAYED","request_id":"x"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, tt.body) })
			m := newTestMassive(t, srv.URL, srv.Client(), nil)
			bars, err := m.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.M15, From: utc("2020-02-01T00:00:00Z"), To: utc("2020-02-03T00:00:00Z")})
			require.NoError(t, err)
			require.Empty(t, bars)
			require.Len(t, srv.requests(), 1)
		})
	}
}

func TestMassiveErrors(t *testing.T) {
	t.Parallel()
	now := utc("2026-01-02T15:04:05Z")
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       []byte
		kind       Kind
		retryAfter time.Duration
		contains   []string
	}{
		{name: "401 unknown key (recorded)", status: 401, body: fixture(t, "massive/error-401-unknown-api-key.json"),
			kind: Permanent, contains: []string{"massive: HTTP 401: Unknown API Key", "check the Massive/Polygon API key"}},
		{name: "403 plan (recorded)", status: 403, body: fixture(t, "massive/error-403-not-authorized-plan-timeframe.json"),
			kind: Permanent, contains: []string{"Your plan doesn't include this data timeframe", "plan covers"}},
		{name: "429 with Retry-After date", status: 429, header: map[string]string{"Retry-After": now.Add(12 * time.Second).Format(http.TimeFormat)},
			body: []byte(`{"status":"ERROR","request_id":"r","error":"You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://polygon.io/pricing"}`),
			kind: RateLimited, retryAfter: 12 * time.Second, contains: []string{"exceeded the maximum requests per minute"}},
		{name: "400 bad timespan", status: 400, body: []byte(`{"status":"ERROR","request_id":"r","error":"invalid timespan"}`), kind: Permanent, contains: []string{"invalid timespan"}},
		{name: "504", status: 504, kind: Retryable},
		{name: "200 but truncated", status: 200, body: fixture(t, "massive/aggs-AAPL-1-day-2023-01-01-2023-01-10-asc.json")[:200], kind: Retryable, contains: []string{"malformed"}},
		{name: "200 volume not a number", status: 200, body: []byte(`{"results":[{"t":1,"v":"lots"}],"status":"OK"}`), kind: Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				writeJSON(w, tt.status, tt.body)
			})
			reg := prometheus.NewRegistry()
			m := newTestMassive(t, srv.URL, srv.Client(), func(c *MassiveConfig) { c.Now = func() time.Time { return now }; c.Registerer = reg })
			_, err := m.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.W1, From: utc("2019-12-02T05:00:00Z"), To: utc("2021-12-06T05:00:00Z")})
			var pe *Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.kind, pe.Kind, "%v", err)
			require.Equal(t, "massive", pe.Provider)
			d, _ := RetryAfter(err)
			require.Equal(t, tt.retryAfter, d)
			for _, s := range tt.contains {
				require.Contains(t, err.Error(), s)
			}
			require.NotContains(t, err.Error(), massiveKey)
			require.Equal(t, 1.0, testutil.ToFloat64(m.fetch.metrics.errors.WithLabelValues("massive", tt.kind.String())))
		})
	}
}

func TestMassiveNetworkErrorHidesKey(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {})
	base, client := srv.URL, srv.Client()
	srv.Close() // nothing listens any more
	m := newTestMassive(t, base, client, nil)
	_, err := m.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2023-01-01T05:00:00Z"), To: utc("2023-01-11T05:00:00Z")})
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, Retryable, pe.Kind)
	require.Equal(t, CodeNetwork, pe.Code)
	require.NotContains(t, err.Error(), massiveKey)
	for e := error(pe); e != nil; {
		require.NotContains(t, e.Error(), massiveKey, "no error in the chain carries the key")
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	require.True(t, strings.Contains(err.Error(), "REDACTED") || !strings.Contains(err.Error(), "apiKey"))
}

func TestMassiveDecimalStringVolume(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []byte(`{"ticker":"X:BTCUSD","results":[{"v":"12.5","o":1,"h":2,"l":0.5,"c":1.5,"t":1577941200000},{"v":3.25e+00,"o":1,"h":2,"l":0.5,"c":1.5,"t":1578027600000}],"status":"OK"}`))
	})
	m := newTestMassive(t, srv.URL, srv.Client(), nil)
	bars, err := m.Bars(context.Background(), Request{Symbol: "X:BTCUSD", Timeframe: market.D1, From: utc("2020-01-01T00:00:00Z"), To: utc("2020-01-05T00:00:00Z")})
	require.NoError(t, err)
	require.Len(t, bars, 2)
	require.Equal(t, 12.5, bars[0].Volume)
	require.Equal(t, 3.25, bars[1].Volume)
}

func TestMassiveConfig(t *testing.T) {
	t.Parallel()
	_, err := NewMassive(MassiveConfig{})
	require.ErrorContains(t, err, "APIKey is required")
	_, err = NewMassive(MassiveConfig{APIKey: "k", BaseURL: "ftp://x"})
	require.ErrorContains(t, err, "invalid BaseURL")
	m, err := NewMassive(MassiveConfig{APIKey: "k"})
	require.NoError(t, err)
	require.Equal(t, "massive", m.Name())
	require.Equal(t, "https://api.massive.com", m.cfg.BaseURL)
	require.Equal(t, 5.0, m.cfg.RequestsPerMinute)
	_, err = m.Bars(context.Background(), Request{Symbol: "BTC/USD", Timeframe: market.D1, From: utc("2020-01-01T00:00:00Z"), To: utc("2020-01-02T00:00:00Z")})
	require.True(t, IsPermanent(err), "refused before any request")
}

func TestMassiveInjectedLimiterAndPurpose(t *testing.T) {
	t.Parallel()
	now := utc("2026-01-02T15:04:05Z")
	var calls atomic.Int32
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			writeJSON(w, 200, fixture(t, "massive/docs-aggs-AAPL-1-day-page-with-next_url-api.massive.com.json"))
		case 2:
			writeJSON(w, 200, fixture(t, "massive/aggs-empty-results-null-2020.json"))
		default:
			w.Header().Set("Retry-After", "12")
			writeJSON(w, 429, []byte(`{"status":"ERROR","error":"You've exceeded the maximum requests per minute"}`))
		}
	})
	lim := &fakeLimiter{}
	reg := prometheus.NewRegistry()
	m := newTestMassive(t, srv.URL, srv.Client(), func(c *MassiveConfig) {
		c.Limiter = lim
		c.Registerer = reg
		c.Now = func() time.Time { return now }
	})
	req := Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2020-01-01T05:00:00Z"), To: utc("2020-01-11T05:00:00Z"), Purpose: PurposeRepair}
	bars, err := m.Bars(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, bars, 2)
	_, err = m.Bars(context.Background(), req)
	require.True(t, IsRateLimited(err))

	waits, pauses := lim.calls()
	require.Equal(t, 3, waits, "one Wait per page")
	require.Equal(t, []time.Time{now.Add(12 * time.Second)}, pauses)
	require.Equal(t, 3.0, testutil.ToFloat64(m.fetch.metrics.requests.WithLabelValues("massive", PurposeRepair)))
	require.Equal(t, 1.0, testutil.ToFloat64(m.fetch.metrics.zeroBars.WithLabelValues("massive", PurposeRepair)), "the null page")
}
