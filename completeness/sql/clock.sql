-- The pass's clock: $1, or the database's now() when NULL. Read once, then passed to every
-- statement of the pass, so the calendar's "ended" and the stored checked_at agree.
SELECT coalesce($1::timestamptz, now())
