-- `backfill bench provider`: the bars stored, the definitions without a single bar (a backfill
-- that skipped them), the runs that failed for good, and the fewest requests those bars take when
-- a request carries one timeframe (as every provider's does): the sum over timeframes of full pages.
SELECT (SELECT count(*) FROM public.ohlc_bars_v2),
       (SELECT count(*)
        FROM public.job_definitions AS d
        WHERE NOT EXISTS (SELECT 1 FROM public.ohlc_bars_v2 AS b
                          WHERE b.symbol_id = d.symbol_id AND b.timeframe = d.timeframe)),
       (SELECT count(*) FROM public.job_runs WHERE status = 'failed'),
       (SELECT coalesce(sum((t.n + 9999) / 10000), 0)::bigint
        FROM (SELECT count(*) AS n FROM public.ohlc_bars_v2 GROUP BY timeframe) AS t)
