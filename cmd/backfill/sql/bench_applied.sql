-- A quick snapshot for `backfill bench cdc`: of the rows of a step (symbols whose ticker starts
-- with $1), how many have all three job definitions yet.
--
-- $1 text  ticker prefix of the step
SELECT count(*) AS rows,
       count(*) FILTER (WHERE (
         SELECT count(*)
         FROM public.job_definitions AS jd
         WHERE jd.symbol_id = s.id
           AND jd.job_type = 'fetch_intraday'
           AND jd.timeframe IN ('m15', 'h1', 'h4')) = 3) AS applied
FROM public.symbols AS s
WHERE starts_with(s.ticker, $1::text);
