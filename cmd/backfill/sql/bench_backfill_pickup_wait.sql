-- Whether symbol $1's first run was claimed yet and, once it was, its pickup in milliseconds on
-- the database clock: from the commit of the tracking row (nothing updates it, so its xmin
-- still names that transaction) or, for a definition, from its transaction's start
-- (requested_at: the commit follows within a millisecond), to the claim (started_at).
--
-- $1 text  ticker
SELECT min(r.started_at) IS NOT NULL,
       extract(epoch FROM min(r.started_at) - coalesce(
         (SELECT pg_catalog.pg_xact_commit_timestamp(t.xmin)
          FROM public.user_symbol_tracking AS t JOIN public.symbols AS s ON s.id = t.symbol_id
          WHERE s.ticker = $1::text),
         min(d.requested_at)))::float8 * 1000
FROM public.job_definitions AS d
LEFT JOIN public.job_runs AS r ON r.job_def_id = d.id AND r.started_at IS NOT NULL
WHERE d.symbol = $1::text;
