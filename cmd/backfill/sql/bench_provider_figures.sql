-- `backfill bench provider`: the bars stored, the definitions without a single bar (a backfill
-- that skipped them), and the runs that failed for good.
SELECT (SELECT count(*) FROM public.ohlc_bars_v2),
       (SELECT count(*)
        FROM public.job_definitions AS d
        WHERE NOT EXISTS (SELECT 1 FROM public.ohlc_bars_v2 AS b
                          WHERE b.symbol_id = d.symbol_id AND b.timeframe = d.timeframe)),
       (SELECT count(*) FROM public.job_runs WHERE status = 'failed')
