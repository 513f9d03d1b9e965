-- The caller's tracked symbols with bar counts and active runs (get_user_tracked_symbols_status)
-- plus the timeframes each row asks for.
SELECT st.symbol, st.source, st.priority, st.tracked_at, ust.timeframes,
       st.m15_bars, st.h1_bars, st.h4_bars, st.d1_bars, st.w1_bars,
       st.jobs_pending, st.jobs_running
FROM public.get_user_tracked_symbols_status($1::uuid) AS st
JOIN public.symbols AS s ON s.ticker = st.symbol
JOIN public.user_symbol_tracking AS ust
  ON ust.symbol_id = s.id AND ust.source = st.source AND ust.user_id IS NOT DISTINCT FROM $1::uuid
ORDER BY st.priority DESC, st.symbol, st.source;
