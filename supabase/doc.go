// Package supabase holds the service's schema in the Supabase CLI layout and applies it.
//
// The SQL under migrations/ is the one source of schema truth: the same files are applied by
// `supabase db push` to a hosted project and by [Migrator] to the local development cluster and
// to every test database. [Migrator] records what it applied in the Supabase CLI's own table,
// supabase_migrations.schema_migrations, so both tools agree on what is done.
//
// seed.sql holds the development seed data and monitor_multi_timeframe.sql the operators'
// monitoring queries. The sub-packages start a local PostgreSQL ([pglocal]) and give tests a
// fresh migrated database ([pgtest]).
//
// [pglocal]: github.com/symbolsync/backfill/supabase/pglocal
// [pgtest]: github.com/symbolsync/backfill/supabase/pgtest
package supabase
