// Package control is the operators' control plane over the backfill: what the
// backfill.v1.ControlService RPCs do, without the RPCs. Package server maps its types and errors
// to the proto and to Connect codes; nothing here knows about either.
//
// # Reading
//
// [Service.TimeframeJobStats], [Service.SymbolCoverage] and [Service.TrackedSymbols] return the
// rows of the monitoring functions public.get_timeframe_job_stats, get_symbol_timeframe_coverage
// and get_user_tracked_symbols_status, unchanged. Those functions are SECURITY INVOKER under row
// level security; like the function path (server/tracking), the control plane calls them as the
// service's own database role, which owns the tables (or bypasses RLS), so it sees every row.
// Only service callers reach the control plane: package server checks that.
//
// [Service.Definitions] and [Service.Runs] list job_definitions and job_runs with filters and
// keyset pagination. A page token is opaque to the caller (base64 of the last row's sort key),
// bound to the filters it was issued for, and rejected with an [*InvalidError] when malformed or
// reused with other filters.
//
// # Steering
//
// [Service.UpdateDefinition] changes only the fields given. Enabling clears disabled_reason and,
// like a re-enable by tracking, starts a new request (the backfill latency milestones restart).
// [Service.RetryRun] queues a failed or cancelled run again; [Service.CancelRun] cancels a
// queued or running one. A cancelled run loses its lease in the same statement, so the worker
// that holds it can no longer write: its heartbeat and its final write check status, owner and
// attempt and get orchestrator.ErrLeaseLost. The planner never queues a cancelled run again;
// only RetryRun does. [Service.Tick] plans every enabled definition at once with
// orchestrator.Enqueue, on the orchestrators' grid ([Config.SliceSizes]); a server that runs no
// orchestrator does not know that grid and refuses rather than queue overlapping slices.
//
// Every change that gives the workers something to do (an update, a retry, a tick) notifies
// replicator.NotifyChannel in its own transaction, so the orchestrators of every process plan
// and claim as soon as it commits rather than at their next tick.
//
// # Watching
//
// [Service.Watch] streams run events: the AFTER INSERT/UPDATE triggers of migration
// 20261128000600_run_events.sql send a small JSON payload on [EventChannel] whenever a run is
// created or its status or rows_written changes. PostgreSQL delivers notifications in commit
// order, so events arrive in the order the changes were committed. Each watcher has one
// connection of its own (a pooled connection would hand its LISTEN to other users), named
// [WatchApplicationName] in pg_stat_activity and closed when the watch ends. Watchers are capped
// ([Config.MaxWatchers]); one that falls [Config.WatchBuffer] events behind its client is ended
// with [ErrWatchOverflow] rather than left holding back the server's notification queue, which
// every writer of job_runs shares.
package control
