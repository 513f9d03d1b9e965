-- The Supabase CLI's own bookkeeping table, so `supabase db push` later sees our migrations as
-- applied. IF NOT EXISTS: on hosted Supabase it exists already (with extra columns we leave alone).
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
  version    text NOT NULL PRIMARY KEY,
  statements text[],
  name       text
);
