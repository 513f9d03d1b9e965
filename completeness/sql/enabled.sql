-- How many definitions are enabled: the rolling sweep's share per pass is sized from it.
SELECT count(*) FROM public.job_definitions WHERE enabled
