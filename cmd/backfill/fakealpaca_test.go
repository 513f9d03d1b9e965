package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `backfill fake-alpaca` serves Alpaca's bars API with the plan's limit until stopped, then
// reports what it served.
func TestFakeAlpacaCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := newLineWaiter(`alpaca: http://\S+`)
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"fake-alpaca", "--listen", "127.0.0.1:0", "--rate", "2", "--reject", "BADX"},
			func(string) string { return "" }, stdout, &stderr)
	}()
	var base string
	select {
	case m := <-stdout.match:
		base = m[len("alpaca: "):]
	case code := <-done:
		t.Fatalf("exited with %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	get := func(symbols string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/stocks/bars?timeframe=1Day&start=2026-11-02&end=2026-11-06&symbols="+symbols, nil)
		require.NoError(t, err)
		req.Header.Set("APCA-API-KEY-ID", "fake-key-id")
		req.Header.Set("APCA-API-SECRET-KEY", "fake-secret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusBadRequest, get("AAPL,BADX"), "a refused symbol")
	require.Equal(t, http.StatusOK, get("AAPL,MSFT"))
	require.Equal(t, http.StatusOK, get("AAPL"))
	require.Equal(t, http.StatusTooManyRequests, get("AAPL"), "beyond 2 a minute")
	cancel()
	require.Equal(t, 0, <-done, stderr.String())
	require.Contains(t, stdout.String(), "served 4 requests (1 answered 429, 1 refused)")
}
