-- Staging table for COPY; dropped with the transaction.
CREATE TEMP TABLE backfill_bars_stage (
  ts     timestamptz NOT NULL,
  open   float8 NOT NULL,
  high   float8 NOT NULL,
  low    float8 NOT NULL,
  close  float8 NOT NULL,
  volume float8 NOT NULL
) ON COMMIT DROP
