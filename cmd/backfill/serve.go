package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/symbolsync/backfill/control"
	"github.com/symbolsync/backfill/replicator"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase"
)

// replConfig is what the replicator runs with, in both `serve` and `dev`.
type replConfig struct {
	disabled    bool
	slot        string
	publication string
}

func (c *replConfig) register(f *flags) {
	f.Bool(&c.disabled, "no-replicator", "BACKFILL_NO_REPLICATOR", false, "do not run the replicator in this process (another replica runs it)")
	f.String(&c.slot, "replication-slot", "BACKFILL_REPLICATION_SLOT", replicator.DefaultSlotName, "logical replication slot of the replicator (one per database; slot names are cluster-wide)")
	f.String(&c.publication, "publication", "BACKFILL_PUBLICATION", replicator.DefaultPublication, "publication carrying user_symbol_tracking (created by the migrations)")
}

// apiConfig is what the HTTP API runs with, in both `serve` and `dev`.
type apiConfig struct {
	listen          string
	supabaseURL     string
	jwtSecret       string
	jwksURL         string
	jwksFile        string
	publishableKeys string
	secretKeys      string
	denyAnonymous   bool
	noVerifyJWT     bool
	checkSessions   bool
	authKey         string
	requestTimeout  time.Duration
	maxWatchers     int
}

func (c *apiConfig) register(f *flags) {
	f.String(&c.listen, "listen", "BACKFILL_LISTEN", "127.0.0.1:54321", "address of the HTTP API (HTTP/1.1 and h2c on one port)")
	f.String(&c.supabaseURL, "supabase-url", "BACKFILL_SUPABASE_URL", "", "the Supabase project's URL, e.g. https://<ref>.supabase.co; sets the JWKS URL and the accepted token issuer (empty: local development)")
	f.String(&c.jwtSecret, "jwt-secret", "BACKFILL_JWT_SECRET", "", "legacy HS256 JWT secret (default: the Supabase CLI's public local secret, only when --supabase-url is empty or local)")
	f.String(&c.jwksURL, "jwks-url", "BACKFILL_JWKS_URL", "", "JWKS with the ES256/RS256 signing keys (default: <supabase-url>/auth/v1/.well-known/jwks.json)")
	f.String(&c.jwksFile, "jwks-file", "BACKFILL_JWKS_FILE", "", "a file holding a JWK Set, instead of or beside --jwks-url")
	f.String(&c.publishableKeys, "publishable-keys", "BACKFILL_PUBLISHABLE_KEYS", "", "comma-separated sb_publishable_… keys accepted as anonymous")
	f.String(&c.secretKeys, "secret-keys", "BACKFILL_SECRET_KEYS", "", "comma-separated sb_secret_… keys accepted as the service")
	f.Bool(&c.denyAnonymous, "deny-anonymous", "BACKFILL_DENY_ANONYMOUS", false, "refuse anon and publishable keys (by default anonymous interest is tracked with user_id NULL)")
	f.Bool(&c.noVerifyJWT, "no-verify-jwt", "BACKFILL_NO_VERIFY_JWT", false, "like verify_jwt = false for sync-user-symbols: requests without credentials run as anonymous")
	f.Bool(&c.checkSessions, "check-sessions", "BACKFILL_CHECK_SESSIONS", false, "ask Supabase Auth (auth.getUser) whether each user token's session is still live, caching answers 30s; needs --supabase-url")
	f.String(&c.authKey, "auth-key", "BACKFILL_AUTH_KEY", "", "the project's anon or publishable key, sent to Supabase Auth by --check-sessions (default: the first --publishable-keys)")
	f.Duration(&c.requestTimeout, "request-timeout", "BACKFILL_REQUEST_TIMEOUT", server.DefaultRequestTimeout, "upper bound on one request")
	f.Int(&c.maxWatchers, "max-watchers", "BACKFILL_MAX_WATCHERS", control.DefaultMaxWatchers,
		"WatchBackfill streams open at once, each holding a database connection; one more gets resource_exhausted")
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func runServe(ctx context.Context, e *env, args []string) error {
	var (
		api            apiConfig
		repl           replConfig
		orch           orchConfig
		dbURL          string
		connectTimeout time.Duration
		log            logging
	)
	f := newFlags(e, "serve", "--database-url URL [--listen 127.0.0.1:54321]",
		"Serve the API against a database migrated with `backfill migrate`: the Supabase function path\n"+
			"/functions/v1/sync-user-symbols, SymbolSyncService and the ControlService control plane (service_role\n"+
			"or sb_secret_ callers only) over Connect, gRPC and gRPC-Web, gRPC health and reflection, /healthz,\n"+
			"/readyz and /metrics, until SIGINT or SIGTERM.")
	f.String(&dbURL, "database-url", "BACKFILL_DATABASE_URL", "", "PostgreSQL URL")
	f.Duration(&connectTimeout, "connect-timeout", "BACKFILL_CONNECT_TIMEOUT", 10*time.Second, "give up connecting to the database after this long")
	api.register(f)
	repl.register(f)
	orch.register(f, "none")
	log.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if dbURL == "" {
		return fmt.Errorf("%w: --database-url is required", errUsage)
	}
	logger, err := log.logger(e.stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", api.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", api.listen, err)
	}
	defer ln.Close()
	pool, err := openPool(ctx, dbURL, connectTimeout)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := supabase.NewMigrator(supabase.MigratorConfig{})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "api: http://%s\n", ln.Addr())
	return runServices(ctx, e, api, repl, orch, dbURL, pool, migrator, ln, logger, nil)
}

// runServices is the shared composition root of `serve` and `dev` once the database is there:
// metrics registry, replicator, then the API; torn down in reverse when ctx ends.
func runServices(ctx context.Context, e *env, api apiConfig, repl replConfig, orch orchConfig, dbURL string, pool *pgxpool.Pool,
	migrator *supabase.Migrator, ln net.Listener, logger *slog.Logger, ready func()) error {
	if api.maxWatchers < 1 {
		return fmt.Errorf("%w: --max-watchers must be at least 1", errUsage)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if !repl.disabled {
		r, err := replicator.New(replicator.Config{
			DatabaseURL: dbURL,
			SlotName:    repl.slot,
			Publication: repl.publication,
			Registerer:  reg,
			Logger:      logger.With("component", "replicator"),
		})
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		// Start's context is the replicator's lifetime: it ends with ours.
		if err := r.Start(ctx); err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := r.Stop(stopCtx); err != nil {
				logger.Error("stop replicator", slog.Any("error", err))
			}
		}()
	}
	orchestration, err := startOrchestrator(ctx, orch, e.getenv, pool, reg, logger)
	if err != nil {
		return err
	}
	defer orchestration.stop()
	// The control plane reports the slot named by --replication-slot (this process's replicator,
	// or with --no-replicator the one the replicating replica was given) and plans RunTick on
	// this process's orchestrator grid. It starts nothing: a watch holds a connection only while
	// its client is connected, and the server's draining ends them all.
	ctl, err := control.New(control.Config{
		MaxWatchers: api.maxWatchers,
		Pool:        pool,
		SlotName:    repl.slot,
		SliceSizes:  orchestration.grid,
		Checker:     orchestration.checker,
		Registerer:  reg,
		Logger:      logger.With("component", "control"),
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return serveAPI(ctx, api, pool, migrator, ln, logger, reg, ctl, ready)
}

// noJIT turns PostgreSQL's JIT off for the service's sessions, unless the URL sets jit itself.
// Every statement of the service is short, but over tens of thousands of definitions the
// planner's estimates cross jit_above_cost, and compiling a plan then costs half a second per
// statement (a planning pass or a refresh that finds nothing to do took 0.6 s, nearly all of it
// JIT). It is a session setting, allowed on hosted Supabase too.
func noJIT(params map[string]string) {
	if _, set := params["jit"]; !set {
		params["jit"] = "off"
	}
}

// openPool opens the database pool and checks that the database answers.
func openPool(ctx context.Context, dbURL string, timeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("%w: --database-url: %w", errUsage, err)
	}
	if !strings.Contains(dbURL, "pool_max_conns") {
		// The API, the orchestrator's workers (5 by default) and its heartbeats share the pool:
		// pgxpool's default of max(4, CPUs) would starve them.
		cfg.MaxConns = max(cfg.MaxConns, 20)
	}
	noJIT(cfg.ConnConfig.RuntimeParams)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// serveAPI is the API's part of the composition root: auth, server, HTTP listener, shut down in
// reverse when ctx ends (draining first, which also ends open WatchBackfill streams, so the
// graceful shutdown does not wait for them). ready, if not nil, is called once the server
// accepts requests.
func serveAPI(ctx context.Context, api apiConfig, pool *pgxpool.Pool, migrator *supabase.Migrator,
	ln net.Listener, logger *slog.Logger, reg *prometheus.Registry, ctl *control.Service, ready func()) error {
	var sessions server.SessionChecker
	if api.checkSessions {
		key := api.authKey
		if key == "" {
			if keys := splitList(api.publishableKeys); len(keys) > 0 {
				key = keys[0]
			}
		}
		s, err := server.NewSupabaseSessions(server.SessionConfig{SupabaseURL: api.supabaseURL, Key: key})
		if err != nil {
			return fmt.Errorf("%w: --check-sessions needs --supabase-url and --auth-key (or --publishable-keys): %w", errUsage, err)
		}
		sessions = s
	}
	auth, err := server.NewJWTAuth(server.AuthConfig{
		Sessions:        sessions,
		SupabaseURL:     api.supabaseURL,
		JWTSecret:       api.jwtSecret,
		JWKSURL:         api.jwksURL,
		JWKSFile:        api.jwksFile,
		PublishableKeys: splitList(api.publishableKeys),
		SecretKeys:      splitList(api.secretKeys),
		DenyAnonymous:   api.denyAnonymous,
		Users:           server.NewPgUserLookup(pool),
		Logger:          logger.With("component", "auth"),
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := auth.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = auth.Stop(context.WithoutCancel(ctx)) }()

	srv, err := server.New(server.Config{
		Pool:     pool,
		Auth:     auth,
		Registry: reg,
		Functions: map[string]server.FunctionConfig{
			server.SyncFunctionName: {VerifyJWT: !api.noVerifyJWT},
		},
		ReadyChecks: []server.Check{
			{Name: "database", Run: func(ctx context.Context) error { return databaseReady(ctx, pool, migrator) }},
		},
		RequestTimeout: api.requestTimeout,
		Control:        ctl,
		Logger:         logger.With("component", "server"),
	})
	if err != nil {
		return err
	}
	httpSrv := server.NewHTTPServer(srv.Handler())
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	logger.Info("serving", slog.String("listen", ln.Addr().String()))
	if ready != nil {
		ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("stopping", slog.Any("cause", context.Cause(ctx)))
	case err := <-served:
		runErr = fmt.Errorf("serve http: %w", err)
	}
	srv.Draining()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("shut down http server: %w", err)
	}
	return runErr
}
