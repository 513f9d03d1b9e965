-- Every enabled definition, for a full check.
SELECT id::text FROM public.job_definitions WHERE enabled ORDER BY id
