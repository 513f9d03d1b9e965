package server

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	symbolsyncv1 "github.com/symbolsync/backfill/gen/symbolsync/v1"
	"github.com/symbolsync/backfill/gen/symbolsync/v1/symbolsyncv1connect"
	"github.com/symbolsync/backfill/server/tracking"
)

// symbolSync implements SymbolSyncService over Connect, gRPC and gRPC-Web. The Supabase function
// path calls the same tracking store (see function.go).
type symbolSync struct {
	store  *tracking.Store
	logger *slog.Logger
}

var _ symbolsyncv1connect.SymbolSyncServiceHandler = (*symbolSync)(nil)

func (s *symbolSync) SyncUserSymbols(ctx context.Context, req *symbolsyncv1.SyncUserSymbolsRequest) (*symbolsyncv1.SyncUserSymbolsResponse, error) {
	res, err := s.store.Sync(ctx, callerID(ctx), tracking.SyncRequest{
		Symbols: req.GetSymbols(), Source: req.GetSource(), Timeframes: req.GetTimeframes(),
	})
	if err != nil {
		return nil, s.rpcError(ctx, "sync user symbols", err)
	}
	return &symbolsyncv1.SyncUserSymbolsResponse{
		Success:          true,
		SymbolsTracked:   int32(res.SymbolsTracked),
		SymbolsRequested: int32(res.SymbolsRequested),
		Timeframes:       int32(res.Timeframes),
		JobsUpdated:      int32(res.JobsUpdated),
		Priority:         int32(res.Priority),
		Source:           res.Source,
	}, nil
}

func (s *symbolSync) UntrackUserSymbols(ctx context.Context, req *symbolsyncv1.UntrackUserSymbolsRequest) (*symbolsyncv1.UntrackUserSymbolsResponse, error) {
	res, err := s.store.Untrack(ctx, callerID(ctx), tracking.UntrackRequest{Symbols: req.GetSymbols(), Source: req.GetSource()})
	if err != nil {
		return nil, s.rpcError(ctx, "untrack user symbols", err)
	}
	return &symbolsyncv1.UntrackUserSymbolsResponse{
		Success:          true,
		SymbolsUntracked: int32(res.SymbolsUntracked),
		SymbolsRequested: int32(res.SymbolsRequested),
		Source:           res.Source,
	}, nil
}

func (s *symbolSync) ListTrackedSymbols(ctx context.Context, _ *symbolsyncv1.ListTrackedSymbolsRequest) (*symbolsyncv1.ListTrackedSymbolsResponse, error) {
	list, err := s.store.List(ctx, callerID(ctx))
	if err != nil {
		return nil, s.rpcError(ctx, "list tracked symbols", err)
	}
	out := &symbolsyncv1.ListTrackedSymbolsResponse{Symbols: make([]*symbolsyncv1.TrackedSymbol, 0, len(list))}
	for _, t := range list {
		out.Symbols = append(out.Symbols, &symbolsyncv1.TrackedSymbol{
			Symbol:      t.Symbol,
			Source:      t.Source,
			Priority:    int32(t.Priority),
			TrackedAt:   timestamppb.New(t.TrackedAt),
			Timeframes:  t.Timeframes,
			M15Bars:     int32(t.Bars["m15"]),
			H1Bars:      int32(t.Bars["h1"]),
			H4Bars:      int32(t.Bars["h4"]),
			D1Bars:      int32(t.Bars["d1"]),
			W1Bars:      int32(t.Bars["w1"]),
			JobsPending: int32(t.JobsPending),
			JobsRunning: int32(t.JobsRunning),
		})
	}
	return out, nil
}

// rpcError turns a store error into a Connect error whose message is safe to show. Internal
// failures are logged here, once, and reach the client as a bare "internal error".
func (s *symbolSync) rpcError(ctx context.Context, op string, err error) error {
	var invalid *tracking.InvalidError
	switch {
	case errors.As(err, &invalid):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(invalid.Message))
	case errors.Is(err, tracking.ErrUnknownUser):
		return connect.NewError(connect.CodeUnauthenticated, errors.New("invalid JWT"))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("request cancelled or timed out"))
	}
	s.logger.LogAttrs(ctx, slog.LevelError, op+" failed", slog.Any("error", err))
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller the auth gate admitted.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// callerID is the user id interest is recorded under: the user's id, or "" (anonymous,
// user_id NULL) for anon, publishable and service credentials.
func callerID(ctx context.Context) string {
	if p, ok := PrincipalFrom(ctx); ok && p.Kind == PrincipalUser {
		return p.UserID
	}
	return ""
}
