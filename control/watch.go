package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventChannel is the channel the job_runs triggers notify (migration
// 20261128000600_run_events.sql).
const EventChannel = "backfill_run_events"

// WatchApplicationName is the application_name of a watcher's connection, how it shows in
// pg_stat_activity.
const WatchApplicationName = "backfill watch"

// Event is one change of a run, as the trigger announced it: a new run (PreviousStatus ""), a
// new status, or new rows_written.
type Event struct {
	// Run has the fields the trigger sends: ID, JobDefID, Symbol, Timeframe, SliceFrom,
	// SliceTo, Status, Attempt, RowsWritten and ErrorCode. The others are zero; ListJobRuns
	// has them.
	Run            Run
	PreviousStatus string    // "" for a new run
	BarsWritten    int32     // RowsWritten when the change is a success, else 0
	At             time.Time // the database clock at the change, just before its commit
}

// WatchFilter selects the events of a watch.
type WatchFilter struct {
	Symbol string // only this ticker (trimmed, upper-cased); "" for all
}

// Watch delivers run events matching f to send, in commit order, until ctx ends (returning its
// error), send fails (returning that error), the client falls WatchBuffer events behind
// (ErrWatchOverflow) or the connection fails (ErrWatchLost). listening is called once the
// watch listens: every change committed after that is delivered.
//
// The watch holds one connection of its own, opened here and closed before Watch returns,
// whatever the reason. At most MaxWatchers watches run at once; another gets
// ErrTooManyWatchers at once.
func (s *Service) Watch(ctx context.Context, f WatchFilter, listening func() error, send func(Event) error) error {
	symbol, err := normalizeSymbol("symbol", f.Symbol)
	if err != nil {
		return err
	}
	select {
	case s.watchers <- struct{}{}:
	default:
		s.metrics.watchesRefused.Inc()
		return fmt.Errorf("%w: %d watches are open, the most this server allows; try again later", ErrTooManyWatchers, cap(s.watchers))
	}
	s.metrics.watchers.Inc()
	defer func() {
		<-s.watchers // first: once the gauge drops, the slot is free
		s.metrics.watchers.Dec()
	}()

	conn, err := s.listen(ctx)
	if err != nil {
		return err
	}
	if err := listening(); err != nil {
		closeConn(ctx, conn)
		return err
	}

	// From here the reader owns the connection and closes it when it stops, whatever the
	// reason. It keeps draining the connection while send waits for a slow client, so this
	// watcher never holds back the server's notification queue; a client WatchBuffer events
	// behind is dropped, and its connection closed at once even while send is still stuck.
	readCtx, stopReading := context.WithCancel(ctx)
	events := make(chan Event, s.cfg.WatchBuffer)
	readDone := make(chan struct{})
	var readErr error
	go func() {
		defer close(readDone)
		readErr = s.read(readCtx, conn, symbol, events)
		if errors.Is(readErr, ErrWatchOverflow) {
			s.metrics.watchOverflows.Inc()
		}
		closeConn(ctx, conn)
	}()
	defer func() {
		stopReading()
		<-readDone
	}()
	for {
		select {
		case ev := <-events:
			if err := send(ev); err != nil {
				return fmt.Errorf("send run event: %w", err)
			}
			s.metrics.watchEvents.Inc()
		case <-readDone:
			return readErr
		}
	}
}

// closeConn closes a watch connection, bounded in time; a failed close still releases the
// socket.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(closeCtx)
}

// listen opens the watch's own connection (a pooled one would hand its LISTEN to other users)
// and subscribes to EventChannel.
func (s *Service) listen(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = WatchApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open watch connection: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{EventChannel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen on %s: %w", EventChannel, err)
	}
	return conn, nil
}

// read turns notifications into events of symbol (all when "") until ctx ends or the
// connection fails, and gives up with ErrWatchOverflow when events is full.
func (s *Service) read(ctx context.Context, conn *pgx.Conn, symbol string, events chan<- Event) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrWatchLost, err)
		}
		ev, err := parseEvent(n.Payload)
		if err != nil {
			// Someone sent something else on the channel; it is not ours to deliver.
			s.log.LogAttrs(ctx, slog.LevelWarn, "skip malformed run event", slog.String("channel", n.Channel), slog.Any("error", err))
			continue
		}
		if symbol != "" && ev.Run.Symbol != symbol {
			continue
		}
		select {
		case events <- ev:
		default:
			return ErrWatchOverflow
		}
	}
}

// eventPayload is the trigger's JSON.
type eventPayload struct {
	ID             string  `json:"id"`
	JobDefID       string  `json:"job_def_id"`
	Symbol         string  `json:"symbol"`
	Timeframe      string  `json:"timeframe"`
	SliceFrom      string  `json:"slice_from"`
	SliceTo        string  `json:"slice_to"`
	Status         string  `json:"status"`
	PreviousStatus *string `json:"previous_status"`
	Attempt        int32   `json:"attempt"`
	RowsWritten    int32   `json:"rows_written"`
	ErrorCode      *string `json:"error_code"`
	At             string  `json:"at"`
}

func parseEvent(payload string) (Event, error) {
	var p eventPayload
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		return Event{}, fmt.Errorf("decode run event: %w", err)
	}
	if p.ID == "" || p.Status == "" {
		return Event{}, fmt.Errorf("decode run event: no id or status in %q", truncate(payload, 200))
	}
	var times [3]time.Time
	for i, v := range []string{p.SliceFrom, p.SliceTo, p.At} {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return Event{}, fmt.Errorf("decode run event: %w", err)
		}
		times[i] = t
	}
	ev := Event{
		Run: Run{
			ID: p.ID, JobDefID: p.JobDefID, Symbol: p.Symbol, Timeframe: p.Timeframe,
			SliceFrom: times[0], SliceTo: times[1], Status: p.Status,
			Attempt: p.Attempt, RowsWritten: p.RowsWritten, ErrorCode: deref(p.ErrorCode),
		},
		PreviousStatus: deref(p.PreviousStatus),
		At:             times[2],
	}
	if p.Status == "success" {
		ev.BarsWritten = p.RowsWritten
	}
	return ev, nil
}
