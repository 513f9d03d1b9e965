-- The provider's request budget, shared by every process on this database.
--
-- A market-data plan limits the whole deployment (Alpaca's free plan: 200 requests a minute),
-- not each process, so the budget is one token bucket per provider in one row, taken from by
-- every `backfill serve` replica (Go package budget): each request first takes a token with one
-- short UPDATE of that row, which refills the bucket by the time elapsed since updated_at at
-- rate_per_second (capped at burst), takes one token and says how long to wait for it. Tokens
-- may go negative: the request is booked at once and waits for its turn, so concurrent callers
-- queue in the order the row lock serves them. A 429 (Retry-After) or an exhausted window
-- (X-RateLimit-Reset) sets paused_until: nothing is sent and nothing accrues before it.
--
-- Times are on the caller's clock: the database's now() unless a test or a replay injects one.

CREATE TABLE public.provider_budget (
  provider        text PRIMARY KEY,
  rate_per_second double precision NOT NULL CHECK (rate_per_second > 0),
  burst           double precision NOT NULL CHECK (burst >= 1),
  tokens          double precision NOT NULL,
  updated_at      timestamptz NOT NULL,
  paused_until    timestamptz
);

COMMENT ON TABLE public.provider_budget IS
  'One token bucket per market-data provider, shared by every process on this database: each provider request takes a token first (see migration 20261204000400_provider_budget.sql).';
COMMENT ON COLUMN public.provider_budget.provider IS
  'The provider the budget is for, as in ohlc_bars_v2.provider: alpaca, massive.';
COMMENT ON COLUMN public.provider_budget.rate_per_second IS
  'Tokens added per second: the plan''s requests a minute times the pace, divided by 60. Set by the process that started last (last writer wins).';
COMMENT ON COLUMN public.provider_budget.burst IS
  'The most tokens the bucket holds: how many requests may go at once after a quiet spell.';
COMMENT ON COLUMN public.provider_budget.tokens IS
  'Tokens left at updated_at; negative when requests are booked ahead (each waits until the refill pays its token).';
COMMENT ON COLUMN public.provider_budget.updated_at IS
  'The instant tokens was reckoned at: the refill counts from here (or from paused_until when later).';
COMMENT ON COLUMN public.provider_budget.paused_until IS
  'No request is sent and no token accrues before this instant (the provider said so: Retry-After, X-RateLimit-Reset); NULL: never paused.';

-- Internal bookkeeping of the service: no client reads or writes it (RLS on, no policy).
ALTER TABLE public.provider_budget ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.provider_budget FROM PUBLIC, anon, authenticated;
GRANT ALL ON public.provider_budget TO service_role;
