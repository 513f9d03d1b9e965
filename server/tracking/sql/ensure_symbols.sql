-- Create the tickers that do not exist yet. A pair such as BTC/USD is crypto, anything else a
-- stock. DO NOTHING waits for a concurrent insert of the same ticker to commit, so the next
-- statement sees every ticker.
INSERT INTO public.symbols (ticker, asset_type, description)
SELECT t, CASE WHEN strpos(t, '/') > 0 THEN 'crypto' ELSE 'stock' END, t
FROM unnest($1::text[]) AS t
ORDER BY t -- a fixed order: concurrent requests with overlapping tickers cannot deadlock
ON CONFLICT (ticker) DO NOTHING;
