-- Completeness: "fetched" and "complete" are different facts.
--
-- coverage_status.covered says which time ranges were fetched. Whether the bars are there is
-- checked per (definition, session) by the completeness checker (Go package completeness, with
-- the trading calendar and the provider's bar grid of package market) and recorded here, so SQL,
-- the control plane and dashboards report what the last check found:
--   * coverage_completeness: per definition, the sessions of its window that had ended when it
--     was checked, how many of them were fetched and how many hold the bars the provider can
--     return (see the package's doc for the rule), and when;
--   * coverage_holes: one row per (definition, session) that is not complete although it was
--     fetched, or whose run failed for good; the checker queues a repair run for it (a fetch
--     of exactly the missing sessions) and gives up after a few repairs that brought nothing;
--   * coverage_dirty: the definitions whose bars changed since the checker last looked, so the
--     periodic check reads only those (plus a slow rolling sweep), not every bar. The writer
--     marks a definition in the statement that writes its bars; deleting or truncating bars
--     marks them with the triggers below.

CREATE TABLE public.coverage_completeness (
  job_def_id        uuid PRIMARY KEY REFERENCES public.job_definitions (id) ON DELETE CASCADE,
  symbol            text NOT NULL,
  timeframe         text NOT NULL CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  provider          text NOT NULL,
  window_from       timestamptz NOT NULL,
  window_to         timestamptz NOT NULL,
  sessions_expected integer NOT NULL CHECK (sessions_expected >= 0),
  sessions_fetched  integer NOT NULL CHECK (sessions_fetched BETWEEN 0 AND sessions_expected),
  sessions_complete integer NOT NULL CHECK (sessions_complete BETWEEN 0 AND sessions_fetched),
  holes             integer NOT NULL CHECK (holes >= 0),
  suspicious        integer NOT NULL DEFAULT 0 CHECK (suspicious >= 0),
  checked_at        timestamptz NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The rolling sweep takes the least recently checked definitions first.
CREATE INDEX coverage_completeness_checked_at_idx ON public.coverage_completeness (checked_at);

COMMENT ON TABLE public.coverage_completeness IS
  'What the completeness checker found per definition at checked_at: sessions of the window that had ended, fetched, complete; holes and suspicious sessions (bars outside the session''s hours).';

CREATE TABLE public.coverage_holes (
  job_def_id    uuid NOT NULL REFERENCES public.job_definitions (id) ON DELETE CASCADE,
  session_date  date NOT NULL,
  symbol        text NOT NULL,
  timeframe     text NOT NULL CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  -- The bar starts the session should hold: [range_from, range_to) is what a repair fetches.
  range_from    timestamptz NOT NULL,
  range_to      timestamptz NOT NULL CHECK (range_from < range_to),
  -- missing: fetched, no bar; partial: fetched, fewer bars than the provider returns (exact
  -- grids only); failed: the run that should have fetched it failed for good.
  kind          text NOT NULL CHECK (kind IN ('missing', 'partial', 'failed')),
  expected_bars integer NOT NULL CHECK (expected_bars >= 0),
  found_bars    integer NOT NULL CHECK (found_bars >= 0),
  -- open: found, no repair yet; repairing: a repair run was queued; given_up: repairs brought
  -- nothing (reason says why). A given-up hole stays visible and is not queued again by itself.
  state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'repairing', 'given_up')),
  repairs       integer NOT NULL DEFAULT 0 CHECK (repairs >= 0),
  repair_run_id uuid REFERENCES public.job_runs (id) ON DELETE SET NULL,
  reason        text,
  detected_at   timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_def_id, session_date)
);

CREATE INDEX coverage_holes_repair_run_id_idx ON public.coverage_holes (repair_run_id) WHERE repair_run_id IS NOT NULL;

COMMENT ON TABLE public.coverage_holes IS
  'Sessions of a definition''s window that were fetched but lack bars (missing, partial) or whose run failed for good (failed), as the completeness checker last found them; healed holes are deleted.';

CREATE SEQUENCE public.coverage_dirty_seq;

CREATE TABLE public.coverage_dirty (
  symbol_id uuid NOT NULL,
  timeframe text NOT NULL,
  -- Moves on every mark: the checker deletes a mark only if nobody marked it again meanwhile.
  seq       bigint NOT NULL DEFAULT nextval('public.coverage_dirty_seq'),
  PRIMARY KEY (symbol_id, timeframe)
);

COMMENT ON TABLE public.coverage_dirty IS
  'Definitions (by symbol_id, timeframe) whose bars changed since the completeness checker last looked at them.';

CREATE FUNCTION public.ohlc_bars_v2_mark_dirty()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  INSERT INTO public.coverage_dirty AS c (symbol_id, timeframe)
  SELECT DISTINCT o.symbol_id, o.timeframe FROM old_bars AS o
  ORDER BY 1, 2
  ON CONFLICT (symbol_id, timeframe) DO UPDATE SET seq = nextval('public.coverage_dirty_seq');
  RETURN NULL;
END
$fn$;

CREATE TRIGGER ohlc_bars_v2_mark_dirty_on_delete
  AFTER DELETE ON public.ohlc_bars_v2
  REFERENCING OLD TABLE AS old_bars
  FOR EACH STATEMENT EXECUTE FUNCTION public.ohlc_bars_v2_mark_dirty();

CREATE FUNCTION public.ohlc_bars_v2_mark_all_dirty()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  INSERT INTO public.coverage_dirty AS c (symbol_id, timeframe)
  SELECT DISTINCT d.symbol_id, d.timeframe FROM public.job_definitions AS d
  ORDER BY 1, 2
  ON CONFLICT (symbol_id, timeframe) DO UPDATE SET seq = nextval('public.coverage_dirty_seq');
  RETURN NULL;
END
$fn$;

CREATE TRIGGER ohlc_bars_v2_mark_all_dirty_on_truncate
  AFTER TRUNCATE ON public.ohlc_bars_v2
  FOR EACH STATEMENT EXECUTE FUNCTION public.ohlc_bars_v2_mark_all_dirty();

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.coverage_completeness
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.coverage_holes
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

-- As coverage_status: signed-in users may read what the checker found; only the service writes.
ALTER TABLE public.coverage_completeness ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.coverage_holes ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.coverage_dirty ENABLE ROW LEVEL SECURITY;
CREATE POLICY coverage_completeness_read ON public.coverage_completeness FOR SELECT TO authenticated USING (true);
CREATE POLICY coverage_holes_read ON public.coverage_holes FOR SELECT TO authenticated USING (true);
GRANT SELECT ON public.coverage_completeness, public.coverage_holes TO authenticated;
GRANT ALL ON public.coverage_completeness, public.coverage_holes, public.coverage_dirty TO service_role;
GRANT USAGE ON SEQUENCE public.coverage_dirty_seq TO service_role;
