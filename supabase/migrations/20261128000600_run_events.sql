-- Run events: every job_runs change an operator can watch (a new run, a state change, bars
-- written) is announced with NOTIFY on the channel backfill_run_events. The control plane's
-- WatchBackfill stream LISTENs there; psql can too:
--
--   LISTEN backfill_run_events;
--
-- Why a trigger, when the design forbids one on user_symbol_tracking: that rule is about creating
-- work. A trigger that inserts job definitions hides work creation inside a client's transaction,
-- cannot be retried or reconciled, and is what made the original double-schedule and ignore
-- timeframes; the replicator does that job instead. These triggers create nothing. They observe:
-- pg_notify only queues a message that is delivered when (and only if) the transaction commits,
-- in commit order, to whoever listens at that moment, and is dropped otherwise. No table is
-- written, no row is locked, and the change's effect does not depend on anyone listening.
--
-- Cost, kept small because the trigger sits in the workers' write path:
--   * PostgreSQL serializes the commits of transactions that notified (a lock held while the
--     commit is recorded, which is what gives listeners commit order). Runs change a few times
--     a second per worker, so this is cheap here; it is also why nothing notifies per bar;
--   * the UPDATE trigger is limited to UPDATE OF status, rows_written and a WHEN clause, so the
--     frequent heartbeats (lease_expires_at, heartbeat_at) never call the function, and an update
--     that leaves both columns as they were sends nothing;
--   * the payload is a fixed set of short fields (the longest, symbol and error_code, are cut to
--     64 characters), always far below NOTIFY's 8000-byte limit, so the trigger cannot fail a
--     worker's write on payload size; error_message is not sent (read it with ListJobRuns).
--   * The one way NOTIFY can fail is a full notification queue (8 GB by default), which takes a
--     listener that stops reading for a very long time: WatchBackfill drops a watcher that falls
--     behind instead of letting it hold the queue back.
--
-- Payload (JSON, times in UTC RFC 3339 with microseconds):
--   {"id", "job_def_id", "symbol", "timeframe", "slice_from", "slice_to", "status",
--    "previous_status" (null for a new run), "attempt", "rows_written", "error_code" (or null),
--    "at" (the database clock when the change was made, just before its commit)}

CREATE FUNCTION public.notify_run_event() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $fn$
BEGIN
  PERFORM pg_catalog.pg_notify('backfill_run_events', pg_catalog.json_build_object(
    'id', NEW.id,
    'job_def_id', NEW.job_def_id,
    'symbol', pg_catalog.left(NEW.symbol, 64),
    'timeframe', NEW.timeframe,
    'slice_from', pg_catalog.to_char(NEW.slice_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'slice_to', pg_catalog.to_char(NEW.slice_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'status', NEW.status,
    'previous_status', CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
    'attempt', NEW.attempt,
    'rows_written', NEW.rows_written,
    'error_code', pg_catalog.left(NEW.error_code, 64),
    'at', pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  )::text);
  RETURN NULL;
END
$fn$;

COMMENT ON FUNCTION public.notify_run_event() IS
  'Announces a job_runs insert, or a change of status or rows_written, on channel backfill_run_events '
  '(see migration 20261128000600_run_events.sql for the payload). Observes only: writes nothing.';

CREATE TRIGGER notify_run_event_insert
  AFTER INSERT ON public.job_runs
  FOR EACH ROW EXECUTE FUNCTION public.notify_run_event();

CREATE TRIGGER notify_run_event_update
  AFTER UPDATE OF status, rows_written ON public.job_runs
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.rows_written IS DISTINCT FROM NEW.rows_written)
  EXECUTE FUNCTION public.notify_run_event();
