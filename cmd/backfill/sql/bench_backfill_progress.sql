-- Progress of one `backfill bench backfill` measurement, polled until done: the definitions,
-- how many have their window covered, and the runs by state. A window counts as covered when
-- coverage_status.covered holds [created_at - window_days + 1 s, created_at): created_at is the
-- definitions' transaction time, which the planner's now() can only follow, and the second of
-- slack keeps a grid boundary falling between the two from making the check unreachable.
SELECT count(*) AS defs,
       count(*) FILTER (WHERE c.covered @> tstzrange(
         d.created_at - make_interval(days => d.window_days) + interval '1 second', d.created_at)) AS covered,
       (SELECT count(*) FROM public.job_runs) AS runs,
       (SELECT count(*) FROM public.job_runs WHERE status IN ('queued', 'running')) AS pending,
       (SELECT count(*) FROM public.job_runs WHERE status = 'failed') AS failed
FROM public.job_definitions AS d
LEFT JOIN public.coverage_status AS c ON c.symbol = d.symbol AND c.timeframe = d.timeframe;
