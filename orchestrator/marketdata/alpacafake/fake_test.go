package alpacafake

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

// pinned is the instant every test's clock starts at: Wednesday 2026-12-02 21:00Z, 16:00 in New
// York, inside the extended session (which runs to 20:00 ET). Nothing is compared with the wall
// clock.
func pinned() time.Time { return time.Date(2026, time.December, 2, 21, 0, 0, 0, time.UTC) }

// clock is an injected clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: pinned()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a started fake and a client for it.
type fixture struct {
	srv    *Server
	base   string
	client *http.Client
	clock  *clock
}

// start runs a fake on loopback with cfg (its clock the fixture's unless cfg sets one).
func start(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{clock: newClock()}
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	base, err := srv.Start()
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	f.srv, f.base, f.client = srv, base, &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return f
}

// reply is one answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// keys are the default credentials.
func keys() http.Header {
	h := http.Header{}
	h.Set("APCA-API-KEY-ID", "fake-key-id")
	h.Set("APCA-API-SECRET-KEY", "fake-secret")
	return h
}

// get sends GET path?q with the default keys.
func (f *fixture) get(t *testing.T, q url.Values) reply {
	t.Helper()
	return f.do(t, BarsPath, q, keys())
}

func (f *fixture) do(t *testing.T, path string, q url.Values, h http.Header) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.base+path+"?"+q.Encode(), nil)
	require.NoError(t, err)
	req.Header = h
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json; charset=UTF-8", resp.Header.Get("Content-Type"))
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func params(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// symbolBars is one symbol's bars of a page, in the order the body wrote them.
type symbolBars struct {
	symbol string
	bars   []wireBar
}

// decoded is a 200 body read in order: the bars object is walked token by token, so the order
// of its symbols is checked, not lost in a map.
type decoded struct {
	symbols []symbolBars
	next    *string
}

func decodePage(t *testing.T, body []byte) decoded {
	t.Helper()
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &top))
	require.Len(t, top, 2, "exactly bars and next_page_token: %s", body)
	rawBars, ok := top["bars"]
	require.True(t, ok, "bars present: %s", body)
	rawNext, ok := top["next_page_token"]
	require.True(t, ok, "next_page_token present, even on the last page: %s", body)

	var out decoded
	require.NoError(t, json.Unmarshal(rawNext, &out.next))
	dec := json.NewDecoder(bytes.NewReader(rawBars))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok, "bars is an object: %s", body)
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		sym, ok := tok.(string)
		require.True(t, ok)
		var bars []wireBar
		require.NoError(t, dec.Decode(&bars))
		require.NotEmpty(t, bars, "a symbol without bars is absent, never empty: %s", sym)
		out.symbols = append(out.symbols, symbolBars{symbol: sym, bars: bars})
	}
	return out
}

// synthetic is what marketdata.Synthetic gives for [from, to] inclusive, at the fixture's now.
func synthetic(t *testing.T, now func() time.Time, symbol string, tf market.Timeframe, from, to time.Time) []marketdata.Bar {
	t.Helper()
	s, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Hours: market.ExtendedHours, Now: now})
	require.NoError(t, err)
	bars, err := s.Bars(t.Context(), marketdata.Request{Symbol: symbol, Timeframe: tf, From: from, To: to.Add(time.Nanosecond)})
	require.NoError(t, err)
	return bars
}

// requireSame checks the wire bars against the synthetic ones: t, o, h, l, c and v exactly, n
// and vw plausible.
func requireSame(t *testing.T, want []marketdata.Bar, got []wireBar) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, g := range got {
		w := want[i]
		require.Equal(t, rfc(w.TS), g.T, "bar %d", i)
		require.Equal(t, []float64{w.Open, w.High, w.Low, w.Close, w.Volume}, []float64{g.O, g.H, g.L, g.C, float64(g.V)}, "bar %d at %s", i, g.T)
		require.GreaterOrEqual(t, g.N, int64(1))
		require.True(t, g.L <= g.VW && g.VW <= g.H, "vw %v within [%v, %v]", g.VW, g.L, g.H)
	}
}

func TestPaginationAcrossSymbolsSumsTheLimit(t *testing.T) {
	t.Parallel()
	f := start(t, Config{})
	from, to := pinned().Add(-48*time.Hour), pinned() // Monday 16:00 ET to Wednesday 16:00 ET
	const limit = 7
	q := params("symbols", "NVDA,AAPL,MSFT,AAPL", "timeframe", "1Hour", "start", rfc(from), "end", rfc(to),
		"limit", strconv.Itoa(limit), "feed", "iex", "adjustment", "raw")

	want := map[string][]marketdata.Bar{}
	total := 0
	for _, sym := range []string{"AAPL", "MSFT", "NVDA"} {
		want[sym] = synthetic(t, f.clock.Now, sym, market.H1, from, to)
		total += len(want[sym])
	}
	require.Greater(t, len(want["AAPL"]), limit, "precondition: one symbol alone fills a page")

	got := map[string][]wireBar{}
	var order []string // the symbols in the order pages wrote them
	pages := 0
	for {
		r := f.get(t, q)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		p := decodePage(t, r.body)
		pages++
		n := 0
		for _, sb := range p.symbols {
			n += len(sb.bars)
			got[sb.symbol] = append(got[sb.symbol], sb.bars...)
			if len(order) == 0 || order[len(order)-1] != sb.symbol {
				order = append(order, sb.symbol)
			}
		}
		require.LessOrEqual(t, n, limit, "page %d", pages)
		if pages == 1 {
			require.Len(t, p.symbols, 1, "the first page holds only the first symbol")
			require.Equal(t, "AAPL", p.symbols[0].symbol)
		}
		if p.next == nil {
			break
		}
		require.Equal(t, limit, n, "a page before the last is full")
		require.NotEmpty(t, *p.next)
		q.Set("page_token", *p.next) // every other parameter unchanged
		require.Less(t, pages, 100, "pagination ends")
	}
	require.Equal(t, []string{"AAPL", "MSFT", "NVDA"}, order, "symbols ascend, each served once")
	require.Equal(t, (total+limit-1)/limit, pages)
	for sym, bars := range want {
		requireSame(t, bars, got[sym])
	}

	st := f.srv.Stats()
	require.Equal(t, Stats{Requests: int64(pages), Accepted: int64(pages), Bars: int64(total),
		MaxInWindow: pages, Symbols: int64(3 * pages)}, st)
}

func TestEndIsInclusiveAndNowBounds(t *testing.T) {
	t.Parallel()
	f := start(t, Config{})
	// Tuesday 2026-12-01 14:00 and 15:00 ET.
	from, end := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)

	r := f.get(t, params("symbols", "AAPL", "timeframe", "1Hour", "start", rfc(from), "end", rfc(end)))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	p := decodePage(t, r.body)
	require.Nil(t, p.next)
	require.Len(t, p.symbols, 1)
	require.Equal(t, []string{"2026-12-01T19:00:00Z", "2026-12-01T20:00:00Z"}, stampsOf(p.symbols[0].bars),
		"the bar starting exactly at end is served")
	requireSame(t, synthetic(t, f.clock.Now, "AAPL", market.H1, from, end), p.symbols[0].bars)

	// Past now: bars up to the one that started at now (21:00Z), none later.
	r = f.get(t, params("symbols", "AAPL", "timeframe", "15Min", "start", rfc(pinned().Add(-30*time.Minute)), "end", rfc(pinned().Add(2*time.Hour))))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	p = decodePage(t, r.body)
	require.Len(t, p.symbols, 1)
	require.Equal(t, []string{"2026-12-02T20:30:00Z", "2026-12-02T20:45:00Z", "2026-12-02T21:00:00Z"}, stampsOf(p.symbols[0].bars))

	// No end: it is now.
	r = f.get(t, params("symbols", "AAPL", "timeframe", "15Min", "start", rfc(pinned().Add(-15*time.Minute))))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	p = decodePage(t, r.body)
	require.Equal(t, []string{"2026-12-02T20:45:00Z", "2026-12-02T21:00:00Z"}, stampsOf(p.symbols[0].bars))
}

func TestBareDatesAreNewYorkDays(t *testing.T) {
	t.Parallel()
	f := start(t, Config{})
	// As in the recorded alpaca-py answer: start=end=one date gives that day's bar, stamped at
	// midnight New York (05:00Z in winter).
	r := f.get(t, params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-12-01", "end", "2026-12-01"))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	p := decodePage(t, r.body)
	require.Len(t, p.symbols, 1)
	require.Equal(t, []string{"2026-12-01T05:00:00Z"}, stampsOf(p.symbols[0].bars))

	// The end date covers its whole New York day: 64 extended-hours quarter hours.
	r = f.get(t, params("symbols", "AAPL", "timeframe", "15Min", "start", "2026-12-01", "end", "2026-12-01"))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	p = decodePage(t, r.body)
	bars := p.symbols[0].bars
	require.Len(t, bars, 64)
	require.Equal(t, "2026-12-01T09:00:00Z", bars[0].T)  // 04:00 ET
	require.Equal(t, "2026-12-02T00:45:00Z", bars[63].T) // 19:45 ET
}

func TestHolidayHasNoBarsAndCountsAsClosedOnly(t *testing.T) {
	t.Parallel()
	f := start(t, Config{})
	thanksgiving := pinned().AddDate(0, 0, -6)
	y, m, d := thanksgiving.Date()
	closed, why := market.NYSE().Closed(y, m, d)
	require.True(t, closed, "precondition: %s is an NYSE holiday", thanksgiving.Format(time.DateOnly))
	require.NotEmpty(t, why)

	day := thanksgiving.Format(time.DateOnly)
	r := f.get(t, params("symbols", "AAPL,MSFT", "timeframe", "15Min", "start", day, "end", day))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, `{"bars":{},"next_page_token":null}`, string(r.body))

	// A weekend of daily bars is closed-only too.
	r = f.get(t, params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-11-28", "end", "2026-11-29"))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, `{"bars":{},"next_page_token":null}`, string(r.body))

	// An open session after now also has no bars, but it is not closed-market time.
	thursday := pinned().Add(18 * time.Hour) // 10:00 ET
	r = f.get(t, params("symbols", "AAPL", "timeframe", "15Min", "start", rfc(thursday), "end", rfc(thursday.Add(time.Hour))))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, `{"bars":{},"next_page_token":null}`, string(r.body))

	st := f.srv.Stats()
	require.EqualValues(t, 3, st.Accepted)
	require.EqualValues(t, 3, st.ZeroBar)
	require.EqualValues(t, 2, st.ClosedOnly)
	require.EqualValues(t, 0, st.Bars)
	require.EqualValues(t, 4, st.Symbols)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := start(t, Config{Rate: 3})
	q := params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-11-30")
	reset := strconv.FormatInt(pinned().Add(time.Minute).Unix(), 10)

	for i := range 3 {
		r := f.get(t, q)
		require.Equal(t, http.StatusOK, r.status, "request %d: %s", i+1, r.body)
		require.Equal(t, "3", r.header.Get("X-RateLimit-Limit"))
		require.Equal(t, strconv.Itoa(2-i), r.header.Get("X-RateLimit-Remaining"))
		require.Equal(t, reset, r.header.Get("X-RateLimit-Reset"))
	}
	r := f.get(t, q)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.JSONEq(t, `{"message":"too many requests."}`, string(r.body))
	require.Equal(t, "60", r.header.Get("Retry-After"))
	require.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
	require.Equal(t, reset, r.header.Get("X-RateLimit-Reset"))

	f.clock.Advance(29500 * time.Millisecond)
	r = f.get(t, q)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "31", r.header.Get("Retry-After"), "rounded up to whole seconds")

	// A request refused before the limit (bad keys) uses no slot but still carries the headers.
	r = f.do(t, BarsPath, q, http.Header{})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))

	f.clock.Advance(30500 * time.Millisecond) // the first three leave the window exactly now
	r = f.get(t, q)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, "2", r.header.Get("X-RateLimit-Remaining"))
	require.Equal(t, strconv.FormatInt(pinned().Add(2*time.Minute).Unix(), 10), r.header.Get("X-RateLimit-Reset"))

	st := f.srv.Stats()
	require.Equal(t, Stats{Requests: 7, Accepted: 4, RateLimited: 2, Rejected: 1, Bars: 4 * 3, MaxInWindow: 3, Symbols: 4}, st)

	f.srv.Reset()
	require.Equal(t, Stats{}, f.srv.Stats())
	r = f.get(t, q)
	require.Equal(t, "2", r.header.Get("X-RateLimit-Remaining"), "Reset empties the window")
}

func TestUnlimitedSendsNoRateHeaders(t *testing.T) {
	t.Parallel()
	f := start(t, Config{})
	q := params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-11-30")
	for range 5 {
		r := f.get(t, q)
		require.Equal(t, http.StatusOK, r.status)
		require.Empty(t, r.header.Get("X-RateLimit-Limit"))
	}
	f.clock.Advance(time.Minute)
	require.Equal(t, http.StatusOK, f.get(t, q).status)
	require.Equal(t, 5, f.srv.Stats().MaxInWindow)
}

func TestRejectedSymbols(t *testing.T) {
	t.Parallel()
	f := start(t, Config{Reject: func(s string) bool { return s == "BADCO" }})
	for _, tc := range []struct{ symbols, named string }{
		{"AAPL,BADCO,x$", "BADCO"},
		{"x$,BADCO", "x$"},
		{"AAPL,aapl", "aapl"},
		{"BTC/USD", "BTC/USD"},
		{"AAPL,,MSFT", ""},
		{"AAPL, MSFT", " MSFT"},
	} {
		r := f.get(t, params("symbols", tc.symbols, "timeframe", "1Day", "start", "2026-11-30"))
		require.Equal(t, http.StatusBadRequest, r.status, tc.symbols)
		want, err := json.Marshal(map[string]any{"code": 40010001, "message": "invalid symbol: " + tc.named})
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(r.body), tc.symbols)
	}
	r := f.get(t, params("symbols", "BRK.B,BF-B", "timeframe", "1Day", "start", "2026-11-30", "end", "2026-11-30"))
	require.Equal(t, http.StatusOK, r.status, "dots and dashes are valid: %s", r.body)
	require.Len(t, decodePage(t, r.body).symbols, 2)

	st := f.srv.Stats()
	require.EqualValues(t, 6, st.Rejected)
	require.EqualValues(t, 1, st.Accepted)
}

func TestBadKeys(t *testing.T) {
	t.Parallel()
	f := start(t, Config{KeyID: "id", SecretKey: "secret"})
	q := params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-11-30")
	for name, h := range map[string]http.Header{
		"none":         {},
		"wrong id":     {"Apca-Api-Key-Id": {"other"}, "Apca-Api-Secret-Key": {"secret"}},
		"wrong secret": {"Apca-Api-Key-Id": {"id"}, "Apca-Api-Secret-Key": {"other"}},
		"defaults":     keys(),
	} {
		r := f.do(t, BarsPath, q, h)
		require.Equal(t, http.StatusUnauthorized, r.status, name)
		require.JSONEq(t, `{"code":40110000,"message":"request is not authorized"}`, string(r.body), name)
	}
	good := http.Header{"Apca-Api-Key-Id": {"id"}, "Apca-Api-Secret-Key": {"secret"}}
	require.Equal(t, http.StatusOK, f.do(t, BarsPath, q, good).status)
}

func TestTokenBelongsToItsParameters(t *testing.T) {
	t.Parallel()
	f := start(t, Config{})
	from := pinned().Add(-24 * time.Hour)
	q := params("symbols", "AAPL,MSFT", "timeframe", "15Min", "start", rfc(from), "end", rfc(pinned()), "limit", "5")
	r := f.get(t, q)
	require.Equal(t, http.StatusOK, r.status)
	p := decodePage(t, r.body)
	require.NotNil(t, p.next)
	tok := *p.next

	for name, change := range map[string][2]string{
		"symbols":   {"symbols", "AAPL,NVDA"},
		"timeframe": {"timeframe", "1Hour"},
		"start":     {"start", rfc(from.Add(-time.Hour))},
		"end":       {"end", rfc(pinned().Add(-time.Hour))},
		"no end":    {"end", ""},
		"limit":     {"limit", "6"},
		"garbage":   {"page_token", "not a token!"},
		"forged":    {"page_token", "QUFQTHwxfDA="},
	} {
		other := url.Values{}
		for k, v := range q {
			other[k] = v
		}
		other.Set("page_token", tok)
		if change[1] == "" {
			other.Del(change[0])
		} else {
			other.Set(change[0], change[1])
		}
		r := f.get(t, other)
		require.Equal(t, http.StatusBadRequest, r.status, name)
		require.JSONEq(t, `{"code":40010001,"message":"invalid page token"}`, string(r.body), name)
	}

	// Duplicates and order of symbols do not change what was asked: the token still fits.
	q.Set("symbols", "MSFT,AAPL,MSFT")
	q.Set("page_token", tok)
	r = f.get(t, q)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	next := decodePage(t, r.body)
	require.Equal(t, "AAPL", next.symbols[0].symbol)
	require.Equal(t, "2026-12-01T22:15:00Z", next.symbols[0].bars[0].T, "page 2 starts at the sixth bar")
}

func TestInvalidParameters(t *testing.T) {
	t.Parallel()
	f := start(t, Config{MaxSymbols: 2})
	base := func(kv ...string) url.Values {
		q := params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-11-30")
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				q.Del(kv[i])
			} else {
				q.Set(kv[i], kv[i+1])
			}
		}
		return q
	}
	for _, tc := range []struct {
		name   string
		q      url.Values
		status int
		body   string
	}{
		{"1Min", base("timeframe", "1Min"), 422, `{"code":42210000,"message":"invalid timeframe"}`},
		{"lowercase", base("timeframe", "1day"), 422, `{"code":42210000,"message":"invalid timeframe"}`},
		{"no timeframe", base("timeframe", ""), 422, `{"code":42210000,"message":"invalid timeframe"}`},
		{"limit 0", base("limit", "0"), 422, `{"code":42210000,"message":"invalid limit: want 1 to 10000"}`},
		{"limit 10001", base("limit", "10001"), 422, `{"code":42210000,"message":"invalid limit: want 1 to 10000"}`},
		{"limit x", base("limit", "x"), 422, `{"code":42210000,"message":"invalid limit: want 1 to 10000"}`},
		{"no start", base("start", ""), 422, `{"code":42210000,"message":"missing start"}`},
		{"bad start", base("start", "yesterday"), 422, `{"code":42210000,"message":"invalid start: want RFC 3339 or YYYY-MM-DD"}`},
		{"bad end", base("end", "2026-13-01"), 422, `{"code":42210000,"message":"invalid end: want RFC 3339 or YYYY-MM-DD"}`},
		{"end before start", base("end", "2026-11-29"), 422, `{"code":42210000,"message":"end should not be before start"}`},
		{"desc", base("sort", "desc"), 422, `{"code":42210000,"message":"invalid sort: desc is not supported by this fake"}`},
		{"no symbols", base("symbols", ""), 400, `{"code":40010001,"message":"missing symbols"}`},
		{"too many symbols", base("symbols", "A,B,C"), 400, `{"code":40010001,"message":"too many symbols: 3, at most 2 per request"}`},
	} {
		r := f.get(t, tc.q)
		require.Equal(t, tc.status, r.status, tc.name)
		require.JSONEq(t, tc.body, string(r.body), tc.name)
	}
	require.Equal(t, http.StatusOK, f.get(t, base("symbols", "A,B,A", "limit", "10000", "sort", "asc")).status)

	r := f.do(t, "/v2/stocks/AAPL/bars", base(), keys())
	require.Equal(t, http.StatusNotFound, r.status)
	require.JSONEq(t, `{"code":40410000,"message":"endpoint not found"}`, string(r.body))

	st := f.srv.Stats()
	require.EqualValues(t, 14, st.Rejected)
	require.EqualValues(t, 1, st.Accepted)
	require.EqualValues(t, 2, st.Symbols)
}

func TestLongURI(t *testing.T) {
	t.Parallel()
	f := start(t, Config{MaxURL: 200})
	syms := make([]string, 40)
	for i := range syms {
		syms[i] = "SYM" + strconv.Itoa(i)
	}
	r := f.get(t, params("symbols", strings.Join(syms, ","), "timeframe", "1Day", "start", "2026-11-30"))
	require.Equal(t, http.StatusRequestURITooLong, r.status)
	require.Contains(t, string(r.body), `"code":41410000`)
}

// TestAlpacaClientReadsTheFake runs the repository's own Alpaca client against the fake: it
// gets what the synthetic provider gives for the same half-open range.
func TestAlpacaClientReadsTheFake(t *testing.T) {
	t.Parallel()
	f := start(t, Config{Rate: 200, Reject: func(s string) bool { return s == "BADCO" }})
	a, err := marketdata.NewAlpaca(marketdata.AlpacaConfig{BaseURL: f.base, KeyID: "fake-key-id", SecretKey: "fake-secret",
		RequestsPerMinute: 1e6, HTTPClient: f.client, Now: f.clock.Now})
	require.NoError(t, err)
	from, to := pinned().AddDate(0, 0, -7), pinned()
	got, err := a.Bars(t.Context(), marketdata.Request{Symbol: "AAPL", Timeframe: market.M15, From: from, To: to})
	require.NoError(t, err)
	want := synthetic(t, f.clock.Now, "AAPL", market.M15, from, to.Add(-time.Nanosecond))
	require.NotEmpty(t, want)
	require.Equal(t, want, got)

	_, err = a.Bars(t.Context(), marketdata.Request{Symbol: "BADCO", Timeframe: market.D1, From: from, To: to})
	require.True(t, marketdata.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "invalid symbol: BADCO")
}

// TestCloseInterruptsARequestInFlight: Close ends a request sleeping its Latency, cuts its
// connection and returns.
func TestCloseInterruptsARequestInFlight(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	var once sync.Once
	// Reject is consulted while the answer is decided, before Latency is slept: a signal that
	// the request is in the handler.
	f := start(t, Config{Latency: time.Hour, Reject: func(string) bool { once.Do(func() { close(arrived) }); return false }})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		f.base+BarsPath+"?"+params("symbols", "AAPL", "timeframe", "1Day", "start", "2026-11-30").Encode(), nil)
	require.NoError(t, err)
	req.Header = keys()
	done := make(chan error, 1)
	go func() {
		resp, err := f.client.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered " + resp.Status)
		}
		done <- err
	}()
	<-arrived
	f.srv.Close()
	require.Error(t, <-done, "the connection is cut, not answered")
	require.Equal(t, Stats{Canceled: 1, MaxInWindow: 1}, f.srv.Stats(), "admitted, then cut")
	f.srv.Close() // idempotent
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"negative rate":    {Rate: -1},
		"negative window":  {Window: -time.Second},
		"negative latency": {Latency: -time.Second},
		"negative symbols": {MaxSymbols: -1},
		"negative url":     {MaxURL: -1},
		"bad hours":        {Hours: market.Hours(9)},
	} {
		_, err := New(cfg)
		require.Error(t, err, name)
	}
	c := Config{}.withDefaults()
	require.Equal(t, time.Minute, c.Window)
	require.Equal(t, "fake-key-id", c.KeyID)
	require.Equal(t, "fake-secret", c.SecretKey)
	require.Equal(t, market.ExtendedHours, c.Hours)
	require.Equal(t, 16384, c.MaxURL)
	require.NoError(t, c.validate())

	s, err := New(Config{})
	require.NoError(t, err)
	_, err = s.Start()
	require.NoError(t, err)
	_, err = s.Start()
	require.Error(t, err, "already started")
	s.Close()
	_, err = s.Start()
	require.NoError(t, err, "startable again after Close")
	s.Close()
}

func stampsOf(bars []wireBar) []string {
	out := make([]string, len(bars))
	for i, b := range bars {
		out[i] = b.T
	}
	return out
}
