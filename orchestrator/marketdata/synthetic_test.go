package marketdata

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

var farFuture = func() time.Time { return utc("2030-01-01T00:00:00Z") }

func newTestSynthetic(t *testing.T, mod func(*SyntheticConfig)) *Synthetic {
	t.Helper()
	cfg := SyntheticConfig{Now: farFuture}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSynthetic(cfg)
	require.NoError(t, err)
	return s
}

func ny(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	return loc
}

func TestSyntheticDeterministic(t *testing.T) {
	t.Parallel()
	for _, symbol := range []string{"AAPL", "BTC/USD"} {
		for _, tf := range market.Timeframes() {
			t.Run(symbol+"/"+string(tf), func(t *testing.T) {
				t.Parallel()
				from, to := utc("2026-01-05T00:00:00Z"), utc("2026-03-30T00:00:00Z")
				a, b := newTestSynthetic(t, nil), newTestSynthetic(t, nil)
				x, err := a.Bars(context.Background(), Request{Symbol: symbol, Timeframe: tf, From: from, To: to})
				require.NoError(t, err)
				require.NotEmpty(t, x)
				y, err := b.Bars(context.Background(), Request{Symbol: symbol, Timeframe: tf, From: from, To: to})
				require.NoError(t, err)
				require.Equal(t, x, y, "same request, same bars")

				// An overlapping, shifted request agrees on every shared bar.
				z, err := a.Bars(context.Background(), Request{Symbol: symbol, Timeframe: tf, From: from.Add(17 * 24 * time.Hour), To: to.Add(30 * 24 * time.Hour)})
				require.NoError(t, err)
				byTS := map[time.Time]Bar{}
				for _, bar := range x {
					byTS[bar.TS] = bar
				}
				shared := 0
				for _, bar := range z {
					if old, ok := byTS[bar.TS]; ok {
						require.Equal(t, old, bar)
						shared++
					}
				}
				require.Positive(t, shared)

				// Another symbol gets other prices.
				other, err := a.Bars(context.Background(), Request{Symbol: symbol + "X", Timeframe: tf, From: from, To: to})
				require.NoError(t, err)
				require.NotEqual(t, x[0].Open, other[0].Open)
			})
		}
	}
}

func TestSyntheticOHLCInvariants(t *testing.T) {
	t.Parallel()
	s := newTestSynthetic(t, nil)
	n := 0
	for _, symbol := range []string{"AAPL", "MSFT", "SPY", "BTC/USD", "ETH/USD"} {
		for _, tf := range market.Timeframes() {
			bars, err := s.Bars(context.Background(), Request{Symbol: symbol, Timeframe: tf, From: utc("2025-01-01T00:00:00Z"), To: utc("2026-01-01T00:00:00Z")})
			require.NoError(t, err)
			for i, b := range bars {
				// Plain comparisons: require per bar is slow over 10⁵ bars.
				if b.High < max(b.Open, b.Close) || b.Low > min(b.Open, b.Close) || b.Low <= 0 || b.Volume <= 0 {
					t.Fatalf("%s %s: implausible bar %+v", symbol, tf, b)
				}
				if b.TS.Location() != time.UTC || (i > 0 && !bars[i-1].TS.Before(b.TS)) {
					t.Fatalf("%s %s: bar %d at %v not UTC, sorted and unique", symbol, tf, i, b.TS)
				}
				n++
			}
		}
	}
	require.Greater(t, n, 100000)
}

func TestSyntheticStockSession(t *testing.T) {
	t.Parallel()
	loc := ny(t)
	s := newTestSynthetic(t, nil)
	// 2026-03-08 (Sunday) is the start of daylight time in New York.
	from, to := utc("2026-03-05T00:00:00Z"), utc("2026-03-11T00:00:00Z")
	perDay := map[market.Timeframe]int{market.M15: 26, market.H1: 7, market.H4: 2}
	for tf, want := range perDay {
		bars, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: tf, From: from, To: to})
		require.NoError(t, err)
		days := map[string]int{}
		for _, b := range bars {
			local := b.TS.In(loc)
			require.NotEqual(t, time.Saturday, local.Weekday(), "%s %v", tf, local)
			require.NotEqual(t, time.Sunday, local.Weekday(), "%s %v", tf, local)
			// Clock-aligned bars that overlap the regular session 09:30–16:00.
			mins := local.Hour()*60 + local.Minute()
			require.Zero(t, mins%int(tf.Duration()/time.Minute), "%s %v not on the clock grid", tf, local)
			require.Greater(t, mins+int(tf.Duration()/time.Minute), 9*60+30, "%s %v", tf, local)
			require.Less(t, mins, 16*60, "%s %v", tf, local)
			days[local.Format(time.DateOnly)]++
		}
		require.Equal(t, map[string]int{"2026-03-05": want, "2026-03-06": want, "2026-03-09": want, "2026-03-10": want}, days, tf)
	}
	h4, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.H4, From: utc("2026-03-06T00:00:00Z"), To: utc("2026-03-10T00:00:00Z")})
	require.NoError(t, err)
	// 08:00 and 12:00 New York (four-hour bars from midnight, market.H4Offset): EST before the
	// change, EDT after.
	require.Equal(t, []string{"2026-03-06T13:00:00Z", "2026-03-06T17:00:00Z", "2026-03-09T12:00:00Z", "2026-03-09T16:00:00Z"}, stamps(h4))

	d1, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: from, To: to})
	require.NoError(t, err)
	require.Equal(t, []string{"2026-03-05T05:00:00Z", "2026-03-06T05:00:00Z", "2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z"}, stamps(d1))

	w1, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.W1, From: utc("2026-02-20T00:00:00Z"), To: utc("2026-03-20T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2026-02-23T05:00:00Z", "2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z", "2026-03-16T04:00:00Z"}, stamps(w1))

	// A night and a weekend hold nothing.
	for _, r := range [][2]string{{"2026-03-05T21:00:00Z", "2026-03-06T14:30:00Z"}, {"2026-03-06T21:00:00Z", "2026-03-09T13:30:00Z"}} {
		bars, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.M15, From: utc(r[0]), To: utc(r[1])})
		require.NoError(t, err)
		require.Empty(t, bars, r)
	}
}

// TestSyntheticFollowsTheCalendar: no bars on holidays, early closes end at 13:00, and
// extended hours run 04:00–20:00 (17:00 on early closes), as Alpaca's feed does.
func TestSyntheticFollowsTheCalendar(t *testing.T) {
	t.Parallel()
	loc := ny(t)
	regular := newTestSynthetic(t, nil)
	extended := newTestSynthetic(t, func(c *SyntheticConfig) { c.Hours = market.ExtendedHours })
	local := func(bars []Bar) []string {
		out := make([]string, len(bars))
		for i, b := range bars {
			out[i] = b.TS.In(loc).Format("01-02 15:04")
		}
		return out
	}
	day := func(s *Synthetic, tf market.Timeframe, date string) []string {
		from, err := time.ParseInLocation(time.DateOnly, date, loc)
		require.NoError(t, err)
		bars, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: tf, From: from, To: from.AddDate(0, 0, 1)})
		require.NoError(t, err)
		return local(bars)
	}
	// Thanksgiving, MLK day, Good Friday, Christmas, the observed Independence Day.
	for _, holiday := range []string{"2026-11-26", "2026-01-19", "2026-04-03", "2025-12-25", "2026-07-03"} {
		for _, tf := range []market.Timeframe{market.M15, market.H1, market.H4, market.D1} {
			require.Empty(t, day(regular, tf, holiday), "%s %s", tf, holiday)
			require.Empty(t, day(extended, tf, holiday), "%s %s", tf, holiday)
		}
	}
	// The 13:00 early close after Thanksgiving.
	m15 := day(regular, market.M15, "2026-11-27")
	require.Len(t, m15, 14)
	require.Equal(t, "11-27 09:30", m15[0])
	require.Equal(t, "11-27 12:45", m15[len(m15)-1])
	require.Equal(t, []string{"11-27 09:00", "11-27 10:00", "11-27 11:00", "11-27 12:00"}, day(regular, market.H1, "2026-11-27"))
	require.Equal(t, []string{"11-27 08:00", "11-27 12:00"}, day(regular, market.H4, "2026-11-27"))
	require.Equal(t, []string{"11-27 00:00"}, day(regular, market.D1, "2026-11-27"))
	ext := day(extended, market.M15, "2026-11-27")
	require.Len(t, ext, 13*4)
	require.Equal(t, "11-27 04:00", ext[0])
	require.Equal(t, "11-27 16:45", ext[len(ext)-1])
	h1 := day(extended, market.H1, "2026-12-01")
	require.Len(t, h1, 16)
	require.Equal(t, "12-01 04:00", h1[0])
	require.Equal(t, "12-01 19:00", h1[len(h1)-1])
	require.Equal(t, []string{"12-01 04:00", "12-01 08:00", "12-01 12:00", "12-01 16:00"}, day(extended, market.H4, "2026-12-01"))

	// The week of MLK day: its w1 bar is still stamped on the Monday holiday.
	w1, err := regular.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.W1, From: utc("2026-01-12T00:00:00Z"), To: utc("2026-01-26T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2026-01-12T05:00:00Z", "2026-01-19T05:00:00Z"}, stamps(w1))
}

func TestSyntheticCryptoTradesAroundTheClock(t *testing.T) {
	t.Parallel()
	s := newTestSynthetic(t, nil)
	from, to := utc("2026-03-06T00:00:00Z"), utc("2026-03-10T00:00:00Z") // Fri–Mon, over the DST change
	for _, tf := range []market.Timeframe{market.M15, market.H1, market.H4, market.D1} {
		bars, err := s.Bars(context.Background(), Request{Symbol: "BTC/USD", Timeframe: tf, From: from, To: to})
		require.NoError(t, err)
		require.Len(t, bars, int(to.Sub(from)/tf.Duration()), tf)
		for i, b := range bars {
			require.Equal(t, from.Add(time.Duration(i)*tf.Duration()), b.TS, tf)
		}
	}
	// A request starting off the grid begins at the next grid point.
	bars, err := s.Bars(context.Background(), Request{Symbol: "ETH/USD", Timeframe: market.H4, From: utc("2026-03-07T01:00:00Z"), To: utc("2026-03-07T12:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2026-03-07T04:00:00Z", "2026-03-07T08:00:00Z"}, stamps(bars))
	w1, err := s.Bars(context.Background(), Request{Symbol: "BTC/USD", Timeframe: market.W1, From: utc("2026-03-01T00:00:00Z"), To: utc("2026-03-20T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, []string{"2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"}, stamps(w1))
	require.NotEqual(t, w1[0].Volume, float64(int64(w1[0].Volume)), "crypto volumes are fractional")
}

func TestSyntheticNeverAfterNow(t *testing.T) {
	t.Parallel()
	now := utc("2026-03-10T15:07:00Z") // Tuesday 11:07 EDT
	s := newTestSynthetic(t, func(c *SyntheticConfig) { c.Now = func() time.Time { return now } })
	bars, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.M15, From: utc("2026-03-10T00:00:00Z"), To: utc("2026-03-11T00:00:00Z")})
	require.NoError(t, err)
	require.Len(t, bars, 7) // 09:30 … 11:00, the open bar included
	require.Equal(t, "2026-03-10T15:00:00Z", bars[len(bars)-1].TS.Format(time.RFC3339))
	crypto, err := s.Bars(context.Background(), Request{Symbol: "BTC/USD", Timeframe: market.H1, From: utc("2026-03-10T00:00:00Z"), To: utc("2026-03-11T00:00:00Z")})
	require.NoError(t, err)
	require.Len(t, crypto, 16)
	for _, b := range append(bars, crypto...) {
		require.False(t, b.TS.After(now))
	}
	future, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2026-03-11T00:00:00Z"), To: utc("2026-04-11T00:00:00Z")})
	require.NoError(t, err)
	require.Empty(t, future)
}

func TestSyntheticErrorRate(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) (string, *Synthetic) {
		s := newTestSynthetic(t, func(c *SyntheticConfig) { c.ErrorRate = 0.3; c.Seed = seed; c.Registerer = prometheus.NewRegistry() })
		pattern := make([]byte, 2000)
		for i := range pattern {
			_, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-03T00:00:00Z")})
			pattern[i] = '.'
			if err != nil {
				require.True(t, IsRetryable(err))
				var pe *Error
				require.ErrorAs(t, err, &pe)
				require.Equal(t, CodeInjected, pe.Code)
				pattern[i] = 'x'
			}
		}
		return string(pattern), s
	}
	p1, s := run(42)
	p2, _ := run(42)
	p3, _ := run(7)
	require.Equal(t, p1, p2, "same seed, same faults")
	require.NotEqual(t, p1, p3)
	fails := 0
	for _, c := range p1 {
		if c == 'x' {
			fails++
		}
	}
	require.InDelta(t, 600, fails, 100, "about 30%% of 2000 calls fail")
	require.Equal(t, float64(fails), testutil.ToFloat64(s.metrics.errors.WithLabelValues("synthetic", "retryable")))
}

func TestSyntheticLatency(t *testing.T) {
	t.Parallel()
	s := newTestSynthetic(t, func(c *SyntheticConfig) { c.Latency = 50 * time.Millisecond })
	start := time.Now()
	_, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-03T00:00:00Z")})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	slow := newTestSynthetic(t, func(c *SyntheticConfig) { c.Latency = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = slow.Bars(ctx, Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-03T00:00:00Z")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, IsRetryable(err), "a deadline is a retryable timeout")
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, CodeTimeout, pe.Code)
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	_, err = slow.Bars(canceled, Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-03T00:00:00Z")})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, IsRetryable(err), "a cancellation (shutdown) is nobody's failure")
	require.False(t, errors.As(err, &pe))
	require.Less(t, time.Since(start), 10*time.Second)

	// The latency is per page: 25 round-the-clock m15 bars are three pages of 10.
	paged := newTestSynthetic(t, func(c *SyntheticConfig) { c.Latency = 30 * time.Millisecond; c.PageLimit = 10 })
	require.Equal(t, 10, paged.PageLimit())
	start = time.Now()
	bars, err := paged.Bars(context.Background(), Request{Symbol: "BTC/USD", Timeframe: market.M15, From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-02T06:15:00Z")})
	require.NoError(t, err)
	require.Len(t, bars, 25)
	require.GreaterOrEqual(t, time.Since(start), 90*time.Millisecond)
}

func TestSyntheticConfigAndRequests(t *testing.T) {
	t.Parallel()
	for _, cfg := range []SyntheticConfig{{ErrorRate: 1.5}, {ErrorRate: -0.1}, {Latency: -time.Second}, {PageLimit: -1}} {
		_, err := NewSynthetic(cfg)
		require.Error(t, err, fmt.Sprint(cfg))
	}
	s := newTestSynthetic(t, nil)
	require.Equal(t, "synthetic", s.Name())
	require.Equal(t, 10000, s.PageLimit(), "Alpaca's page by default")
	_, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: "mn1", From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-03T00:00:00Z")})
	require.True(t, IsPermanent(err))
	bars, err := s.Bars(context.Background(), Request{Symbol: "AAPL", Timeframe: market.D1, From: utc("2026-03-03T00:00:00Z"), To: utc("2026-03-02T00:00:00Z")})
	require.NoError(t, err)
	require.Empty(t, bars)
}

func TestSyntheticBarsMulti(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := newTestSynthetic(t, func(c *SyntheticConfig) { c.Registerer = reg })
	from, to := utc("2026-03-02T00:00:00Z"), utc("2026-03-04T00:00:00Z")
	res, err := s.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL", "BTC/USD", "", "MSFT", "AAPL"}, Timeframe: market.H1, From: from, To: to, Purpose: PurposeRefresh})
	require.NoError(t, err)
	require.Len(t, res.Bars, 3)
	for _, sym := range []string{"AAPL", "BTC/USD", "MSFT"} {
		want, err := s.Bars(context.Background(), Request{Symbol: sym, Timeframe: market.H1, From: from, To: to})
		require.NoError(t, err)
		require.NotEmpty(t, want)
		require.Equal(t, want, res.Bars[sym], sym)
	}
	require.Len(t, res.Rejected, 1)
	require.True(t, IsPermanent(res.Rejected[""]))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.requests.WithLabelValues("synthetic", PurposeRefresh)), "62 bars: one page")
	require.Equal(t, 3.0, testutil.ToFloat64(s.metrics.requests.WithLabelValues("synthetic", PurposeBackfill)), "the three Bars calls")

	_, err = s.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL"}, Timeframe: "mn1", From: from, To: to})
	require.True(t, IsPermanent(err))
	require.Equal(t, 1000, s.MaxSymbols())
}

func TestSyntheticBarsMultiPagesAndZeroBars(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// 3 × 25 round-the-clock m15 bars = 75 bars, summed over the symbols: 8 pages of 10.
	s := newTestSynthetic(t, func(c *SyntheticConfig) {
		c.PageLimit = 10
		c.Latency = 10 * time.Millisecond
		c.MaxSymbols = 3
		c.Registerer = reg
	})
	start := time.Now()
	res, err := s.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"BTC/USD", "ETH/USD", "SOL/USD"}, Timeframe: market.M15,
		From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-02T06:15:00Z"), Purpose: PurposeRepair})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond, "Latency per page")
	for _, bars := range res.Bars {
		require.Len(t, bars, 25)
	}
	require.Equal(t, 8.0, testutil.ToFloat64(s.metrics.requests.WithLabelValues("synthetic", PurposeRepair)))
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.zeroBars.WithLabelValues("synthetic", PurposeRepair)))

	// A weekend for stocks: one page, empty.
	res, err = s.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL", "MSFT"}, Timeframe: market.M15,
		From: utc("2026-03-07T00:00:00Z"), To: utc("2026-03-09T00:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, map[string][]Bar{"AAPL": nil, "MSFT": nil}, res.Bars)
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.requests.WithLabelValues("synthetic", PurposeBackfill)))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.zeroBars.WithLabelValues("synthetic", PurposeBackfill)))

	_, err = s.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"A", "B", "C", "D"}, Timeframe: market.M15,
		From: utc("2026-03-07T00:00:00Z"), To: utc("2026-03-09T00:00:00Z")})
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, CodeInvalidRequest, pe.Code)
	require.Contains(t, err.Error(), "MaxSymbols")
}

func TestSyntheticBarsMultiInjectedErrorsFailTheCall(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := newTestSynthetic(t, func(c *SyntheticConfig) { c.ErrorRate = 1; c.Registerer = reg })
	res, err := s.BarsMulti(context.Background(), MultiRequest{Symbols: []string{"AAPL", "MSFT"}, Timeframe: market.D1,
		From: utc("2026-03-02T00:00:00Z"), To: utc("2026-03-04T00:00:00Z")})
	require.True(t, IsRetryable(err))
	require.Empty(t, res.Bars)
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.errors.WithLabelValues("synthetic", "retryable")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.requests.WithLabelValues("synthetic", PurposeBackfill)))
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.zeroBars.WithLabelValues("synthetic", PurposeBackfill)))
}
