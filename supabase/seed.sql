-- Seed data: the original project's 20 tech tickers, each with backfill definitions for m15, h1
-- and h4 (job_type fetch_intraday, origin 'seed').
--
-- Idempotent: every insert is ON CONFLICT DO NOTHING, so running this file again changes nothing,
-- and it never overwrites a symbol or a definition that already exists (whoever created it).
-- Unlike the original seed, the symbols are inserted here first, so an empty database gets all
-- 60 definitions instead of none.
--
-- Priorities: h1 200, h4 150, m15 100 (higher runs first). Windows come from
-- public.timeframe_settings.default_window_days at the time of seeding (m15 30, h1 90, h4 365 days
-- unless changed).
--
-- Changing windows and priorities afterwards is plain SQL on job_definitions; the edits stick,
-- since neither this seed nor anything else overwrites window_days of an existing definition:
--
--   UPDATE public.job_definitions SET window_days = 60 WHERE timeframe = 'h1';
--   UPDATE public.job_definitions SET priority = 250 WHERE symbol = 'AAPL' AND timeframe = 'm15';
--   UPDATE public.job_definitions SET enabled = false WHERE symbol = 'INTC';
--
-- To change the default for definitions created later (by this seed or from tracking):
--
--   UPDATE public.timeframe_settings SET default_window_days = 60, updated_at = now() WHERE timeframe = 'm15';

INSERT INTO public.symbols (ticker, asset_type, description) VALUES
  ('AAPL',  'stock', 'Apple Inc.'),
  ('MSFT',  'stock', 'Microsoft Corporation'),
  ('NVDA',  'stock', 'NVIDIA Corporation'),
  ('GOOGL', 'stock', 'Alphabet Inc. (Class A)'),
  ('TSLA',  'stock', 'Tesla, Inc.'),
  ('AMD',   'stock', 'Advanced Micro Devices, Inc.'),
  ('META',  'stock', 'Meta Platforms, Inc.'),
  ('NFLX',  'stock', 'Netflix, Inc.'),
  ('ADBE',  'stock', 'Adobe Inc.'),
  ('AMZN',  'stock', 'Amazon.com, Inc.'),
  ('CRM',   'stock', 'Salesforce, Inc.'),
  ('CSCO',  'stock', 'Cisco Systems, Inc.'),
  ('INTC',  'stock', 'Intel Corporation'),
  ('ORCL',  'stock', 'Oracle Corporation'),
  ('QCOM',  'stock', 'Qualcomm Incorporated'),
  ('TXN',   'stock', 'Texas Instruments Incorporated'),
  ('AVGO',  'stock', 'Broadcom Inc.'),
  ('MU',    'stock', 'Micron Technology, Inc.'),
  ('AMAT',  'stock', 'Applied Materials, Inc.'),
  ('LRCX',  'stock', 'Lam Research Corporation')
ON CONFLICT (ticker) DO NOTHING;

INSERT INTO public.job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin)
SELECT 'fetch_intraday', s.ticker, s.id, t.timeframe, t.default_window_days, p.priority, true, 'seed'
FROM (VALUES
  ('AAPL'), ('MSFT'), ('NVDA'), ('GOOGL'), ('TSLA'), ('AMD'), ('META'), ('NFLX'), ('ADBE'), ('AMZN'),
  ('CRM'), ('CSCO'), ('INTC'), ('ORCL'), ('QCOM'), ('TXN'), ('AVGO'), ('MU'), ('AMAT'), ('LRCX')
) AS seed (ticker)
JOIN public.symbols AS s ON s.ticker = seed.ticker
JOIN (VALUES ('h1', 200), ('h4', 150), ('m15', 100)) AS p (timeframe, priority) ON true
JOIN public.timeframe_settings AS t ON t.timeframe = p.timeframe
ORDER BY t.sort_order, s.ticker
ON CONFLICT (symbol, timeframe, job_type) DO NOTHING;
