-- Take one token of provider $1's budget at clock $2 (NULL: the database's now()) and return
-- how many seconds after that instant the request may be sent (0: at once).
--
-- The bucket first refills by the time elapsed since it was last reckoned (updated_at, or
-- paused_until when later: nothing accrues during a pause) at rate_per_second, capped at
-- burst; then one token is taken. Tokens may go negative: the request is booked now and waits
-- until the refill has paid its token, -tokens / rate_per_second seconds, counted from the end
-- of the pause when one is running. The row lock orders concurrent callers, each booked behind
-- the one before, so they queue fairly whatever process they run in. No row: the budget was
-- never created (or was deleted), and the caller reports it.
UPDATE public.provider_budget AS b
SET tokens = least(b.burst,
                   b.tokens + b.rate_per_second
                     * greatest(0, extract(epoch FROM c.now - greatest(b.updated_at, b.paused_until))::float8))
             - 1,
    updated_at = greatest(b.updated_at, c.now)
FROM (SELECT coalesce($2::timestamptz, now()) AS now) AS c
WHERE b.provider = $1
RETURNING greatest(0, extract(epoch FROM b.paused_until - c.now)::float8)
          + greatest(0, -b.tokens / b.rate_per_second)
