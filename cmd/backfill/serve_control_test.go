package main

import (
	"context"
	"net/http"
	"testing"

	connectrpc "connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
	"github.com/symbolsync/backfill/server"
)

// serviceKey adds the local service_role key to every request.
type serviceKey struct{ base http.RoundTripper }

func (k serviceKey) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+server.LocalServiceRoleKey)
	return k.base.RoundTrip(r)
}

// `serve` serves the control plane, and stopping it ends open watch streams instead of waiting
// for them: a graceful shutdown still held up by a stream would time out and exit 1.
func TestServeControlPlane(t *testing.T) {
	t.Parallel()
	apiURL, _, stop := startServe(t)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := backfillv1connect.NewControlServiceClient(&http.Client{Transport: serviceKey{tr}}, apiURL)
	ctx := t.Context()

	stats, err := c.GetTimeframeJobStats(ctx, &backfillv1.GetTimeframeJobStatsRequest{Hours: 24})
	require.NoError(t, err)
	require.Len(t, stats.GetStats(), 5)
	// serve runs no orchestrator by default (--provider none), so it does not know their grid.
	_, err = c.RunTick(ctx, &backfillv1.RunTickRequest{})
	require.Equal(t, connectrpc.CodeFailedPrecondition, connectrpc.CodeOf(err), "%v", err)

	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.WatchBackfill(watchCtx, &backfillv1.WatchBackfillRequest{})
	require.NoError(t, err)
	conn, err := s.Conn()
	require.NoError(t, err)
	conn.ResponseHeader() // the watch listens

	require.Equal(t, 0, stop(), "serve stops cleanly with a watch open")
	require.False(t, s.Receive())
	require.Equal(t, connectrpc.CodeUnavailable, connectrpc.CodeOf(s.Err()), "%v", s.Err())
}
