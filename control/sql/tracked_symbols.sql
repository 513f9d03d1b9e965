-- The rows of public.get_user_tracked_symbols_status($1 user id, NULL for anonymous interest),
-- as they are, in the function's order.
SELECT t.symbol, t.source, t.priority, t.tracked_at, t.m15_bars, t.h1_bars, t.h4_bars, t.d1_bars, t.w1_bars,
       t.jobs_pending, t.jobs_running
FROM public.get_user_tracked_symbols_status($1::uuid) WITH ORDINALITY AS t
ORDER BY t.ordinality -- the function's own order
