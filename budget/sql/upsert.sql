-- Create or configure the budget of provider $1: rate_per_second $2, burst $3, a full bucket at
-- clock $4 (NULL: the database's now()) when the row is new. An existing row takes this
-- process's rate and burst (last writer wins) and keeps its tokens, capped at the new burst;
-- it is not written when nothing changed. Returns the rate and burst the row had before (NULL
-- when it is new), so the caller can say that another process was configured otherwise.
WITH old AS (
  SELECT b.rate_per_second, b.burst FROM public.provider_budget AS b WHERE b.provider = $1
), up AS (
  INSERT INTO public.provider_budget AS b (provider, rate_per_second, burst, tokens, updated_at)
  VALUES ($1, $2::float8, $3::float8, $3::float8, coalesce($4::timestamptz, now()))
  ON CONFLICT (provider) DO UPDATE
  SET rate_per_second = EXCLUDED.rate_per_second,
      burst = EXCLUDED.burst,
      tokens = least(b.tokens, EXCLUDED.burst)
  WHERE (b.rate_per_second, b.burst) IS DISTINCT FROM (EXCLUDED.rate_per_second, EXCLUDED.burst)
  RETURNING 1
)
SELECT old.rate_per_second, old.burst FROM (VALUES (1)) AS one (x) LEFT JOIN old ON true
