-- Definition revisions: "changed since" without comparing two clocks.
--
-- Two rules compare a definition event with a run event:
--   * the planner queues a failed run again once its definition changed after the run failed
--     (re-enabled after a permanent error, raised by a new tracker);
--   * the covered milestone waits for runs that failed since the definition was requested.
-- Both compared timestamps: job_definitions.updated_at, stamped by a trigger on the database
-- clock, and requested_at, stamped by whoever made the request (the replicator on the database
-- clock, the control plane on its own), against job_runs.finished_at, stamped by the orchestrator
-- on its clock. When those clocks disagree (a test or replay at a fixed instant, a replica with
-- skew) the order of the two events is lost: a failed run was retried forever or never. What the
-- rules need is an order of events, not a time, so it is a counter now:
--   * job_definitions.revision goes up by one whenever a configuration column actually changes
--     (the columns whose change already moves updated_at);
--   * job_definitions.requested_revision is the revision at the latest request (set whenever
--     requested_at changes; a request always changes the configuration too: it enables);
--   * job_runs.failed_revision is the definition's revision when the run failed for good.
-- "Changed after it failed" is revision > failed_revision; "failed since the request" is
-- failed_revision >= requested_revision.
ALTER TABLE public.job_definitions
  ADD COLUMN revision bigint NOT NULL DEFAULT 1,
  ADD COLUMN requested_revision bigint NOT NULL DEFAULT 1;

ALTER TABLE public.job_runs ADD COLUMN failed_revision bigint;

COMMENT ON COLUMN public.job_definitions.revision IS
  'Counts changes of the configuration (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin, disabled_reason); starts at 1.';
COMMENT ON COLUMN public.job_definitions.requested_revision IS
  'The revision at the latest request (creation, or re-enabled): the backfill milestones count from it.';
COMMENT ON COLUMN public.job_runs.failed_revision IS
  'The definition''s revision when the run failed for good (NULL unless failed): the planner queues it again once the revision is higher.';

-- Runs that failed before this migration: the order their timestamps gave, as the rules saw it
-- until now (both sides stamped by the database clock in production).
UPDATE public.job_runs AS r
SET failed_revision = CASE WHEN d.updated_at > r.finished_at THEN 0 ELSE 1 END
FROM public.job_definitions AS d
WHERE d.id = r.job_def_id AND r.status = 'failed';

CREATE FUNCTION public.job_definitions_revise() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $fn$
BEGIN
  IF (NEW.job_type, NEW.symbol, NEW.symbol_id, NEW.timeframe, NEW.window_days, NEW.priority, NEW.enabled,
      NEW.origin, NEW.disabled_reason)
     IS DISTINCT FROM
     (OLD.job_type, OLD.symbol, OLD.symbol_id, OLD.timeframe, OLD.window_days, OLD.priority, OLD.enabled,
      OLD.origin, OLD.disabled_reason) THEN
    NEW.revision := OLD.revision + 1;
  ELSE
    NEW.revision := OLD.revision;
  END IF;
  IF NEW.requested_at IS DISTINCT FROM OLD.requested_at THEN
    NEW.requested_revision := NEW.revision;
  ELSE
    NEW.requested_revision := OLD.requested_revision;
  END IF;
  RETURN NEW;
END
$fn$;

COMMENT ON FUNCTION public.job_definitions_revise() IS
  'Keeps job_definitions.revision and requested_revision (see migration 20261204000100_definition_revision.sql); they cannot be set by hand.';

CREATE TRIGGER revise BEFORE UPDATE ON public.job_definitions
  FOR EACH ROW EXECUTE FUNCTION public.job_definitions_revise();
