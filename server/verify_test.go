package server_test

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/control"
	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/server"
)

// TestControlVerifyCoverage: VerifyCoverage over gRPC checks afresh, names a deleted session as a
// hole, queues its repair with repair, and GetSymbolCoverage reports the same figures and holes
// as the SQL function and coverage_holes. The clock is pinned: Friday 2026-12-04 22:00Z, an
// 8-day m15 window of six sessions (the early close of 11-27 and 11-30 to 12-04).
func TestControlVerifyCoverage(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)
	a := startAPI(t, apiOptions{control: &control.Config{}, checker: func() time.Time { return now }})
	f := fixture{t, a.pool}
	ctx := t.Context()
	c := controlClient(a, server.LocalServiceRoleKey, connect.WithGRPC())
	f.definition("VRFY", "m15", 8, 300, true, "")

	// The backfill, as the orchestrator does it, at the pinned clock.
	p, err := marketdata.NewSynthetic(marketdata.SyntheticConfig{Now: func() time.Time { return now }})
	require.NoError(t, err)
	_, err = orchestrator.EnqueueChanges(ctx, a.pool, now, orchestrator.SliceSizesFor(p.PageLimit()))
	require.NoError(t, err)
	runs, err := orchestrator.Claim(ctx, a.pool, now, "test", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	req := runs[0].Request()
	bars, err := p.Bars(ctx, marketdata.Request{Symbol: "VRFY", Timeframe: runs[0].Timeframe, From: req.From, To: req.To})
	require.NoError(t, err)
	_, err = orchestrator.Write(ctx, a.pool, now, runs[0], orchestrator.Fetched{Provider: p.Name(), Bars: bars})
	require.NoError(t, err)

	v, err := c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: []string{" vrfy "}})
	require.NoError(t, err)
	require.Equal(t, "synthetic", v.GetProvider())
	require.True(t, v.GetCheckedAt().AsTime().Equal(now))
	require.Len(t, v.GetDefinitions(), 1)
	d := v.GetDefinitions()[0]
	require.Equal(t, []int32{6, 6, 6}, []int32{d.GetSessionsExpected(), d.GetSessionsFetched(), d.GetSessionsComplete()})
	require.Equal(t, 1.0, d.GetCompleteness())
	require.Equal(t, backfillv1.Timeframe_TIMEFRAME_M15, d.GetTimeframe())
	require.True(t, d.GetWindowFrom().AsTime().Equal(now.AddDate(0, 0, -8)))
	require.Empty(t, d.GetHoles())

	f.exec(`DELETE FROM ohlc_bars_v2 WHERE ts >= '2026-12-02T14:30:00Z' AND ts < '2026-12-02T21:00:00Z'`)
	v, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Timeframe: backfillv1.Timeframe_TIMEFRAME_M15})
	require.NoError(t, err)
	require.EqualValues(t, 1, v.GetHoles())
	require.Zero(t, v.GetRepairsQueued())
	h := v.GetDefinitions()[0].GetHoles()
	require.Len(t, h, 1)
	require.Equal(t, []any{"2026-12-02", "missing", "open", int32(26), int32(0)},
		[]any{h[0].GetSessionDate(), h[0].GetKind(), h[0].GetState(), h[0].GetExpectedBars(), h[0].GetFoundBars()})
	require.True(t, h[0].GetFrom().AsTime().Equal(time.Date(2026, 12, 2, 14, 30, 0, 0, time.UTC)))
	require.True(t, h[0].GetTo().AsTime().Equal(time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)))

	cov, err := c.GetSymbolCoverage(ctx, &backfillv1.GetSymbolCoverageRequest{Symbol: "VRFY"})
	require.NoError(t, err)
	requireProto(t, coverageFromSQL(t, a.pool, "VRFY"), cov)
	m15 := cov.GetCoverage()[0]
	require.Equal(t, []int32{6, 6, 5}, []int32{m15.GetSessionsExpected(), m15.GetSessionsFetched(), m15.GetSessionsComplete()})
	require.InDelta(t, 5.0/6, m15.GetCompleteness(), 1e-4)
	require.Len(t, m15.GetHoles(), 1)
	require.Nil(t, cov.GetCoverage()[1].SessionsExpected, "h1 has no definition: never checked, absent")

	v, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: []string{"VRFY"}, Repair: true})
	require.NoError(t, err)
	require.EqualValues(t, 1, v.GetRepairsQueued())
	require.Equal(t, "repairing", v.GetDefinitions()[0].GetHoles()[0].GetState())
	require.EqualValues(t, 1, v.GetDefinitions()[0].GetHoles()[0].GetRepairs())
	var repair int
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE triggered_by = 'repair' AND status = 'queued'
		AND slice_from = '2026-12-02T14:30:00Z' AND slice_to = '2026-12-02T21:00:00Z'`).Scan(&repair))
	require.Equal(t, 1, repair)

	// Bad input says what is wrong and writes nothing.
	_, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: []string{"NOPE", "VRFY", "ZZZ"}, Repair: true})
	requireCode(t, err, connect.CodeInvalidArgument, "unknown symbol(s): NOPE, ZZZ")
	_, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: []string{"  "}})
	requireCode(t, err, connect.CodeInvalidArgument, "symbols[0] is empty")
	_, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Timeframe: 99})
	requireCode(t, err, connect.CodeInvalidArgument, "")
	many := make([]string, control.MaxVerifySymbols+1)
	for i := range many {
		many[i] = "A"
	}
	_, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: many})
	requireCode(t, err, connect.CodeInvalidArgument, "at most 1000 symbols per request, got 1001")
	_, err = c.VerifyCoverage(ctx, &backfillv1.VerifyCoverageRequest{Symbols: []string{strings.Repeat("A", 33)}})
	requireCode(t, err, connect.CodeInvalidArgument, "symbols[0] is longer than 32 characters")
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE triggered_by = 'repair'`).Scan(&repair))
	require.Equal(t, 1, repair, "no more repairs queued by the refused calls")
}
