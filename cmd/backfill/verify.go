package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/symbolsync/backfill/client"
	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
	"github.com/symbolsync/backfill/market"
)

// errHoles is verify's finding that some session lacks its bars: exit status 1, so that cron
// and scripts notice.
var errHoles = errors.New("holes found")

func runVerify(ctx context.Context, e *env, args []string) error {
	var (
		url, key, tf string
		repair       bool
		timeout      time.Duration
	)
	f := newFlags(e, "verify", "[SYMBOL…] [--timeframe m15|h1|h4|d1|w1] [--repair]",
		"Check the completeness of the stored bars through the control plane (VerifyCoverage): per\n"+
			"definition the sessions of its window that have ended, how many were fetched, how many hold\n"+
			"their bars, and each hole (a session fetched without its bars, or whose run failed for good)\n"+
			"with its state. Without SYMBOL, every enabled definition. --repair queues a fetch of exactly\n"+
			"the holes' sessions, given-up holes included. Exit status 0 when there is no hole, 1 when\n"+
			"there are holes (or on an error: stderr says which), 2 on bad input: it can run from cron.")
	f.String(&url, "url", "BACKFILL_URL", client.DefaultURL, "the API URL of a server that runs an orchestrator")
	f.String(&key, "key", "BACKFILL_SERVICE_ROLE_KEY", "",
		"a service_role key or an sb_secret_ key; prefer the environment, flags show in process listings (default: SUPABASE_SERVICE_ROLE_KEY, else the local development service_role key)")
	f.String(&tf, "timeframe", "BACKFILL_VERIFY_TIMEFRAME", "", "only this timeframe: m15, h1, h4, d1 or w1 (default: all)")
	f.Bool(&repair, "repair", "BACKFILL_VERIFY_REPAIR", false, "queue repair runs for the holes found")
	f.Duration(&timeout, "timeout", "BACKFILL_VERIFY_TIMEOUT", 5*time.Minute, "bound on the check (every definition's bars are read)")
	positional, rest := splitArgs(f.fs, args)
	if err := f.Parse(rest); err != nil {
		return err
	}
	if timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	var timeframe backfillv1.Timeframe
	if tf != "" {
		if !market.Timeframe(tf).Valid() {
			return fmt.Errorf("%w: --timeframe %q: want m15, h1, h4, d1 or w1", errUsage, tf)
		}
		timeframe = backfillv1.Timeframe(backfillv1.Timeframe_value["TIMEFRAME_"+strings.ToUpper(tf)])
	}
	url = strings.TrimRight(url, "/")
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("%w: --url %q must start with http:// or https://", errUsage, url)
	}
	key, keyFrom := controlKey(f, e, key)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	ctl := backfillv1connect.NewControlServiceClient(&http.Client{Transport: &keyTransport{key: key, base: transport}}, url)

	req := &backfillv1.VerifyCoverageRequest{Symbols: positional, Timeframe: timeframe, Repair: repair}
	res, err := call(ctx, timeout, ctl.VerifyCoverage, req)
	if err != nil {
		return controlRPCError("verify coverage", url, keyFrom, err)
	}
	printVerify(e.stdout, res, repair)
	if res.GetHoles() > 0 {
		return fmt.Errorf("%w: %d sessions lack their bars", errHoles, res.GetHoles())
	}
	return nil
}

// printVerify writes one line per definition and one per hole, then a summary.
func printVerify(w io.Writer, res *backfillv1.VerifyCoverageResponse, repair bool) {
	tfName := func(tf backfillv1.Timeframe) string {
		return strings.ToLower(strings.TrimPrefix(tf.String(), "TIMEFRAME_"))
	}
	for _, d := range res.GetDefinitions() {
		fmt.Fprintf(w, "%-8s %-3s  sessions expected %4d  fetched %4d  complete %4d (%.1f %%)",
			d.GetSymbol(), tfName(d.GetTimeframe()), d.GetSessionsExpected(), d.GetSessionsFetched(),
			d.GetSessionsComplete(), 100*d.GetCompleteness())
		if n := d.GetSessionsSuspicious(); n > 0 {
			fmt.Fprintf(w, "  suspicious %d", n)
		}
		fmt.Fprintln(w)
		for _, h := range d.GetHoles() {
			fmt.Fprintf(w, "  hole %s %-7s %d/%d bars  %s", h.GetSessionDate(), h.GetKind(), h.GetFoundBars(), h.GetExpectedBars(), h.GetState())
			if h.GetRepairs() > 0 {
				fmt.Fprintf(w, " (repairs %d)", h.GetRepairs())
			}
			if h.GetReason() != "" {
				fmt.Fprintf(w, ": %s", h.GetReason())
			}
			fmt.Fprintln(w)
		}
	}
	checked := "-"
	if res.GetCheckedAt() != nil {
		checked = res.GetCheckedAt().AsTime().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%d definitions, %d holes (provider %s, checked at %s)\n", len(res.GetDefinitions()), res.GetHoles(), res.GetProvider(), checked)
	if repair {
		fmt.Fprintf(w, "queued %d repair runs\n", res.GetRepairsQueued())
	}
}
