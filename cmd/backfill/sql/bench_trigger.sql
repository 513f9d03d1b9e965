-- The original design, for the side-by-side of `backfill bench cdc` on a scratch database: the
-- AFTER INSERT OR UPDATE trigger auto_create_jobs_for_tracked_symbols of the original migration
-- (20260110000000_multi_timeframe_symbol_tracking.sql), adapted to our schema only where it must
-- be (job_definitions has symbol_id and origin). As the original, it ignores the requested
-- timeframes and always upserts m15, h1 and h4 fetch_intraday definitions with the windows
-- 30/90/365 days, a priority from the source (watchlist 300, chart_view 200, recent_search 100),
-- and on conflict keeps the GREATEST priority and window and enables the definition. It runs in
-- the user's transaction: that is the cost the benchmark measures.
CREATE FUNCTION public.auto_create_jobs_for_tracked_symbols() RETURNS trigger
  LANGUAGE plpgsql
  AS $fn$
DECLARE
  v_ticker    text;
  v_priority  integer;
  v_timeframe text;
BEGIN
  SELECT s.ticker INTO v_ticker FROM public.symbols AS s WHERE s.id = NEW.symbol_id;

  v_priority := CASE NEW.source
                  WHEN 'watchlist' THEN 300
                  WHEN 'chart_view' THEN 200
                  WHEN 'recent_search' THEN 100
                  ELSE 100
                END;

  FOREACH v_timeframe IN ARRAY ARRAY['m15', 'h1', 'h4'] LOOP
    INSERT INTO public.job_definitions AS jd
      (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin)
    VALUES ('fetch_intraday', v_ticker, NEW.symbol_id, v_timeframe,
            CASE v_timeframe WHEN 'm15' THEN 30 WHEN 'h1' THEN 90 WHEN 'h4' THEN 365 ELSE 7 END,
            v_priority, true, 'tracking')
    ON CONFLICT (symbol, timeframe, job_type) DO UPDATE
    SET enabled     = true,
        priority    = GREATEST(jd.priority, EXCLUDED.priority),
        window_days = GREATEST(jd.window_days, EXCLUDED.window_days),
        updated_at  = now();
  END LOOP;

  RETURN NEW;
END
$fn$;

CREATE TRIGGER trigger_auto_create_jobs
  AFTER INSERT OR UPDATE ON public.user_symbol_tracking
  FOR EACH ROW EXECUTE FUNCTION public.auto_create_jobs_for_tracked_symbols();
