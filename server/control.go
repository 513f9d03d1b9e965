package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/symbolsync/backfill/control"
	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
)

// controlService serves backfill.v1.ControlService: the proto and Connect edge of package
// control. The request gate has admitted only service callers (requireService).
type controlService struct {
	ctl    *control.Service
	logger *slog.Logger
	// stopping ends when the server drains: open WatchBackfill streams end with unavailable.
	stopping context.Context
}

var _ backfillv1connect.ControlServiceHandler = (*controlService)(nil)

// errDraining is the cause given to a watch's context when the server drains.
var errDraining = errors.New("server draining")

// requireService is the control plane's second gate, after authGate: only a service_role token
// or an sb_secret_ key may go on. Valid credentials of anyone else get permission_denied.
func requireService(ctx context.Context, _ connect.Spec, _ connect.Peer, _ http.Header) (context.Context, error) {
	if p, ok := PrincipalFrom(ctx); ok && p.Kind == PrincipalService && p.Role == RoleServiceRole {
		return ctx, nil
	}
	return nil, connect.NewError(connect.CodePermissionDenied,
		errors.New("the control plane needs a service_role token or an sb_secret_ key"))
}

func (c *controlService) GetTimeframeJobStats(ctx context.Context, req *backfillv1.GetTimeframeJobStatsRequest) (*backfillv1.GetTimeframeJobStatsResponse, error) {
	rows, err := c.ctl.TimeframeJobStats(ctx, int(req.GetHours()))
	if err != nil {
		return nil, c.rpcError(ctx, "get timeframe job stats", err)
	}
	out := &backfillv1.GetTimeframeJobStatsResponse{Stats: make([]*backfillv1.TimeframeJobStats, 0, len(rows))}
	for _, r := range rows {
		out.Stats = append(out.Stats, &backfillv1.TimeframeJobStats{
			Timeframe:          timeframeProto(r.Timeframe),
			TotalJobs:          r.TotalJobs,
			Queued:             r.Queued,
			Running:            r.Running,
			Success:            r.Success,
			Failed:             r.Failed,
			TotalBarsWritten:   r.TotalBarsWritten,
			AvgDurationSeconds: r.AvgDurationSeconds,
		})
	}
	return out, nil
}

func (c *controlService) GetSymbolCoverage(ctx context.Context, req *backfillv1.GetSymbolCoverageRequest) (*backfillv1.GetSymbolCoverageResponse, error) {
	rows, err := c.ctl.SymbolCoverage(ctx, req.GetSymbol())
	if err != nil {
		return nil, c.rpcError(ctx, "get symbol coverage", err)
	}
	out := &backfillv1.GetSymbolCoverageResponse{Coverage: make([]*backfillv1.SymbolCoverage, 0, len(rows))}
	for _, r := range rows {
		out.Coverage = append(out.Coverage, &backfillv1.SymbolCoverage{
			Timeframe:    timeframeProto(r.Timeframe),
			BarsCount:    r.BarsCount,
			EarliestBar:  timestampOrNil(r.EarliestBar),
			LatestBar:    timestampOrNil(r.LatestBar),
			CoverageDays: r.CoverageDays,
			LastFetch:    timestampOrNil(r.LastFetch),
			JobEnabled:   r.JobEnabled,
			JobPriority:  r.JobPriority,

			SessionsExpected: r.SessionsExpected,
			SessionsFetched:  r.SessionsFetched,
			SessionsComplete: r.SessionsComplete,
			Completeness:     r.Completeness,
			Holes:            storedHolesProto(r.Holes),
			CheckedAt:        timestampOrNil(r.CheckedAt),
		})
	}
	return out, nil
}

func storedHolesProto(hs []control.Hole) []*backfillv1.CoverageHole {
	out := make([]*backfillv1.CoverageHole, 0, len(hs))
	for _, h := range hs {
		out = append(out, &backfillv1.CoverageHole{
			SessionDate: h.SessionDate, From: timestamppb.New(h.From), To: timestamppb.New(h.To), Kind: h.Kind,
			State: h.State, ExpectedBars: h.ExpectedBars, FoundBars: h.FoundBars, Repairs: h.Repairs, Reason: h.Reason,
		})
	}
	return out
}

func (c *controlService) VerifyCoverage(ctx context.Context, req *backfillv1.VerifyCoverageRequest) (*backfillv1.VerifyCoverageResponse, error) {
	tf, err := timeframeText("timeframe", req.GetTimeframe())
	if err != nil {
		return nil, c.rpcError(ctx, "verify coverage", err)
	}
	v, err := c.ctl.VerifyCoverage(ctx, req.GetSymbols(), tf, req.GetRepair())
	if err != nil {
		return nil, c.rpcError(ctx, "verify coverage", err)
	}
	out := &backfillv1.VerifyCoverageResponse{
		Definitions:   make([]*backfillv1.DefinitionCompleteness, 0, len(v.Results)),
		Holes:         int32(v.Holes),         //nolint:gosec // bounded by the sessions of the definitions checked
		RepairsQueued: int32(v.RepairsQueued), //nolint:gosec // as holes
		Provider:      v.Provider,
	}
	if !v.CheckedAt.IsZero() {
		out.CheckedAt = timestamppb.New(v.CheckedAt)
	}
	for _, r := range v.Results {
		d := &backfillv1.DefinitionCompleteness{
			JobDefinitionId:    r.DefID,
			Symbol:             r.Symbol,
			Timeframe:          timeframeProto(string(r.Timeframe)),
			WindowFrom:         timestamppb.New(r.Window.From),
			WindowTo:           timestamppb.New(r.Window.To),
			SessionsExpected:   int32(r.Expected),   //nolint:gosec // sessions of one window
			SessionsFetched:    int32(r.Fetched),    //nolint:gosec // as expected
			SessionsComplete:   int32(r.Complete),   //nolint:gosec // as expected
			SessionsSuspicious: int32(r.Suspicious), //nolint:gosec // as expected
			Completeness:       r.Completeness(),
		}
		for _, h := range r.Holes {
			d.Holes = append(d.Holes, &backfillv1.CoverageHole{
				SessionDate: h.Date, From: timestamppb.New(h.Range.From), To: timestamppb.New(h.Range.To), Kind: h.Hole,
				State: h.State, ExpectedBars: int32(h.Expected), FoundBars: int32(h.Found), //nolint:gosec // bars of one session
				Repairs: int32(h.Repairs), Reason: h.Reason, //nolint:gosec // a few
			})
		}
		out.Definitions = append(out.Definitions, d)
	}
	return out, nil
}

func (c *controlService) ListUserTrackedSymbols(ctx context.Context, req *backfillv1.ListUserTrackedSymbolsRequest) (*backfillv1.ListUserTrackedSymbolsResponse, error) {
	rows, err := c.ctl.TrackedSymbols(ctx, req.GetUserId())
	if err != nil {
		return nil, c.rpcError(ctx, "list user tracked symbols", err)
	}
	out := &backfillv1.ListUserTrackedSymbolsResponse{Symbols: make([]*backfillv1.UserTrackedSymbol, 0, len(rows))}
	for _, r := range rows {
		out.Symbols = append(out.Symbols, &backfillv1.UserTrackedSymbol{
			Symbol:      r.Symbol,
			Source:      r.Source,
			Priority:    r.Priority,
			TrackedAt:   timestamppb.New(r.TrackedAt),
			M15Bars:     r.M15Bars,
			H1Bars:      r.H1Bars,
			H4Bars:      r.H4Bars,
			D1Bars:      r.D1Bars,
			W1Bars:      r.W1Bars,
			JobsPending: r.JobsPending,
			JobsRunning: r.JobsRunning,
		})
	}
	return out, nil
}

func (c *controlService) ListJobDefinitions(ctx context.Context, req *backfillv1.ListJobDefinitionsRequest) (*backfillv1.ListJobDefinitionsResponse, error) {
	tf, err := timeframeText("timeframe", req.GetTimeframe())
	if err != nil {
		return nil, c.rpcError(ctx, "list job definitions", err)
	}
	page, err := c.ctl.Definitions(ctx, control.DefinitionFilter{
		Symbol:    req.GetSymbol(),
		Timeframe: tf,
		Enabled:   req.Enabled,
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, c.rpcError(ctx, "list job definitions", err)
	}
	out := &backfillv1.ListJobDefinitionsResponse{
		Definitions:   make([]*backfillv1.JobDefinition, 0, len(page.Definitions)),
		NextPageToken: page.NextPageToken,
	}
	for _, d := range page.Definitions {
		out.Definitions = append(out.Definitions, definitionProto(d))
	}
	return out, nil
}

func (c *controlService) UpdateJobDefinition(ctx context.Context, req *backfillv1.UpdateJobDefinitionRequest) (*backfillv1.UpdateJobDefinitionResponse, error) {
	d, err := c.ctl.UpdateDefinition(ctx, control.DefinitionUpdate{
		ID:         req.GetId(),
		WindowDays: req.WindowDays,
		Priority:   req.Priority,
		Enabled:    req.Enabled,
	})
	if err != nil {
		return nil, c.rpcError(ctx, "update job definition", err)
	}
	return &backfillv1.UpdateJobDefinitionResponse{Definition: definitionProto(d)}, nil
}

func (c *controlService) ListJobRuns(ctx context.Context, req *backfillv1.ListJobRunsRequest) (*backfillv1.ListJobRunsResponse, error) {
	tf, err := timeframeText("timeframe", req.GetTimeframe())
	if err != nil {
		return nil, c.rpcError(ctx, "list job runs", err)
	}
	statuses := make([]string, 0, len(req.GetStatuses()))
	for _, st := range req.GetStatuses() {
		s, err := statusText(st)
		if err != nil {
			return nil, c.rpcError(ctx, "list job runs", err)
		}
		statuses = append(statuses, s)
	}
	page, err := c.ctl.Runs(ctx, control.RunFilter{
		Symbol:    req.GetSymbol(),
		Timeframe: tf,
		Statuses:  statuses,
		JobDefID:  req.GetJobDefId(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, c.rpcError(ctx, "list job runs", err)
	}
	out := &backfillv1.ListJobRunsResponse{Runs: make([]*backfillv1.JobRun, 0, len(page.Runs)), NextPageToken: page.NextPageToken}
	for _, r := range page.Runs {
		out.Runs = append(out.Runs, runProto(r))
	}
	return out, nil
}

func (c *controlService) RetryJobRun(ctx context.Context, req *backfillv1.RetryJobRunRequest) (*backfillv1.RetryJobRunResponse, error) {
	r, err := c.ctl.RetryRun(ctx, req.GetId())
	if err != nil {
		return nil, c.rpcError(ctx, "retry job run", err)
	}
	return &backfillv1.RetryJobRunResponse{Run: runProto(r)}, nil
}

func (c *controlService) CancelJobRun(ctx context.Context, req *backfillv1.CancelJobRunRequest) (*backfillv1.CancelJobRunResponse, error) {
	r, err := c.ctl.CancelRun(ctx, req.GetId())
	if err != nil {
		return nil, c.rpcError(ctx, "cancel job run", err)
	}
	return &backfillv1.CancelJobRunResponse{Run: runProto(r)}, nil
}

func (c *controlService) RunTick(ctx context.Context, _ *backfillv1.RunTickRequest) (*backfillv1.RunTickResponse, error) {
	res, err := c.ctl.Tick(ctx)
	if err != nil {
		return nil, c.rpcError(ctx, "run tick", err)
	}
	return &backfillv1.RunTickResponse{
		Inserted:   int32(res.Inserted),
		Requeued:   int32(res.Requeued),
		QueueDepth: int32(res.QueueDepth),
	}, nil
}

func (c *controlService) GetReplicationStatus(ctx context.Context, _ *backfillv1.GetReplicationStatusRequest) (*backfillv1.GetReplicationStatusResponse, error) {
	st, err := c.ctl.ReplicationStatus(ctx)
	if err != nil {
		return nil, c.rpcError(ctx, "get replication status", err)
	}
	return &backfillv1.GetReplicationStatusResponse{
		SlotName:          st.SlotName,
		SlotExists:        st.SlotExists,
		Active:            st.Active,
		ActivePid:         st.ActivePID,
		ActiveClient:      st.ActiveClient,
		ConfirmedFlushLsn: st.ConfirmedFlushLSN,
		CurrentLsn:        st.CurrentLSN,
		LagBytes:          st.LagBytes,
		RetainedBytes:     st.RetainedBytes,
		AppliedLsn:        st.AppliedLSN,
		AppliedAt:         timestampOrNil(st.AppliedAt),
		WalStatus:         st.WALStatus,
	}, nil
}

// WatchBackfill streams run events until the client goes or the server drains. The response
// headers are sent as soon as the watch listens, so a client that waits for them (the
// generated client's stream.Conn().ResponseHeader(), buf curl -v) knows that every change
// committed from then on reaches it.
func (c *controlService) WatchBackfill(ctx context.Context, req *backfillv1.WatchBackfillRequest, stream *connect.ServerStream[backfillv1.WatchBackfillResponse]) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.stopping, func() { cancel(errDraining) })
	defer stop()
	err := c.ctl.Watch(ctx, control.WatchFilter{Symbol: req.GetSymbol()},
		func() error { return stream.Send(nil) },
		func(ev control.Event) error {
			return stream.Send(&backfillv1.WatchBackfillResponse{
				Run:            runProto(ev.Run),
				PreviousStatus: statusProto(ev.PreviousStatus),
				BarsWritten:    ev.BarsWritten,
				At:             timestamppb.New(ev.At),
			})
		})
	switch {
	case errors.Is(context.Cause(ctx), errDraining):
		return connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down: watch again (another replica may serve you)"))
	case ctx.Err() != nil:
		// The client went away, mid-send or not: nothing to report, nobody to report it to.
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	}
	return c.rpcError(ctx, "watch backfill", err)
}

// rpcError turns an error of package control into a Connect error whose message is safe to
// show. Internal failures are logged here, once, and reach the client as "internal error".
func (c *controlService) rpcError(ctx context.Context, op string, err error) error {
	var (
		invalid *control.InvalidError
		state   *control.StateError
	)
	switch {
	case errors.As(err, &invalid):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(invalid.Message))
	case errors.As(err, &state):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(state.Message))
	case errors.Is(err, control.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, control.ErrTooManyWatchers):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, control.ErrWatchOverflow):
		return connect.NewError(connect.CodeResourceExhausted,
			errors.New("the watch fell too far behind and was ended: read the stream faster, or watch one symbol"))
	case errors.Is(err, control.ErrWatchLost):
		c.logger.LogAttrs(ctx, slog.LevelWarn, op+" failed", slog.Any("error", err))
		return connect.NewError(connect.CodeUnavailable, errors.New("the watch lost its database connection: watch again"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("request timed out"))
	}
	c.logger.LogAttrs(ctx, slog.LevelError, op+" failed", slog.Any("error", err))
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

var (
	timeframeToProto = map[string]backfillv1.Timeframe{
		"m15": backfillv1.Timeframe_TIMEFRAME_M15,
		"h1":  backfillv1.Timeframe_TIMEFRAME_H1,
		"h4":  backfillv1.Timeframe_TIMEFRAME_H4,
		"d1":  backfillv1.Timeframe_TIMEFRAME_D1,
		"w1":  backfillv1.Timeframe_TIMEFRAME_W1,
	}
	statusToProto = map[string]backfillv1.RunStatus{
		"queued":    backfillv1.RunStatus_RUN_STATUS_QUEUED,
		"running":   backfillv1.RunStatus_RUN_STATUS_RUNNING,
		"success":   backfillv1.RunStatus_RUN_STATUS_SUCCESS,
		"failed":    backfillv1.RunStatus_RUN_STATUS_FAILED,
		"cancelled": backfillv1.RunStatus_RUN_STATUS_CANCELLED,
	}
)

// timeframeProto maps a stored timeframe to the enum; anything else is unspecified.
func timeframeProto(tf string) backfillv1.Timeframe { return timeframeToProto[tf] }

// statusProto maps a stored run status to the enum; "" (no previous status) is unspecified.
func statusProto(s string) backfillv1.RunStatus { return statusToProto[s] }

// timeframeText maps a request's timeframe to its stored name; unspecified is "" (any).
func timeframeText(field string, tf backfillv1.Timeframe) (string, error) {
	if tf == backfillv1.Timeframe_TIMEFRAME_UNSPECIFIED {
		return "", nil
	}
	for text, v := range timeframeToProto {
		if v == tf {
			return text, nil
		}
	}
	return "", &control.InvalidError{Field: field, Message: fmt.Sprintf(
		"%s %d is not a Timeframe: use TIMEFRAME_M15, TIMEFRAME_H1, TIMEFRAME_H4, TIMEFRAME_D1 or TIMEFRAME_W1", field, tf)}
}

// statusText maps a request's run status to its stored name.
func statusText(s backfillv1.RunStatus) (string, error) {
	for text, v := range statusToProto {
		if v == s {
			return text, nil
		}
	}
	return "", &control.InvalidError{Field: "statuses", Message: fmt.Sprintf(
		"statuses: %v is not a run status: use RUN_STATUS_QUEUED, RUN_STATUS_RUNNING, RUN_STATUS_SUCCESS, RUN_STATUS_FAILED or RUN_STATUS_CANCELLED", s)}
}

func timestampOrNil(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// timestampOrZero maps the zero time (a field an event does not carry) to an absent timestamp.
func timestampOrZero(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func definitionProto(d control.Definition) *backfillv1.JobDefinition {
	return &backfillv1.JobDefinition{
		Id:             d.ID,
		Symbol:         d.Symbol,
		Timeframe:      timeframeProto(d.Timeframe),
		JobType:        d.JobType,
		WindowDays:     d.WindowDays,
		Priority:       d.Priority,
		Enabled:        d.Enabled,
		Origin:         d.Origin,
		DisabledReason: d.DisabledReason,
		RequestedAt:    timestamppb.New(d.RequestedAt),
		FirstBarsAt:    timestampOrNil(d.FirstBarsAt),
		CoveredAt:      timestampOrNil(d.CoveredAt),
		CreatedAt:      timestamppb.New(d.CreatedAt),
		UpdatedAt:      timestamppb.New(d.UpdatedAt),
	}
}

func runProto(r control.Run) *backfillv1.JobRun {
	return &backfillv1.JobRun{
		Id:            r.ID,
		JobDefId:      r.JobDefID,
		Symbol:        r.Symbol,
		Timeframe:     timeframeProto(r.Timeframe),
		SliceFrom:     timestampOrZero(r.SliceFrom),
		SliceTo:       timestampOrZero(r.SliceTo),
		Status:        statusProto(r.Status),
		Attempt:       r.Attempt,
		RowsWritten:   r.RowsWritten,
		Provider:      r.Provider,
		ErrorCode:     r.ErrorCode,
		ErrorMessage:  r.ErrorMessage,
		LeaseOwner:    r.LeaseOwner,
		NextAttemptAt: timestampOrZero(r.NextAttemptAt),
		StartedAt:     timestampOrNil(r.StartedAt),
		FinishedAt:    timestampOrNil(r.FinishedAt),
		CreatedAt:     timestampOrZero(r.CreatedAt),
		UpdatedAt:     timestampOrZero(r.UpdatedAt),
	}
}
