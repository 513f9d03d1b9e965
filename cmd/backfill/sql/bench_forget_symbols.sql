-- Remove what `backfill bench cdc` wrote to a database it was given (--database-url): its
-- symbols, whose tracking rows and job definitions go with them (ON DELETE CASCADE).
--
-- $1 text  ticker prefix of the run
DELETE FROM public.symbols WHERE starts_with(ticker, $1::text);
