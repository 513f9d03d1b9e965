-- Core schema of the backfill service.
--
-- Table and column names follow the original Supabase project (symbols, user_symbol_tracking,
-- job_definitions, job_runs, coverage_status, ohlc_bars_v2) so existing psql snippets keep
-- working. What differs is on purpose and is explained next to each table. No trigger creates
-- jobs: the replicator derives job_definitions from user_symbol_tracking over logical
-- replication (publication backfill_tracking below).

-- Per-timeframe settings, editable with plain SQL. The replicator takes default_window_days for
-- a definition it creates; the planner and monitoring read job_type and sort_order.
CREATE TABLE public.timeframe_settings (
  timeframe           text PRIMARY KEY CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  job_type            text NOT NULL CHECK (job_type IN ('fetch_intraday', 'fetch_historical')),
  default_window_days integer NOT NULL CHECK (default_window_days BETWEEN 1 AND 36500),
  sort_order          smallint NOT NULL UNIQUE,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE public.timeframe_settings IS
  'Defaults per timeframe. Edit default_window_days with SQL; it applies to definitions created afterwards.';

INSERT INTO public.timeframe_settings (timeframe, job_type, default_window_days, sort_order) VALUES
  ('m15', 'fetch_intraday',    30, 1),
  ('h1',  'fetch_intraday',    90, 2),
  ('h4',  'fetch_intraday',   365, 3),
  ('d1',  'fetch_historical', 730, 4),
  ('w1',  'fetch_historical', 730, 5);

-- symbols: as the original, with text + CHECK instead of enums (enums need registering in
-- every client that COPYs, and adding a value cannot run inside a migration transaction).
CREATE TABLE public.symbols (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  ticker         text NOT NULL UNIQUE CHECK (char_length(ticker) BETWEEN 1 AND 32 AND ticker = btrim(ticker)),
  asset_type     text NOT NULL DEFAULT 'stock' CHECK (asset_type IN ('stock', 'future', 'option', 'crypto')),
  description    text,
  primary_source text NOT NULL DEFAULT 'alpaca',
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- user_symbol_tracking: one row per (user, symbol, source). user_id NULL is anonymous interest
-- (the app sends only the anon key); NULLS NOT DISTINCT keeps one anonymous row per symbol and
-- source instead of letting NULLs bypass the key as in the original.
CREATE TABLE public.user_symbol_tracking (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid REFERENCES auth.users (id) ON DELETE CASCADE,
  symbol_id  uuid NOT NULL REFERENCES public.symbols (id) ON DELETE CASCADE,
  source     text NOT NULL CHECK (source IN ('watchlist', 'recent_search', 'chart_view')),
  priority   integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000),
  timeframes text[] NOT NULL DEFAULT ARRAY['m15', 'h1', 'h4']
             CHECK (cardinality(timeframes) > 0
                    AND array_position(timeframes, NULL) IS NULL
                    AND timeframes <@ ARRAY['m15', 'h1', 'h4', 'd1', 'w1']),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT user_symbol_tracking_user_symbol_source_key
    UNIQUE NULLS NOT DISTINCT (user_id, symbol_id, source)
);

CREATE INDEX user_symbol_tracking_symbol_id_idx ON public.user_symbol_tracking (symbol_id);
CREATE INDEX user_symbol_tracking_source_idx ON public.user_symbol_tracking (source);

-- Deletes must carry the old symbol_id and timeframes to the replicator, not just the key.
ALTER TABLE public.user_symbol_tracking REPLICA IDENTITY FULL;

-- job_definitions: one per (symbol, timeframe, job_type). origin tells definitions derived from
-- tracking (which the replicator may disable when the last tracker goes) from those made by the
-- seed or by hand (never disabled by tracking changes).
CREATE TABLE public.job_definitions (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_type        text NOT NULL CHECK (job_type IN ('fetch_intraday', 'fetch_historical', 'run_forecast')),
  symbol          text NOT NULL,
  symbol_id       uuid NOT NULL REFERENCES public.symbols (id) ON DELETE CASCADE,
  timeframe       text NOT NULL CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  window_days     integer NOT NULL DEFAULT 7 CHECK (window_days BETWEEN 1 AND 36500),
  priority        integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000),
  enabled         boolean NOT NULL DEFAULT true,
  origin          text NOT NULL DEFAULT 'manual' CHECK (origin IN ('tracking', 'seed', 'manual')),
  disabled_reason text,
  -- Backfill milestones, for the latency metrics: when the definition was last requested
  -- (created, or re-enabled by tracking), when its first bars were written and when every
  -- slice of its window was done. Reset together on a new request.
  requested_at    timestamptz NOT NULL DEFAULT now(),
  first_bars_at   timestamptz,
  covered_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT job_definitions_symbol_timeframe_job_type_key UNIQUE (symbol, timeframe, job_type)
);

CREATE INDEX job_definitions_enabled_priority_idx ON public.job_definitions (priority DESC) WHERE enabled;
CREATE INDEX job_definitions_symbol_id_idx ON public.job_definitions (symbol_id);

-- job_runs: one per (definition, slice). Slices sit on a fixed UTC grid, so the unique key
-- makes enqueueing idempotent (the original had no such key and piled up duplicates).
-- attempt counts claims; next_attempt_at delays retries; lease_expires_at is pushed forward by
-- the worker's heartbeat, and a run whose lease lapsed is taken back.
CREATE TABLE public.job_runs (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_def_id       uuid NOT NULL REFERENCES public.job_definitions (id) ON DELETE CASCADE,
  symbol           text NOT NULL,
  timeframe        text NOT NULL CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  job_type         text NOT NULL CHECK (job_type IN ('fetch_intraday', 'fetch_historical', 'run_forecast')),
  slice_from       timestamptz NOT NULL,
  slice_to         timestamptz NOT NULL,
  status           text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'success', 'failed', 'cancelled')),
  progress_percent numeric NOT NULL DEFAULT 0,
  rows_written     integer NOT NULL DEFAULT 0,
  provider         text,
  attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  error_code       text,
  error_message    text,
  triggered_by     text NOT NULL DEFAULT 'planner',
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  lease_owner      text,
  lease_expires_at timestamptz,
  heartbeat_at     timestamptz,
  started_at       timestamptz,
  finished_at      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT job_runs_slice_check CHECK (slice_from < slice_to),
  CONSTRAINT job_runs_job_def_id_slice_key UNIQUE (job_def_id, slice_from, slice_to)
);

CREATE INDEX job_runs_queued_idx ON public.job_runs (next_attempt_at) WHERE status = 'queued';
CREATE INDEX job_runs_running_lease_idx ON public.job_runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX job_runs_symbol_timeframe_status_idx ON public.job_runs (symbol, timeframe, status);
CREATE INDEX job_runs_updated_at_idx ON public.job_runs (updated_at DESC);

-- coverage_status: the original summary columns plus covered, the exact set of fetched ranges
-- (a fetched slice counts even when it held no bars), so holes stay visible.
CREATE TABLE public.coverage_status (
  symbol            text NOT NULL,
  timeframe         text NOT NULL CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  symbol_id         uuid NOT NULL REFERENCES public.symbols (id) ON DELETE CASCADE,
  covered           tstzmultirange NOT NULL DEFAULT '{}',
  from_ts           timestamptz,
  to_ts             timestamptz,
  last_success_at   timestamptz,
  last_rows_written integer,
  last_provider     text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, timeframe)
);

-- ohlc_bars_v2: bars keyed by (symbol_id, timeframe, ts, provider, is_forecast) as every writer
-- of the original upserted. ts is timestamptz from the start (the original began without a
-- time zone). The key's prefix (symbol_id, timeframe, ts) serves the chart and coverage queries.
CREATE TABLE public.ohlc_bars_v2 (
  id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  symbol_id        uuid NOT NULL REFERENCES public.symbols (id) ON DELETE CASCADE,
  timeframe        text NOT NULL CHECK (timeframe IN ('m15', 'h1', 'h4', 'd1', 'w1')),
  ts               timestamptz NOT NULL,
  open             numeric NOT NULL,
  high             numeric NOT NULL,
  low              numeric NOT NULL,
  close            numeric NOT NULL,
  volume           numeric NOT NULL DEFAULT 0 CHECK (volume >= 0),
  provider         text NOT NULL CHECK (provider IN ('alpaca', 'massive', 'polygon', 'yfinance', 'tradier',
                                                      'finnhub', 'ml_forecast', 'synthetic')),
  is_intraday      boolean NOT NULL DEFAULT false,
  is_forecast      boolean NOT NULL DEFAULT false,
  data_status      text CHECK (data_status IN ('verified', 'live', 'provisional')),
  confidence_score numeric(3, 2) CHECK (confidence_score BETWEEN 0 AND 1),
  upper_band       numeric,
  lower_band       numeric,
  fetched_at       timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ohlc_bars_v2_natural_key UNIQUE (symbol_id, timeframe, ts, provider, is_forecast),
  CONSTRAINT ohlc_bars_v2_high_low_check CHECK (high >= low)
);

CREATE INDEX ohlc_bars_v2_fetched_at_idx ON public.ohlc_bars_v2 (fetched_at DESC);

-- The replicator's bookkeeping: the last upstream commit LSN whose effects are applied, stored
-- in the same transaction as those effects, so a restart skips what is already done.
CREATE TABLE public.replication_progress (
  slot_name   text PRIMARY KEY,
  applied_lsn pg_lsn NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- updated_at follows every change, whoever makes it (the service, psql, the dashboard). The
-- tracking table has no trigger at all: the service sets its updated_at itself.
CREATE FUNCTION public.set_updated_at() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $fn$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$fn$;

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.timeframe_settings
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.symbols
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
-- A definition's updated_at follows its configuration only, not its backfill milestones: the
-- planner retries failed slices of a definition changed after they failed.
CREATE TRIGGER set_updated_at
  BEFORE UPDATE OF job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin, disabled_reason
  ON public.job_definitions
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.job_runs
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.coverage_status
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.replication_progress
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

-- Only the tracking table is published: publishing our own job tables would feed back.
CREATE PUBLICATION backfill_tracking FOR TABLE public.user_symbol_tracking;

-- Row level security. The service itself connects as the table owner (or service_role, which
-- bypasses RLS); these policies govern clients that come through PostgREST.
ALTER TABLE public.timeframe_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.symbols ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_symbol_tracking ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.job_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.job_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.coverage_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.ohlc_bars_v2 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.replication_progress ENABLE ROW LEVEL SECURITY;

-- Market data and its catalogue are public to read.
CREATE POLICY symbols_read ON public.symbols FOR SELECT TO anon, authenticated USING (true);
CREATE POLICY ohlc_bars_v2_read ON public.ohlc_bars_v2 FOR SELECT TO anon, authenticated USING (true);
CREATE POLICY timeframe_settings_read ON public.timeframe_settings FOR SELECT TO anon, authenticated USING (true);

-- A signed-in user sees and edits only their own tracking rows (as the original).
CREATE POLICY user_symbol_tracking_select_own ON public.user_symbol_tracking
  FOR SELECT TO authenticated USING (auth.uid() = user_id);
CREATE POLICY user_symbol_tracking_insert_own ON public.user_symbol_tracking
  FOR INSERT TO authenticated WITH CHECK (auth.uid() = user_id);
CREATE POLICY user_symbol_tracking_update_own ON public.user_symbol_tracking
  FOR UPDATE TO authenticated USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);
CREATE POLICY user_symbol_tracking_delete_own ON public.user_symbol_tracking
  FOR DELETE TO authenticated USING (auth.uid() = user_id);

-- Signed-in users may watch progress; only the service writes jobs.
CREATE POLICY job_definitions_read ON public.job_definitions FOR SELECT TO authenticated USING (true);
CREATE POLICY job_runs_read ON public.job_runs FOR SELECT TO authenticated USING (true);
CREATE POLICY coverage_status_read ON public.coverage_status FOR SELECT TO authenticated USING (true);

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT SELECT ON public.symbols, public.ohlc_bars_v2, public.timeframe_settings TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.user_symbol_tracking TO authenticated;
GRANT SELECT ON public.job_definitions, public.job_runs, public.coverage_status TO authenticated;
GRANT ALL ON public.timeframe_settings, public.symbols, public.user_symbol_tracking, public.job_definitions,
  public.job_runs, public.coverage_status, public.ohlc_bars_v2, public.replication_progress TO service_role;
