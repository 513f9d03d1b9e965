package server

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/symbolsync/backfill/control"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
	"github.com/symbolsync/backfill/gen/symbolsync/v1/symbolsyncv1connect"
	"github.com/symbolsync/backfill/server/tracking"
)

// Defaults for [Config].
const (
	DefaultMaxBodyBytes   = 64 << 10
	DefaultRequestTimeout = 30 * time.Second
)

// Config configures [New].
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Auth resolves callers. Required.
	Auth Authenticator
	// Registry receives the server's metrics and is served on /metrics. Required: each process
	// builds its own (no global registry).
	Registry *prometheus.Registry
	// Functions are the Supabase functions served under /functions/v1/. Default:
	// sync-user-symbols with verify_jwt on.
	Functions map[string]FunctionConfig
	// ReadyChecks must pass for /readyz to answer 200. Default: the database answers a ping.
	ReadyChecks []Check
	// MaxBodyBytes limits a request body; larger ones get 413. Default DefaultMaxBodyBytes (64 KiB).
	MaxBodyBytes int64
	// RequestTimeout bounds a unary request (a client may ask for less). Default
	// DefaultRequestTimeout (30s). Server streams (WatchBackfill) are not bounded: they end
	// when the client goes or when the server drains.
	RequestTimeout time.Duration
	// Control, when set, serves backfill.v1.ControlService, the operators' control plane, on
	// the same handler (Connect, gRPC, gRPC-Web, reflection, health), to service_role tokens
	// and sb_secret_ keys only. Default: nil, not served.
	Control *control.Service
	// Logger receives errors that reach no caller. Default: discard.
	Logger *slog.Logger
}

// Server is the HTTP surface: the Supabase function path, SymbolSyncService (and, when
// configured, ControlService) over Connect, gRPC and gRPC-Web, gRPC health and reflection,
// /healthz, /readyz and /metrics, all on one handler.
type Server struct {
	handler  http.Handler
	health   *grpchealth.StaticChecker
	services []string // the gRPC service names served, for health
	// drain ends open streams; see Draining.
	drain context.CancelCauseFunc
}

// New builds the server's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Pool == nil || cfg.Auth == nil || cfg.Registry == nil {
		return nil, errors.New("server: Pool, Auth and Registry are required")
	}
	if cfg.Functions == nil {
		cfg.Functions = map[string]FunctionConfig{SyncFunctionName: {VerifyJWT: true}}
	}
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadyChecks == nil {
		pool := cfg.Pool
		cfg.ReadyChecks = []Check{{Name: "database", Run: pool.Ping}}
	}
	m := newMetrics(cfg.Registry)
	store := tracking.NewStore(cfg.Pool)

	mux := http.NewServeMux()
	NewHealth(HealthConfig{Checks: cfg.ReadyChecks}).Register(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))

	gw := &gateway{auth: cfg.Auth, functions: cfg.Functions, store: store, maxBody: cfg.MaxBodyBytes, logger: cfg.Logger, metrics: m}
	fn := m.instrumentFunction(gw)
	mux.Handle("/functions/v1/{name}", fn)
	// The original function had no router: a sub-path reached the same handler.
	mux.Handle("/functions/v1/{name}/{rest...}", fn)

	opts := []connect.HandlerOption{
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
		connect.WithReadMaxBytes(int(cfg.MaxBodyBytes)),
		// Replies here are a few hundred bytes: gzip would cost more CPU than it saves bytes.
		connect.WithCompressMinBytes(4096),
		connect.WithRequestGate(authGate(cfg.Auth, cfg.Logger)),
		connect.WithInterceptors(m.interceptor()),
		connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
			cfg.Logger.LogAttrs(ctx, slog.LevelError, "handler panic", slog.String("procedure", spec.Procedure), slog.Any("panic", p))
			return connect.NewError(connect.CodeInternal, errors.New("internal error"))
		}),
	}
	path, handler := symbolsyncv1connect.NewSymbolSyncServiceHandler(&symbolSync{store: store, logger: cfg.Logger}, opts...)
	mux.Handle(path, rpcCORS(handler))
	services := []string{symbolsyncv1connect.SymbolSyncServiceName}

	// Streams are not bounded by RequestTimeout; they end when the client goes or at Draining.
	stopping, drain := context.WithCancelCause(context.Background())
	streams := map[string]bool{}
	if cfg.Control != nil {
		ctl := &controlService{ctl: cfg.Control, logger: cfg.Logger, stopping: stopping}
		path, handler := backfillv1connect.NewControlServiceHandler(ctl, append(slices.Clip(opts), connect.WithRequestGate(requireService))...)
		mux.Handle(path, rpcCORS(handler))
		services = append(services, backfillv1connect.ControlServiceName)
		streams[backfillv1connect.ControlServiceWatchBackfillProcedure] = true
	}

	checker := grpchealth.NewStaticChecker(services...)
	mux.Handle(grpchealth.NewHandler(checker))
	reflector := grpcreflect.NewStaticReflector(append(services, grpchealth.HealthV1ServiceName)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	return &Server{
		handler:  recoverPanics(cfg.Logger, withTimeout(cfg.RequestTimeout, streams, mux)),
		health:   checker,
		services: services,
		drain:    drain,
	}, nil
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Draining tells gRPC health clients the server is going away and ends open server streams
// (WatchBackfill, with unavailable), before a graceful shutdown: http.Server.Shutdown waits for
// active requests, and a stream would otherwise hold it until its timeout.
func (s *Server) Draining() {
	for _, name := range s.services {
		s.health.SetStatus(name, grpchealth.StatusNotServing)
	}
	s.health.SetStatus("", grpchealth.StatusNotServing)
	s.drain(errDraining)
}

// NewHTTPServer returns an http.Server for h that speaks HTTP/1.1 and HTTP/2 without TLS (h2c,
// prior knowledge), as gRPC clients and `buf curl --http2-prior-knowledge` expect.
func NewHTTPServer(h http.Handler) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// authGate admits Connect, gRPC and gRPC-Web calls with a valid credential (anonymous keys
// included) before their message is read.
func authGate(auth Authenticator, logger *slog.Logger) connect.RequestGateFunc {
	return func(ctx context.Context, spec connect.Spec, _ connect.Peer, h http.Header) (context.Context, error) {
		p, err := auth.Authenticate(ctx, h)
		if err != nil {
			status, _ := GatewayError(err)
			if status == http.StatusInternalServerError {
				logger.LogAttrs(ctx, slog.LevelError, "authenticate", slog.String("procedure", spec.Procedure), slog.Any("error", err))
				return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
			}
			return nil, connect.NewError(connect.CodeUnauthenticated, gatewayMessage(err))
		}
		return withPrincipal(ctx, p), nil
	}
}

func gatewayMessage(err error) error {
	switch {
	case errors.Is(err, ErrMissingCredential):
		return errors.New("missing authorization header")
	case errors.Is(err, ErrAnonymousDenied):
		return errors.New("anonymous access is disabled")
	}
	return errors.New("invalid JWT")
}

// rpcCORS lets browser Connect and gRPC-Web clients on other origins call the service: it
// answers preflights (a Connect handler would 405 them) and exposes the gRPC status headers.
func rpcCORS(next http.Handler) http.Handler {
	const allowHeaders = "authorization, apikey, x-client-info, content-type, connect-protocol-version, " +
		"connect-timeout-ms, grpc-timeout, x-grpc-web, x-user-agent"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "grpc-status, grpc-message, grpc-status-details-bin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", "7200")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withTimeout bounds every request's context except those of the streaming procedures, whose
// paths are in streams: a stream lives as long as its client wants it (until Draining).
func withTimeout(d time.Duration, streams map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streams[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// recoverPanics turns a panic outside the Connect handlers (which recover themselves) into a
// 500, logged once, instead of a dropped connection.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(p)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "handler panic", slog.String("path", r.URL.Path), slog.Any("panic", p))
				writeValue(w, http.StatusInternalServerError, errorBody{Error: "Internal server error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status a handler wrote, for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// instrumentFunction counts function-path requests under the function's procedure label.
func (m *metrics) instrumentFunction(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		procedure := "/functions/v1/unknown"
		if name := r.PathValue("name"); name == SyncFunctionName {
			procedure = "/functions/v1/" + name
		}
		m.requests.WithLabelValues(procedure, "function", strconv.Itoa(cmp.Or(rec.status, http.StatusOK))).Inc()
		m.duration.WithLabelValues(procedure, "function").Observe(time.Since(start).Seconds())
	})
}

// interceptor counts Connect, gRPC and gRPC-Web calls by procedure and Connect code: unary
// calls with their duration, streams (WatchBackfill) when they end, without a duration, which
// would only measure how long a client watched.
func (m *metrics) interceptor() connect.Interceptor { return rpcMetrics{m} }

type rpcMetrics struct{ m *metrics }

func (r rpcMetrics) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		proto := req.Peer().Protocol
		r.m.requests.WithLabelValues(req.Spec().Procedure, proto, codeOf(err)).Inc()
		r.m.duration.WithLabelValues(req.Spec().Procedure, proto).Observe(time.Since(start).Seconds())
		return res, err
	}
}

func (r rpcMetrics) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (r rpcMetrics) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		r.m.requests.WithLabelValues(conn.Spec().Procedure, conn.Peer().Protocol, codeOf(err)).Inc()
		return err
	}
}

func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}
