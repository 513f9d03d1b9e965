package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata/alpacafake"
)

// runFakeAlpaca serves the local imitation of Alpaca's bars API until ctx ends, so that anyone
// can watch the service spend a real plan's budget without an account: point
// `backfill dev --provider alpaca` (or serve) at it with APCA_API_DATA_URL.
func runFakeAlpaca(ctx context.Context, e *env, args []string) error {
	var listen, reject, hours string
	var rate int
	var latency time.Duration
	f := newFlags(e, "fake-alpaca", "[--listen 127.0.0.1:8788] [--rate 200]",
		"Serve a local imitation of Alpaca's market data v2 bars API (GET /v2/stocks/bars): multi-symbol\n"+
			"pages with the limit summed over the symbols, inclusive ends, opaque page tokens, the NYSE\n"+
			"calendar and Alpaca's extended-hours grid (the synthetic provider's bars), and the plan's rate\n"+
			"limit (429 with Retry-After beyond --rate requests in any minute). It never reaches the\n"+
			"internet. Keys: APCA_API_KEY_ID=fake-key-id APCA_API_SECRET_KEY=fake-secret.")
	f.String(&listen, "listen", "BACKFILL_FAKE_ALPACA_LISTEN", "127.0.0.1:8788", "address to listen on")
	f.Int(&rate, "rate", "BACKFILL_FAKE_ALPACA_RATE", 200, "requests allowed in any minute (0: unlimited)")
	f.String(&reject, "reject", "BACKFILL_FAKE_ALPACA_REJECT", "", "symbols answered 400 \"invalid symbol\", comma-separated")
	f.String(&hours, "hours", "BACKFILL_FAKE_ALPACA_HOURS", "extended", "intraday hours: extended (as Alpaca) or regular")
	f.Duration(&latency, "latency", "BACKFILL_FAKE_ALPACA_LATENCY", 0, "added to every answer")
	if err := f.Parse(args); err != nil {
		return err
	}
	h, err := market.ParseHours(hours)
	if err != nil {
		return fmt.Errorf("%w: --hours: %w", errUsage, err)
	}
	refused := map[string]bool{}
	for s := range strings.SplitSeq(reject, ",") {
		if s = strings.TrimSpace(s); s != "" {
			refused[s] = true
		}
	}
	fake, err := alpacafake.New(alpacafake.Config{Rate: rate, Hours: h, Latency: latency, Reject: func(s string) bool { return refused[s] }})
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	fmt.Fprintf(e.stdout, "alpaca: http://%s\n", ln.Addr())
	fmt.Fprintf(e.stdout, "use it:  APCA_API_DATA_URL=http://%s APCA_API_KEY_ID=fake-key-id APCA_API_SECRET_KEY=fake-secret backfill dev --provider alpaca\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(stopCtx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	st := fake.Stats()
	fmt.Fprintf(e.stdout, "served %d requests (%d answered 429, %d refused), %d bars; at most %d in a minute\n",
		st.Requests, st.RateLimited, st.Rejected, st.Bars, st.MaxInWindow)
	return nil
}
