package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/symbolsync/backfill/client"
	"github.com/symbolsync/backfill/server"
)

func runSync(ctx context.Context, e *env, args []string) error {
	var (
		url, key, token, source, timeframes string
		untrack                             bool
	)
	f := newFlags(e, "sync", "SYMBOL... [--source watchlist] [--timeframes m15,h1,h4] [--delete]",
		"Track symbols through the sync-user-symbols function, exactly as the app calls it (POST with\n"+
			"the key as bearer), and print the answer. Works against `backfill dev`/`serve` and against a\n"+
			"hosted Supabase project. --delete untracks instead.")
	f.String(&url, "url", "BACKFILL_URL", client.DefaultURL, "the API (or Supabase project) URL")
	f.String(&key, "key", "BACKFILL_KEY", server.LocalAnonKey, "the anon or publishable key (default: the local development anon key)")
	f.String(&token, "access-token", "BACKFILL_ACCESS_TOKEN", "", "a user's access token (see backfill token): track for that user instead of anonymously")
	f.String(&source, "source", "BACKFILL_SOURCE", "watchlist", "watchlist, chart_view or recent_search")
	f.String(&timeframes, "timeframes", "BACKFILL_TIMEFRAMES", "", "comma-separated timeframes: m15, h1, h4, d1, w1 (default: the server's m15,h1,h4)")
	f.Bool(&untrack, "delete", "BACKFILL_DELETE", false, "untrack the symbols from --source")
	// Symbols come first on the command line, flags after or before them.
	symbols, rest := splitPositional(args)
	if err := f.Parse(rest); err != nil {
		return err
	}
	if len(symbols) == 0 {
		return fmt.Errorf("%w: name at least one symbol, e.g. backfill sync AAPL MSFT", errUsage)
	}
	c, err := client.New(client.Config{URL: url, Key: key, AccessToken: token})
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var res any
	if untrack {
		res, err = c.Untrack(ctx, symbols, source)
	} else {
		res, err = c.Sync(ctx, symbols, source, splitList(timeframes))
	}
	if err != nil {
		return err
	}
	out, _ := json.Marshal(res)
	fmt.Fprintln(e.stdout, string(out))
	return nil
}

// splitPositional separates leading arguments that are not flags (the symbols) from the rest;
// symbols may also follow the flags.
func splitPositional(args []string) (positional, flagArgs []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(positional, args[i+1:]...), flagArgs
		case len(a) > 1 && a[0] == '-':
			flagArgs = append(flagArgs, a)
			// A flag's separate value ("--source watchlist") travels with it; booleans and
			// --flag=value forms take none.
			if !strings.Contains(a, "=") && !isBoolFlag(a) && i+1 < len(args) {
				i++
				flagArgs = append(flagArgs, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return positional, flagArgs
}

func isBoolFlag(a string) bool {
	switch a {
	case "-delete", "--delete", "-h", "-help", "--help":
		return true
	}
	return false
}
