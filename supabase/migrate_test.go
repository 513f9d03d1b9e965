package supabase_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func newMigrator(t *testing.T, ms []supabase.Migration) *supabase.Migrator {
	t.Helper()
	m, err := supabase.NewMigrator(supabase.MigratorConfig{Migrations: ms})
	require.NoError(t, err)
	return m
}

func TestMigrateEmptyDatabaseThenNoop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := connect(t, pgtest.EmptyURL(t))
	all, err := supabase.Migrations()
	require.NoError(t, err)
	require.NotEmpty(t, all)

	m := newMigrator(t, nil)
	applied, err := m.Migrate(ctx, conn)
	require.NoError(t, err)
	require.Len(t, applied, len(all))

	again, err := m.Migrate(ctx, conn)
	require.NoError(t, err)
	require.Empty(t, again, "a second run applies nothing")

	pending, err := m.Pending(ctx, conn)
	require.NoError(t, err)
	require.Empty(t, pending)

	// Recorded as the Supabase CLI records them: version, name, statements.
	rows, err := conn.Query(ctx, `SELECT version, name, cardinality(statements) FROM supabase_migrations.schema_migrations ORDER BY version`)
	require.NoError(t, err)
	type rec struct {
		Version, Name string
		N             int
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	require.NoError(t, err)
	require.Len(t, recs, len(all))
	for i, r := range recs {
		require.Equal(t, all[i].Version, r.Version)
		require.Equal(t, all[i].Name, r.Name)
		require.Positive(t, r.N, "statements recorded for %s", r.Name)
	}

	// The tables the rest of the system relies on exist, and wal_level is logical.
	for _, table := range []string{"symbols", "user_symbol_tracking", "job_definitions", "job_runs",
		"coverage_status", "ohlc_bars_v2", "timeframe_settings", "replication_progress"} {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "public."+table).Scan(&ok))
		require.True(t, ok, table)
	}
	var walLevel string
	require.NoError(t, conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel))
	require.Equal(t, "logical", walLevel)
}

func TestMigrateConcurrentRunsApplyEachOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	all, err := supabase.Migrations()
	require.NoError(t, err)

	const runners = 4
	var wg sync.WaitGroup
	counts := make([]int, runners)
	errs := make([]error, runners)
	for i := range runners {
		conn := connect(t, url)
		wg.Go(func() {
			applied, err := newMigrator(t, nil).Migrate(t.Context(), conn)
			counts[i], errs[i] = len(applied), err
		})
	}
	wg.Wait()
	total := 0
	for i := range runners {
		require.NoError(t, errs[i], "runner %d", i)
		total += counts[i]
	}
	require.Equal(t, len(all), total, "every migration applied exactly once across runners")

	var recorded int
	require.NoError(t, connect(t, url).QueryRow(t.Context(),
		"SELECT count(*) FROM supabase_migrations.schema_migrations").Scan(&recorded))
	require.Equal(t, len(all), recorded)
}

func TestMigrateRejectsChangedAppliedFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := connect(t, pgtest.EmptyURL(t))
	fsys := fstest.MapFS{
		"20260101000000_first.sql":  {Data: []byte("CREATE TABLE a (id int);\n-- a comment\n")},
		"20260102000000_second.sql": {Data: []byte("CREATE TABLE b (id int);")},
	}
	ms, err := supabase.ReadMigrations(fsys)
	require.NoError(t, err)
	_, err = newMigrator(t, ms).Migrate(ctx, conn)
	require.NoError(t, err)

	// Whitespace, comments and statement splitting are not changes...
	fsys["20260101000000_first.sql"] = &fstest.MapFile{Data: []byte("-- reworded comment\nCREATE TABLE a (id int)   ;")}
	ms, err = supabase.ReadMigrations(fsys)
	require.NoError(t, err)
	applied, err := newMigrator(t, ms).Migrate(ctx, conn)
	require.NoError(t, err)
	require.Empty(t, applied)

	// ...but a different statement is, and the error names the file.
	fsys["20260101000000_first.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE a (id bigint);")}
	ms, err = supabase.ReadMigrations(fsys)
	require.NoError(t, err)
	_, err = newMigrator(t, ms).Migrate(ctx, conn)
	require.ErrorIs(t, err, supabase.ErrMigrationChanged)
	require.Contains(t, err.Error(), "supabase/migrations/20260101000000_first.sql")
}

func TestMigrateFailureLeavesNothingHalfApplied(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := connect(t, pgtest.EmptyURL(t))
	ms, err := supabase.ReadMigrations(fstest.MapFS{
		"20260101000000_ok.sql":     {Data: []byte("CREATE TABLE ok (id int);")},
		"20260102000000_broken.sql": {Data: []byte("CREATE TABLE half (id int);\n\nCREATE TABLE broken (id nosuchtype);\n")},
		"20260103000000_later.sql":  {Data: []byte("CREATE TABLE later (id int);")},
	})
	require.NoError(t, err)
	applied, err := newMigrator(t, ms).Migrate(ctx, conn)
	require.Error(t, err)
	require.Contains(t, err.Error(), "20260102000000_broken.sql line 3")
	require.Len(t, applied, 1)

	var half, later bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass('half') IS NOT NULL, to_regclass('later') IS NOT NULL").Scan(&half, &later))
	require.False(t, half, "the failing migration's transaction rolled back")
	require.False(t, later, "nothing after the failing migration ran")
	var versions []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT array_agg(version ORDER BY version) FROM supabase_migrations.schema_migrations").Scan(&versions))
	require.Equal(t, []string{"20260101000000"}, versions)
}

func TestReadMigrationsRejectsBadNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"no version", fstest.MapFS{"init.sql": {}}, "init.sql: name must be <timestamp>_<name>.sql"},
		{"shared version", fstest.MapFS{"1_a.sql": {}, "1_b.sql": {}}, "share version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := supabase.ReadMigrations(tc.fs)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestReadMigrationsOrdersByNumericVersion(t *testing.T) {
	t.Parallel()
	ms, err := supabase.ReadMigrations(fstest.MapFS{"10_b.sql": {}, "9_a.sql": {}, "20260101000000_c.sql": {}})
	require.NoError(t, err)
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"a", "b", "c"}, names)
}

// authSnapshot describes the auth schema as the catalogs see it: tables with their columns,
// functions with their bodies, and the schema's owner and privileges.
func authSnapshot(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var snap string
	require.NoError(t, conn.QueryRow(t.Context(), `
		SELECT concat_ws(E'\n',
		  (SELECT nspowner::regrole::text || ' ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'auth'),
		  (SELECT string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, ''), E'\n' ORDER BY table_name, ordinal_position)
		     FROM information_schema.columns WHERE table_schema = 'auth'),
		  (SELECT string_agg(pg_get_functiondef(p.oid), E'\n' ORDER BY p.proname)
		     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'auth'))`).Scan(&snap))
	return snap
}

func TestMigrateLeavesExistingSupabaseAuthAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := connect(t, pgtest.EmptyURL(t))
	// A Supabase-like auth schema: its own owner, more columns, helpers with other bodies.
	require.NoError(t, supabase.ExecScript(ctx, conn, `
		DO $$ BEGIN
		  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
		    CREATE ROLE supabase_auth_admin NOLOGIN;
		  END IF;
		END $$;
		CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
		CREATE TABLE auth.users (
		  instance_id uuid, id uuid PRIMARY KEY, aud varchar(255), role varchar(255), email varchar(255),
		  encrypted_password varchar(255), raw_app_meta_data jsonb, raw_user_meta_data jsonb,
		  created_at timestamptz, updated_at timestamptz, is_anonymous boolean NOT NULL DEFAULT false);
		CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
		  SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $f$;
		CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
		  SELECT nullif(current_setting('request.jwt.claim.role', true), '')::text $f$;
		CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
		  SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb $f$;
		CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $f$ SELECT 'x' $f$;
		ALTER TABLE auth.users OWNER TO supabase_auth_admin;
		ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
		ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;
		ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
		ALTER FUNCTION auth.email() OWNER TO supabase_auth_admin;
	`))
	before := authSnapshot(t, conn)

	_, err := newMigrator(t, nil).Migrate(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, before, authSnapshot(t, conn), "the auth schema is unchanged")

	// And the schema works against it: tracking references the existing auth.users.
	var userID string
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO auth.users (id, email) VALUES (gen_random_uuid(), 'a@example.com') RETURNING id::text`).Scan(&userID))
	_, err = conn.Exec(ctx, `
		WITH s AS (INSERT INTO symbols (ticker) VALUES ('AAPL') RETURNING id)
		INSERT INTO user_symbol_tracking (user_id, symbol_id, source) SELECT $1::uuid, id, 'watchlist' FROM s`, userID)
	require.NoError(t, err)
}

func TestMigrateCreatesAuthShimOnPlainPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := connect(t, pgtest.URL(t))
	// auth.uid() and auth.role() read the claims the way PostgREST sets them.
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, `SELECT set_config('request.jwt.claims', '{"sub":"7d5b2a9e-2f7e-4c1b-9a53-1c2d3e4f5a6b","role":"authenticated"}', true)`)
	require.NoError(t, err)
	var uid, role, sub string
	require.NoError(t, tx.QueryRow(ctx, `SELECT auth.uid()::text, auth.role(), auth.jwt() ->> 'sub'`).Scan(&uid, &role, &sub))
	require.Equal(t, "7d5b2a9e-2f7e-4c1b-9a53-1c2d3e4f5a6b", uid)
	require.Equal(t, "authenticated", role)
	require.Equal(t, uid, sub)

	for _, r := range []string{"anon", "authenticated", "service_role"} {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", r).Scan(&ok))
		require.True(t, ok, r)
	}
}

func TestNoTriggerOnTrackingCreatesJobs(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.URL(t))
	var triggers []string
	require.NoError(t, conn.QueryRow(t.Context(), `
		SELECT coalesce(array_agg(tgname::text), '{}') FROM pg_trigger
		WHERE tgrelid = 'public.user_symbol_tracking'::regclass AND NOT tgisinternal`).Scan(&triggers))
	require.Empty(t, triggers, "job definitions come from the replicator, not from triggers")

	var published []string
	require.NoError(t, conn.QueryRow(t.Context(), `
		SELECT array_agg(schemaname || '.' || tablename) FROM pg_publication_tables WHERE pubname = 'backfill_tracking'`).Scan(&published))
	require.Equal(t, []string{"public.user_symbol_tracking"}, published)
}

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"plain", "SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"no trailing semicolon", "SELECT 1;\nSELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"empty statements dropped", " ; ;SELECT 1;;", []string{"SELECT 1"}},
		{"semicolon in string", "SELECT 'a;b'; SELECT 2", []string{"SELECT 'a;b'", "SELECT 2"}},
		{"doubled quote", "SELECT 'it''s;'; SELECT 2", []string{"SELECT 'it''s;'", "SELECT 2"}},
		{"escape string", `SELECT E'\';'; SELECT 2`, []string{`SELECT E'\';'`, "SELECT 2"}},
		{"quoted identifier", `SELECT 1 AS "a;b"; SELECT 2`, []string{`SELECT 1 AS "a;b"`, "SELECT 2"}},
		{"line comment", "SELECT 1 -- not; here\n; SELECT 2", []string{"SELECT 1 -- not; here", "SELECT 2"}},
		{"nested block comment", "SELECT /* a /* b; */ c; */ 1; SELECT 2", []string{"SELECT /* a /* b; */ c; */ 1", "SELECT 2"}},
		{"dollar quote", "DO $$ BEGIN PERFORM 1; END $$; SELECT 2", []string{"DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"}},
		{"tagged dollar quote", "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql; SELECT 2",
			[]string{"CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql", "SELECT 2"}},
		{"parameter is not a quote", "SELECT $1; SELECT 2", []string{"SELECT $1", "SELECT 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, supabase.SplitStatements(tc.in))
		})
	}
}

func TestTrackingRowLevelSecurity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := connect(t, pgtest.URL(t))
	const alice, bob = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	require.NoError(t, supabase.ExecScript(ctx, conn, `
		INSERT INTO auth.users (id) VALUES ('`+alice+`'), ('`+bob+`');
		INSERT INTO symbols (ticker) VALUES ('AAPL');
		INSERT INTO user_symbol_tracking (user_id, symbol_id, source)
		  SELECT u, s.id, 'watchlist' FROM symbols s, unnest(ARRAY['`+alice+`', '`+bob+`']::uuid[]) AS u;
		INSERT INTO user_symbol_tracking (user_id, symbol_id, source) SELECT NULL, id, 'chart_view' FROM symbols`))

	// As Alice, through the roles and claims PostgREST would set.
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, `SELECT set_config('request.jwt.claims', json_build_object('sub', $1::text, 'role', 'authenticated')::text, true)`, alice)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SET LOCAL ROLE authenticated")
	require.NoError(t, err)
	var visible []string
	require.NoError(t, tx.QueryRow(ctx, "SELECT coalesce(array_agg(user_id::text), '{}') FROM user_symbol_tracking").Scan(&visible))
	require.Equal(t, []string{alice}, visible, "a user sees only their own rows")
	tag, err := tx.Exec(ctx, "DELETE FROM user_symbol_tracking WHERE user_id = $1", bob)
	require.NoError(t, err)
	require.Zero(t, tag.RowsAffected(), "and cannot delete someone else's")
	_, err = tx.Exec(ctx, "INSERT INTO user_symbol_tracking (user_id, symbol_id, source) SELECT $1, id, 'recent_search' FROM symbols", bob)
	require.ErrorContains(t, err, "row-level security", "nor insert rows for them")
	require.NoError(t, tx.Rollback(ctx))

	// anon has no access to tracking at all.
	tx, err = conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SET LOCAL ROLE anon")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1 FROM user_symbol_tracking")
	require.ErrorContains(t, err, "permission denied")
	require.NoError(t, tx.Rollback(ctx))

	// A duplicate anonymous row is rejected: NULL user ids do not bypass the key.
	_, err = conn.Exec(ctx, "INSERT INTO user_symbol_tracking (user_id, symbol_id, source) SELECT NULL, id, 'chart_view' FROM symbols")
	require.ErrorContains(t, err, "user_symbol_tracking_user_symbol_source_key")
	// Unknown timeframes are rejected by the table itself.
	_, err = conn.Exec(ctx, "INSERT INTO user_symbol_tracking (user_id, symbol_id, source, timeframes) SELECT NULL, id, 'watchlist', '{m15,1D}' FROM symbols")
	require.ErrorContains(t, err, "user_symbol_tracking_timeframes_check")
}
