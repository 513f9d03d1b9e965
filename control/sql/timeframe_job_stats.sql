-- The rows of public.get_timeframe_job_stats($1 hours), as they are; the average is numeric
-- rounded to 3 places, read as float8.
SELECT s.timeframe, s.total_jobs, s.queued, s.running, s.success, s.failed, s.total_bars_written,
       s.avg_duration_seconds::float8
FROM public.get_timeframe_job_stats($1::integer) WITH ORDINALITY AS s
ORDER BY s.ordinality -- the function's own order
