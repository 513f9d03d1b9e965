-- `backfill bench provider`: how far the backfill is: the definitions, those whose window is
-- not covered yet (covered_at, the milestone "every slice of its window done"), and the runs
-- that failed for good.
SELECT (SELECT count(*) FROM public.job_definitions),
       (SELECT count(*) FROM public.job_definitions WHERE covered_at IS NULL),
       (SELECT count(*) FROM public.job_runs WHERE status = 'failed')
