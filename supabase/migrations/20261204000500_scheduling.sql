-- Scheduling under a request budget (see orchestrator's package doc, "Claim order").
--
-- The claim used to join every queued run to its definition and sort them all by the
-- definition's live priority, then slice end, then id: at 30,000 queued runs each claim sorted
-- the whole queue, and an open h4 slice (ending years ahead) always beat everything else of
-- its priority, so the same definitions were served tick after tick and others never got a
-- bar. The claim now reads one index in its order:
--
--   1. backfill before refresh: a run that fetches a range for the first time (triggered_by
--      other than 'refresh': first bars, history, repairs, operator retries) comes before any
--      refresh of an open slice, whatever their priorities. Refreshes are cheap and come back
--      at every bar boundary; ranked by priority alone, a stream of watchlist refreshes could
--      keep a search symbol's first bars waiting for ever;
--   2. then the definition's priority, as it is now (claim_priority, kept equal to
--      job_definitions.priority while the definition is enabled, NULL while it is disabled);
--   3. then the least recently fetched first (last_fetched_at, NULL = never: first);
--   4. then the newest slice, then the id.
--
-- The batch claim takes the first run in that order and, with it, the queued runs of the same
-- timeframe and slice (job_runs_batch_idx), which one multi-symbol request can serve.

ALTER TABLE public.job_runs
  ADD COLUMN claim_priority integer,
  ADD COLUMN last_fetched_at timestamptz;

COMMENT ON COLUMN public.job_runs.claim_priority IS
  'The definition''s priority while it is enabled, NULL while it is disabled (not claimable): set when the run is queued and kept equal by a trigger on job_definitions.';
COMMENT ON COLUMN public.job_runs.last_fetched_at IS
  'When the data this run fetches was last fetched, as of its queueing: for a refresh the previous fetch of the slice, otherwise the definition''s last success (NULL: never). Equal priorities are claimed least recently fetched first.';

-- job_runs.triggered_by also says why a run was queued: 'planner' (a range never fetched),
-- 'refresh' (the open slice, after a bar closed), 'repair' (a hole), or an operator's.

-- Fill the two columns whenever a run becomes queued, whoever queues it (the planner, the
-- completeness checker's repairs, the control plane, psql).
CREATE FUNCTION public.job_runs_queue_keys() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $fn$
BEGIN
  IF NEW.status <> 'queued' OR (TG_OP = 'UPDATE' AND OLD.status = 'queued') THEN
    RETURN NEW;
  END IF;
  SELECT CASE WHEN d.enabled THEN d.priority END INTO NEW.claim_priority
  FROM public.job_definitions AS d WHERE d.id = NEW.job_def_id;
  IF TG_OP = 'UPDATE' AND OLD.status = 'running' THEN
    -- Retried, deferred or taken back: it keeps its place among equals.
    NEW.last_fetched_at := OLD.last_fetched_at;
  ELSIF NEW.triggered_by = 'refresh' THEN
    NEW.last_fetched_at := CASE WHEN TG_OP = 'UPDATE' THEN OLD.finished_at END;
  ELSE
    SELECT c.last_success_at INTO NEW.last_fetched_at
    FROM public.coverage_status AS c WHERE c.symbol = NEW.symbol AND c.timeframe = NEW.timeframe;
  END IF;
  RETURN NEW;
END
$fn$;

COMMENT ON FUNCTION public.job_runs_queue_keys() IS
  'Sets job_runs.claim_priority and last_fetched_at when a run becomes queued (migration 20261204000500_scheduling.sql).';

CREATE TRIGGER job_runs_queue_keys
  BEFORE INSERT OR UPDATE OF status ON public.job_runs
  FOR EACH ROW EXECUTE FUNCTION public.job_runs_queue_keys();

-- A definition whose priority changes, or which is disabled or enabled, moves its queued runs
-- at once (a watchlist add jumps the queue; a disabled definition's runs wait, unclaimable).
CREATE FUNCTION public.job_definitions_sync_runs() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $fn$
BEGIN
  UPDATE public.job_runs
  SET claim_priority = CASE WHEN NEW.enabled THEN NEW.priority END
  WHERE job_def_id = NEW.id AND status = 'queued'
    AND claim_priority IS DISTINCT FROM CASE WHEN NEW.enabled THEN NEW.priority END;
  RETURN NULL;
END
$fn$;

COMMENT ON FUNCTION public.job_definitions_sync_runs() IS
  'Keeps job_runs.claim_priority of a definition''s queued runs equal to its priority while it is enabled, NULL while disabled.';

CREATE TRIGGER job_definitions_sync_runs
  AFTER UPDATE OF priority, enabled ON public.job_definitions
  FOR EACH ROW
  WHEN (OLD.priority IS DISTINCT FROM NEW.priority OR OLD.enabled IS DISTINCT FROM NEW.enabled)
  EXECUTE FUNCTION public.job_definitions_sync_runs();

-- Runs queued before this migration.
UPDATE public.job_runs AS r
SET claim_priority = CASE WHEN d.enabled THEN d.priority END
FROM public.job_definitions AS d
WHERE d.id = r.job_def_id AND r.status = 'queued';

-- The claim reads this index in order (sql/claim.sql's ORDER BY is the same expressions); the
-- due time rides along for the filter. It replaces job_runs_queued_idx: with the queue empty
-- when statistics were taken (its usual state between two bar closes) the planner preferred
-- that one and sorted every queued run.
CREATE INDEX job_runs_claim_idx ON public.job_runs
  ((triggered_by = 'refresh'), claim_priority DESC, last_fetched_at ASC NULLS FIRST, slice_to DESC, id)
  INCLUDE (next_attempt_at)
  WHERE status = 'queued' AND claim_priority IS NOT NULL;

DROP INDEX public.job_runs_queued_idx;

-- A batch: the queued runs of one timeframe, slice and kind, in the claim order, so that the
-- batch-mates are read in order too and nothing is sorted.
CREATE INDEX job_runs_batch_idx ON public.job_runs
  (timeframe, slice_from, slice_to, (triggered_by = 'refresh'), claim_priority DESC, last_fetched_at ASC NULLS FIRST, id)
  INCLUDE (next_attempt_at)
  WHERE status = 'queued' AND claim_priority IS NOT NULL;

-- The refresh finds the slices fetched while open, by timeframe and last fetch, without
-- reading the others (a slice leaves the index once a fetch started after it ended).
CREATE INDEX job_runs_refresh_idx ON public.job_runs (timeframe, started_at)
  WHERE status = 'success' AND started_at < slice_to;

-- Planning a change reads only the definitions changed since they were last planned.
ALTER TABLE public.job_definitions ADD COLUMN planned_revision bigint;

COMMENT ON COLUMN public.job_definitions.planned_revision IS
  'The revision the planner last planned (NULL: never): a pass woken by a change plans only the enabled definitions whose revision differs.';

CREATE INDEX job_definitions_unplanned_idx ON public.job_definitions (id)
  WHERE enabled AND planned_revision IS DISTINCT FROM revision;
