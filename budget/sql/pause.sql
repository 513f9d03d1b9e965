-- Hold every request of provider $1's budget back until $2, at clock $3 (NULL: the database's
-- now()). A pause only ever extends: paused_until becomes the later of the two. The bucket is
-- reckoned at the clock first (refilled up to now, as take.sql does), because nothing accrues
-- from then until paused_until: after the pause, requests go at the pace of the budget again,
-- not all those that would have accrued during it at once.
UPDATE public.provider_budget AS b
SET tokens = least(b.burst,
                   b.tokens + b.rate_per_second
                     * greatest(0, extract(epoch FROM c.now - greatest(b.updated_at, b.paused_until))::float8)),
    updated_at = greatest(b.updated_at, c.now),
    paused_until = greatest(b.paused_until, $2::timestamptz)
FROM (SELECT coalesce($3::timestamptz, now()) AS now) AS c
WHERE b.provider = $1
