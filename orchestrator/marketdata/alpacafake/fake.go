package alpacafake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

// BarsPath is the one endpoint the fake serves.
const BarsPath = "/v2/stocks/bars"

// Alpaca's documented bounds of the limit parameter.
const (
	defaultLimit = 1000
	maxLimit     = 10000
)

// Config configures a Server. The zero value of every field means its default.
type Config struct {
	// Rate is how many requests the fake admits per Window; beyond it the answer is 429.
	// Default 0: unlimited. Alpaca's free plan allows 200 a minute.
	Rate int
	// Window is the length of the sliding rate window. Default time.Minute.
	Window time.Duration
	// Now is the fake's clock: it places requests in the rate window, is the default end of a
	// request, and no bar starting after it is served. Default time.Now.
	Now func() time.Time
	// KeyID and SecretKey are the credentials requests must send as APCA-API-KEY-ID and
	// APCA-API-SECRET-KEY. Default "fake-key-id" and "fake-secret".
	KeyID, SecretKey string
	// Hours are the hours of the intraday bars (15Min, 1Hour, 4Hour). Default
	// market.ExtendedHours, as Alpaca returns them.
	Hours market.Hours
	// Reject reports the symbols to refuse as Alpaca refuses unknown ones (400 "invalid
	// symbol: SYM"). It must be safe for concurrent use. Default nil: none beyond the
	// malformed ones (empty, or anything but A–Z, 0–9, '.' and '-'), which are always refused.
	Reject func(symbol string) bool
	// Latency is slept before every answer is written, after it is decided (so the rate window
	// holds arrival times), interrupted when the request's context ends (the client hung up, or
	// Close). Default 0.
	Latency time.Duration
	// MaxSymbols caps the distinct symbols of one request; beyond it the answer is 400.
	// Default 0: no cap (the URL length still bounds it).
	MaxSymbols int
	// MaxURL is the longest request URI (path and query) in bytes; a longer one is answered
	// 414. Default 16384.
	MaxURL int
}

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeyID == "" {
		c.KeyID = "fake-key-id"
	}
	if c.SecretKey == "" {
		c.SecretKey = "fake-secret"
	}
	if c.Hours == 0 {
		c.Hours = market.ExtendedHours
	}
	if c.MaxURL == 0 {
		c.MaxURL = 16384
	}
	return c
}

func (c Config) validate() error {
	if c.Rate < 0 {
		return fmt.Errorf("alpacafake: Rate %d must not be negative", c.Rate)
	}
	if c.Window < 0 {
		return fmt.Errorf("alpacafake: Window %v must not be negative", c.Window)
	}
	if c.Latency < 0 {
		return fmt.Errorf("alpacafake: Latency %v must not be negative", c.Latency)
	}
	if c.MaxSymbols < 0 {
		return fmt.Errorf("alpacafake: MaxSymbols %d must not be negative", c.MaxSymbols)
	}
	if c.MaxURL < 0 {
		return fmt.Errorf("alpacafake: MaxURL %d must not be negative", c.MaxURL)
	}
	if c.Hours != market.RegularHours && c.Hours != market.ExtendedHours {
		return fmt.Errorf("alpacafake: Hours %v: want regular or extended", c.Hours)
	}
	return nil
}

// Stats counts what a Server answered since it was made or Reset.
type Stats struct {
	// Requests is every answered request, whatever its status.
	Requests int64
	// Accepted is the 200 answers.
	Accepted int64
	// RateLimited is the 429 answers.
	RateLimited int64
	// Rejected is the 4xx answers other than 429 (bad keys, symbols, parameters, paths).
	Rejected int64
	// Canceled is the requests whose context ended before they were answered (the client hung
	// up during Latency, or Close interrupted them); their connection is cut. They are not in
	// Requests; one admitted by the rate limit still used its slot.
	Canceled int64
	// Bars is the bars served, summed over all pages and symbols.
	Bars int64
	// ZeroBar is the 200 pages that held no bar.
	ZeroBar int64
	// ClosedOnly is the 200 requests whose whole [start, end] holds no bar start of the grid for
	// any requested symbol: only closed-market time (nights, weekends, holidays), a request a
	// client that knows the calendar need not send. A range in the future of open sessions
	// gives zero bars but is not closed-only.
	ClosedOnly int64
	// MaxInWindow is the most admitted requests seen within one Window (at most Rate when a
	// rate is set).
	MaxInWindow int
	// Symbols is the distinct symbols of the 200 requests, summed over requests.
	Symbols int64
}

// Server imitates Alpaca's GET /v2/stocks/bars. It is safe for concurrent use.
type Server struct {
	cfg   Config
	synth *marketdata.Synthetic
	grid  market.Grid
	nyse  *market.Calendar // every symbol served is a stock: crypto pairs are refused

	mu     sync.Mutex
	window []time.Time // admission times within the last Window, oldest first
	stats  Stats

	life   sync.Mutex // guards the listener fields below
	srv    *http.Server
	served chan struct{}      // closed when srv.Serve returned
	cancel context.CancelFunc // ends the requests of srv
}

// New returns a Server, or an error when cfg is invalid.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	synth, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Hours: cfg.Hours, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("alpacafake: make synthetic bars: %w", err)
	}
	return &Server{cfg: cfg, synth: synth, grid: market.SyntheticGrid(cfg.Hours), nyse: market.NYSE()}, nil
}

// Handler serves the API (every path: unknown ones are answered 404). A request whose context
// ends before it is answered (during Latency) is aborted with panic(http.ErrAbortHandler), which
// net/http servers turn into a closed connection: serve the handler through an http.Server (or
// httptest.Server), not by calling it directly with a context that may end.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start serves the API on a new loopback listener and returns its base URL
// (http://127.0.0.1:port). It fails when the server is already started.
func (s *Server) Start() (string, error) {
	s.life.Lock()
	defer s.life.Unlock()
	if s.srv != nil {
		return "", errors.New("alpacafake: already started")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("alpacafake: listen on loopback: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // http.ErrServerClosed after Close; nothing else can be reported
	}()
	s.srv, s.served, s.cancel = srv, served, cancel
	return "http://" + ln.Addr().String(), nil
}

// Close stops the listener Start opened: requests in flight are interrupted (their context is
// cancelled, so a Latency sleep ends), connections are closed and Close returns once the serving
// goroutine has. It does nothing when the server is not started; Start may be called again.
func (s *Server) Close() {
	s.life.Lock()
	defer s.life.Unlock()
	if s.srv == nil {
		return
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close() // a handler ignored its context: cut its connection
	}
	<-s.served
	s.srv, s.served, s.cancel = nil, nil, nil
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Reset zeroes the counts and empties the rate window, as if the server had just been made.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
	s.window = nil
}

// apiError is an Alpaca error answer: {"code": <8 digits>, "message": "..."}; the 429 body has
// no code.
type apiError struct {
	status  int
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

func newError(status, code int, format string, args ...any) *apiError {
	return &apiError{status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Alpaca's error codes: the first three digits are the HTTP status.
const (
	codeBadRequest   = 40010001
	codeUnauthorized = 40110000
	codeNotFound     = 40410000
	codeMethod       = 40510000
	codeURITooLong   = 41410000
	codeInvalidParam = 42210000
	codeInternal     = 50010000
)

// page is the 200 body, Alpaca's multi-symbol shape. encoding/json writes map keys sorted, so
// the symbols ascend.
type page struct {
	Bars          map[string][]wireBar `json:"bars"`
	NextPageToken *string              `json:"next_page_token"`
}

type wireBar struct {
	T  string  `json:"t"`
	O  float64 `json:"o"`
	H  float64 `json:"h"`
	L  float64 `json:"l"`
	C  float64 `json:"c"`
	V  int64   `json:"v"`
	N  int64   `json:"n"`
	VW float64 `json:"vw"`
}

// toWire adds what Alpaca's bar has and the synthetic one lacks: the trade count n (the volume
// over 80, at least 1) and the VWAP vw (the typical price, which lies within [low, high]).
func toWire(b marketdata.Bar) wireBar {
	v := int64(math.Round(b.Volume))
	return wireBar{
		T: b.TS.UTC().Format(time.RFC3339), O: b.Open, H: b.High, L: b.Low, C: b.Close,
		V: v, N: max(1, v/80), VW: math.Round((b.High+b.Low+b.Close)/3*1e6) / 1e6,
	}
}

// answer is what one request gets.
type answer struct {
	status     int
	body       any
	retryAfter int // seconds, for a 429
	rate       rateState
	canceled   bool

	// For the stats of a 200.
	bars, symbols int
	closedOnly    bool
}

// rateState is the rate window as the X-RateLimit-* headers tell it.
type rateState struct {
	remaining int
	reset     int64 // Unix seconds when a slot frees
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	a := s.decide(r, s.cfg.Now())
	if a.canceled {
		s.abort()
	}
	if err := sleep(r.Context(), s.cfg.Latency); err != nil {
		s.abort()
	}
	body, err := json.Marshal(a.body)
	if err != nil { // the types above always marshal; keep the answer well formed anyway
		a.status = http.StatusInternalServerError
		body = []byte(`{"code":50010000,"message":"internal server error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if s.cfg.Rate > 0 {
		h.Set("X-RateLimit-Limit", strconv.Itoa(s.cfg.Rate))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(a.rate.remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(a.rate.reset, 10))
	}
	if a.status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	if a.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodGet)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(body) // a client that hung up is its own problem
	s.record(a)
}

// abort counts a request whose context ended before its answer and cuts its connection, as a
// server that goes away mid-request does: net/http closes the connection on this panic value
// instead of sending an empty 200.
func (s *Server) abort() {
	s.record(answer{canceled: true})
	panic(http.ErrAbortHandler)
}

// decide answers r at now. The checks run in the order a gateway would apply
// them: URI length, path, method, keys, parameters, then the rate limit; only a request that
// passes them all uses a slot of the rate window.
func (s *Server) decide(r *http.Request, now time.Time) answer {
	fail := func(e *apiError) answer {
		return answer{status: e.status, body: e, rate: s.peek(now)}
	}
	if len(r.RequestURI) > s.cfg.MaxURL {
		return fail(newError(http.StatusRequestURITooLong, codeURITooLong, "request URI too long: %d bytes, at most %d", len(r.RequestURI), s.cfg.MaxURL))
	}
	if r.URL.Path != BarsPath {
		return fail(newError(http.StatusNotFound, codeNotFound, "endpoint not found"))
	}
	if r.Method != http.MethodGet {
		return fail(newError(http.StatusMethodNotAllowed, codeMethod, "method not allowed"))
	}
	if !s.authorized(r.Header) {
		return fail(newError(http.StatusUnauthorized, codeUnauthorized, "request is not authorized"))
	}
	q, e := s.parse(r.URL.RawQuery, now)
	if e != nil {
		return fail(e)
	}
	rate, retryAfter, ok := s.admit(now)
	if !ok {
		return answer{status: http.StatusTooManyRequests, body: &apiError{Message: "too many requests."}, retryAfter: retryAfter, rate: rate}
	}
	bars, next, n, err := s.page(r.Context(), q, now)
	if err != nil {
		if r.Context().Err() != nil {
			return answer{canceled: true}
		}
		return answer{status: http.StatusInternalServerError, body: newError(http.StatusInternalServerError, codeInternal, "internal server error"), rate: rate}
	}
	p := page{Bars: bars}
	if next != nil {
		tok := q.token(*next)
		p.NextPageToken = &tok
	}
	return answer{status: http.StatusOK, body: p, rate: rate, bars: n, symbols: len(q.symbols),
		// Every symbol served is a stock on the NYSE grid, so one look answers for all of them.
		closedOnly: !s.grid.Any(s.nyse, q.tf, q.start, q.end.Add(time.Nanosecond))}
}

func (s *Server) authorized(h http.Header) bool {
	id := subtle.ConstantTimeCompare([]byte(h.Get("APCA-API-KEY-ID")), []byte(s.cfg.KeyID))
	secret := subtle.ConstantTimeCompare([]byte(h.Get("APCA-API-SECRET-KEY")), []byte(s.cfg.SecretKey))
	return id&secret == 1
}

// record adds an answer to the stats.
func (s *Server) record(a answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	if a.canceled {
		st.Canceled++
		return
	}
	st.Requests++
	switch {
	case a.status == http.StatusOK:
		st.Accepted++
		st.Bars += int64(a.bars)
		st.Symbols += int64(a.symbols)
		if a.bars == 0 {
			st.ZeroBar++
		}
		if a.closedOnly {
			st.ClosedOnly++
		}
	case a.status == http.StatusTooManyRequests:
		st.RateLimited++
	case a.status >= 400 && a.status < 500:
		st.Rejected++
	}
}

// admit takes a slot of the rate window at now, or reports how long until one frees.
func (s *Server) admit(now time.Time) (rate rateState, retryAfter int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if s.cfg.Rate > 0 && len(s.window) >= s.cfg.Rate {
		frees := s.window[0].Add(s.cfg.Window)
		retryAfter = max(1, int(math.Ceil(frees.Sub(now).Seconds())))
		return s.state(now), retryAfter, false
	}
	s.window = append(s.window, now)
	// A sliding count peaks at an admission, so the largest window seen is the largest count
	// right after one.
	s.stats.MaxInWindow = max(s.stats.MaxInWindow, len(s.window))
	return s.state(now), 0, true
}

// peek is the rate window at now without taking a slot.
func (s *Server) peek(now time.Time) rateState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	return s.state(now)
}

// prune drops the admissions that left the window: an admission at t counts while
// now-Window < t. The clock is assumed not to run backwards; if it does, admissions stay until
// the clock passes them again.
func (s *Server) prune(now time.Time) {
	cut := now.Add(-s.cfg.Window)
	i := 0
	for i < len(s.window) && !s.window[i].After(cut) {
		i++
	}
	s.window = s.window[i:]
}

// state is the window's rate headers; s.mu must be held and the window pruned.
func (s *Server) state(now time.Time) rateState {
	st := rateState{remaining: max(0, s.cfg.Rate-len(s.window)), reset: ceilUnix(now)}
	if len(s.window) > 0 {
		st.reset = ceilUnix(s.window[0].Add(s.cfg.Window))
	}
	return st
}

// ceilUnix is t in Unix seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// query is a parsed, valid request.
type query struct {
	symbols    []string // distinct, ascending
	tf         market.Timeframe
	tfName     string
	start, end time.Time // inclusive
	endGiven   bool      // end was sent (else it is now, which moves between pages)
	limit      int
	at         *position // where the page starts; nil for the first page
}

// position is where a page starts: symbol's bars from ts on, then the later symbols'.
type position struct {
	symbol string
	ts     time.Time
}

// timeframe maps Alpaca's spellings to ours.
func timeframe(name string) (market.Timeframe, bool) {
	switch name {
	case "15Min":
		return market.M15, true
	case "1Hour":
		return market.H1, true
	case "4Hour":
		return market.H4, true
	case "1Day":
		return market.D1, true
	case "1Week":
		return market.W1, true
	}
	return "", false
}

func (s *Server) parse(raw string, now time.Time) (*query, *apiError) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeBadRequest, "invalid query string")
	}
	q := &query{}
	list := v.Get("symbols")
	if list == "" {
		return nil, newError(http.StatusBadRequest, codeBadRequest, "missing symbols")
	}
	seen := map[string]bool{}
	for _, sym := range strings.Split(list, ",") {
		if seen[sym] {
			continue
		}
		seen[sym] = true
		if !validSymbol(sym) || (s.cfg.Reject != nil && s.cfg.Reject(sym)) {
			return nil, newError(http.StatusBadRequest, codeBadRequest, "invalid symbol: %s", sym)
		}
		q.symbols = append(q.symbols, sym)
	}
	if s.cfg.MaxSymbols > 0 && len(q.symbols) > s.cfg.MaxSymbols {
		return nil, newError(http.StatusBadRequest, codeBadRequest, "too many symbols: %d, at most %d per request", len(q.symbols), s.cfg.MaxSymbols)
	}
	slices.Sort(q.symbols)

	q.tfName = v.Get("timeframe")
	tf, ok := timeframe(q.tfName)
	if !ok {
		return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "invalid timeframe")
	}
	q.tf = tf

	if v.Get("start") == "" {
		return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "missing start")
	}
	if q.start, ok = s.parseTime(v.Get("start"), false); !ok {
		return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "invalid start: want RFC 3339 or YYYY-MM-DD")
	}
	q.end, q.endGiven = now, v.Get("end") != ""
	if q.endGiven {
		if q.end, ok = s.parseTime(v.Get("end"), true); !ok {
			return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "invalid end: want RFC 3339 or YYYY-MM-DD")
		}
	}
	if q.end.Before(q.start) {
		return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "end should not be before start")
	}

	q.limit = defaultLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "invalid limit: want 1 to %d", maxLimit)
		}
		q.limit = n
	}

	switch v.Get("sort") {
	case "", "asc":
	case "desc":
		return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "invalid sort: desc is not supported by this fake")
	default:
		return nil, newError(http.StatusUnprocessableEntity, codeInvalidParam, "invalid sort: want asc or desc")
	}

	if tok := v.Get("page_token"); tok != "" {
		at, ok := q.decode(tok)
		if !ok {
			return nil, newError(http.StatusBadRequest, codeBadRequest, "invalid page token")
		}
		q.at = at
	}
	return q, nil
}

// validSymbol reports whether sym looks like a stock symbol: A–Z, 0–9, '.' and '-' (BRK.B,
// BF-B), not empty. Lowercase and crypto pairs (BTC/USD) are refused.
func validSymbol(sym string) bool {
	if sym == "" {
		return false
	}
	for _, c := range sym {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// parseTime reads RFC 3339 or a bare date. A bare date is a New York day: its midnight as a
// start, its last instant as an (inclusive) end.
func (s *Server) parseTime(v string, end bool) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), true
	}
	d, err := time.ParseInLocation(time.DateOnly, v, s.nyse.Location())
	if err != nil {
		return time.Time{}, false
	}
	if end {
		d = d.AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	return d.UTC(), true
}

// fingerprint identifies the parameters a token belongs to: every one a client must leave
// unchanged while it pages.
func (q *query) fingerprint() string {
	end := "now"
	if q.endGiven {
		end = strconv.FormatInt(q.end.UnixNano(), 10)
	}
	h := sha256.Sum256([]byte(strings.Join([]string{
		strings.Join(q.symbols, ","), q.tfName, strconv.FormatInt(q.start.UnixNano(), 10), end, strconv.Itoa(q.limit),
	}, "|")))
	return hex.EncodeToString(h[:8])
}

// token encodes the position of the next bar and the fingerprint of q. Clients must treat it
// as opaque; the form is SYMBOL|unix-nanoseconds|fingerprint, base64.
func (q *query) token(at position) string {
	raw := at.symbol + "|" + strconv.FormatInt(at.ts.UnixNano(), 10) + "|" + q.fingerprint()
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

// decode reads a token issued for q's parameters.
func (q *query) decode(tok string) (*position, bool) {
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[2] != q.fingerprint() {
		return nil, false
	}
	if _, ok := slices.BinarySearch(q.symbols, parts[0]); !ok {
		return nil, false
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, false
	}
	ts := time.Unix(0, ns).UTC()
	if ts.Before(q.start) || ts.After(q.end) {
		return nil, false
	}
	return &position{symbol: parts[0], ts: ts}, true
}

// page collects up to q.limit bars from q's position on, symbol by symbol in ascending order,
// and returns where the next page starts (nil when no bar remains) and the bar count. No bar
// starting after now is served.
func (s *Server) page(ctx context.Context, q *query, now time.Time) (map[string][]wireBar, *position, int, error) {
	to := q.end.Add(time.Nanosecond) // the end is inclusive
	if cut := now.Add(time.Nanosecond); cut.Before(to) {
		to = cut
	}
	out := map[string][]wireBar{}
	n := 0
	i, from := 0, q.start
	if q.at != nil {
		i, _ = slices.BinarySearch(q.symbols, q.at.symbol)
		from = q.at.ts
	}
	for ; i < len(q.symbols); i, from = i+1, q.start {
		sym := q.symbols[i]
		need := q.limit - n
		// One bar more than fits tells whether another page follows, and where.
		bars, err := s.first(ctx, sym, q.tf, from, to, need+1)
		if err != nil {
			return nil, nil, 0, err
		}
		var next *position
		if len(bars) > need {
			next = &position{symbol: sym, ts: bars[need].TS}
			bars = bars[:need]
		}
		if len(bars) > 0 {
			wire := make([]wireBar, len(bars))
			for j, b := range bars {
				wire[j] = toWire(b)
			}
			out[sym] = wire
			n += len(bars)
		}
		if next != nil {
			return out, next, n, nil
		}
	}
	return out, nil, n, nil
}

// minChunk is the shortest span asked of the synthetic provider at once, so a small limit does
// not walk a closed weekend a few minutes at a time.
const minChunk = 7 * 24 * time.Hour

// first returns the first k bars of symbol in [from, to), asking the synthetic provider for a
// span about k bars long at a time, so a page costs about its own size whatever the range.
func (s *Server) first(ctx context.Context, symbol string, tf market.Timeframe, from, to time.Time, k int) ([]marketdata.Bar, error) {
	step := max(time.Duration(k+1)*tf.Duration(), minChunk)
	var out []marketdata.Bar
	for from.Before(to) && len(out) < k {
		end := from.Add(step)
		if end.After(to) || !end.After(from) {
			end = to
		}
		bars, err := s.synth.Bars(ctx, marketdata.Request{Symbol: symbol, Timeframe: tf, From: from, To: end})
		if err != nil {
			return nil, fmt.Errorf("synthesize %s %s bars from %s: %w", symbol, tf, from.Format(time.RFC3339), err)
		}
		out = append(out, bars...)
		from = end
	}
	if len(out) > k {
		out = out[:k]
	}
	return out, nil
}

// sleep waits d, or returns the context's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sleep the simulated latency: %w", ctx.Err())
	}
}
