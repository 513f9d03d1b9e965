-- Give up holes ($1 definitions, $2 session dates, $3 reasons, in parallel): they stay
-- visible and are not repaired again unless an operator forces it.
UPDATE public.coverage_holes AS h
SET state = 'given_up', reason = g.reason
FROM unnest($1::uuid[], $2::date[], $3::text[]) AS g (id, session_date, reason)
WHERE h.job_def_id = g.id AND h.session_date = g.session_date
