package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"
)

//go:embed sql/user_exists.sql
var userExistsSQL string

// The Supabase CLI's published local-development credentials (`supabase start`). They are public:
// anyone can mint tokens with LocalJWTSecret, so [NewJWTAuth] uses it only for a local setup and
// refuses it next to a non-local SupabaseURL.
const (
	// LocalJWTSecret is the CLI's HS256 JWT secret.
	LocalJWTSecret = "super-secret-jwt-token-with-at-least-32-characters-long"
	// LocalAnonKey is the CLI's anon key: {"iss":"supabase-demo","role":"anon","exp":1983812996}.
	LocalAnonKey = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
	// LocalServiceRoleKey is the CLI's service_role key, the same claims with role service_role.
	LocalServiceRoleKey = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU"
	// LocalIssuer is the issuer of user access tokens from the CLI's Auth server: its API URL
	// (api.external_url, default http://127.0.0.1:54321) followed by /auth/v1.
	LocalIssuer = "http://127.0.0.1:54321/auth/v1"
)

// localIssuerAlias is the issuer of CLI versions (and configs) that name the API localhost.
const localIssuerAlias = "http://localhost:54321/auth/v1"

// Postgres roles, as Supabase puts them in the role claim.
const (
	RoleAnon          = "anon"
	RoleAuthenticated = "authenticated"
	RoleServiceRole   = "service_role"
)

// Key types: which kind of credential authenticated a request. A small fixed set, fit for a
// metric label.
const (
	KeyTypeHS256       = "hs256"       // JWT signed with the legacy shared secret
	KeyTypeES256       = "es256"       // JWT signed with a P-256 key from the JWKS
	KeyTypeRS256       = "rs256"       // JWT signed with an RSA key from the JWKS
	KeyTypePublishable = "publishable" // sb_publishable_… API key
	KeyTypeSecret      = "secret"      // sb_secret_… API key
)

// Errors of [Authenticator.Authenticate]. [GatewayError] turns them into the Supabase gateway's
// answers. Errors that match none of them (a failed user lookup) are the server's fault.
var (
	// ErrMissingCredential: the request has neither an Authorization nor an apikey header.
	ErrMissingCredential = errors.New("missing authorization header")
	// ErrInvalidCredential: a credential is present but not accepted — malformed, badly signed,
	// expired, for another issuer or audience, an unknown API key, an unaccepted role. The
	// wrapped detail is for logs, never for clients.
	ErrInvalidCredential = errors.New("invalid credential")
	// ErrUnknownUser: a valid user token whose sub is not (or no longer) in auth.users.
	ErrUnknownUser = errors.New("token subject is not a user")
	// ErrAnonymousDenied: a valid anon key or publishable key while AuthConfig.DenyAnonymous is set.
	ErrAnonymousDenied = errors.New("anonymous access is disabled")
)

// errNotStarted: a JWKS URL is configured but [JWTAuth.Start] has not run, so asymmetric keys
// cannot be known. A wiring mistake, hence not a credential error.
var errNotStarted = errors.New("authenticate before the JWKS was loaded: call Start first")

// errStopped is the cause given to the JWKS refresh context by [JWTAuth.Stop].
var errStopped = errors.New("auth stopped")

// PrincipalKind says who is calling.
type PrincipalKind int

// The zero PrincipalKind is no principal at all, so a forgotten assignment never passes as
// anonymous.
const (
	_ PrincipalKind = iota
	// PrincipalAnonymous: an anon key (legacy JWT) or a publishable key. Anonymous interest is
	// recorded with user_id NULL.
	PrincipalAnonymous
	// PrincipalUser: a user access token (role authenticated) whose sub is in auth.users.
	PrincipalUser
	// PrincipalService: a service_role key (legacy JWT) or a secret key.
	PrincipalService
)

func (k PrincipalKind) String() string {
	switch k {
	case PrincipalAnonymous:
		return "anonymous"
	case PrincipalUser:
		return "user"
	case PrincipalService:
		return "service"
	}
	return fmt.Sprintf("PrincipalKind(%d)", int(k))
}

// Principal is an authenticated caller.
type Principal struct {
	Kind PrincipalKind
	// UserID is the user's auth.users id in canonical lower-case form; set only for
	// PrincipalUser.
	UserID string
	// Role is the Postgres role the caller acts as: RoleAnon, RoleAuthenticated or
	// RoleServiceRole (API keys get the role of the legacy key they replace).
	Role string
	// KeyType is one of the KeyType constants.
	KeyType string
}

// Authenticator resolves a request's credentials. Handlers depend on this, not on [JWTAuth].
type Authenticator interface {
	// Authenticate returns the caller, or an error that [GatewayError] maps to an answer.
	Authenticate(ctx context.Context, h http.Header) (Principal, error)
}

// UserLookup tells whether a user exists. [PgUserLookup] reads auth.users.
type UserLookup interface {
	// UserExists reports whether id (a canonical UUID) is in auth.users.
	UserExists(ctx context.Context, id string) (bool, error)
}

// AuthConfig configures [NewJWTAuth]. The zero value (plus Users) is the Supabase CLI's local
// setup: the public secret, its anon and service_role keys, and user tokens from its Auth server.
//
// "Local" below means SupabaseURL is empty or names a loopback host (localhost, 127.0.0.0/8,
// ::1).
type AuthConfig struct {
	// SupabaseURL is the project's API URL, e.g. https://<ref>.supabase.co. It is where the
	// defaults of JWTSecret, JWKSURL and Issuers come from. Default: empty (local development,
	// where this service itself answers on the CLI's port).
	SupabaseURL string

	// JWTSecret is the legacy HS256 secret (at least 32 bytes). It verifies HS256 tokens and
	// nothing else. Default: LocalJWTSecret when local; none otherwise, so that a production
	// setup never silently trusts the public secret (set it explicitly for a project still on
	// the legacy secret). LocalJWTSecret with a non-local SupabaseURL is an error.
	JWTSecret string

	// JWKSURL serves the public keys that verify ES256 and RS256 tokens, fetched by [JWTAuth.Start]
	// and refreshed in the background. Default: SupabaseURL + "/auth/v1/.well-known/jwks.json"
	// when SupabaseURL is set; none otherwise.
	JWKSURL string
	// JWKS is a JWK Set as JSON (e.g. the SUPABASE_JWKS of an edge runtime), used alongside
	// JWKSURL; its keys win on a kid present in both. Default: none.
	JWKS json.RawMessage
	// JWKSFile is a file holding a JWK Set, read once by NewJWTAuth. Exclusive with JWKS.
	// Default: none.
	JWKSFile string
	// JWKSRefreshInterval is how often the JWKS is fetched again. Supabase caches it for 10 min
	// at its edge. Default: 10 min.
	JWKSRefreshInterval time.Duration
	// JWKSUnknownKIDRefresh is the least time between refetches caused by a token whose kid is
	// unknown; in between such tokens are rejected at once instead of waiting. Default: 5 min.
	JWKSUnknownKIDRefresh time.Duration
	// JWKSTimeout bounds one JWKS fetch. Default: 10s.
	JWKSTimeout time.Duration
	// HTTPClient fetches the JWKS. Default: http.DefaultClient.
	HTTPClient *http.Client

	// Issuers are the accepted iss values of user tokens (role authenticated). Tokens of other
	// roles are not checked: the legacy anon/service_role keys say "supabase" or
	// "supabase-demo", which no configuration spells out. Default: SupabaseURL + "/auth/v1"
	// when SupabaseURL is set; otherwise the local CLI's issuer in both spellings,
	// LocalIssuer and http://localhost:54321/auth/v1.
	Issuers []string
	// Audience must be among a user token's aud values. Tokens of other roles are not checked:
	// the anon and service_role keys have no aud. Default: "authenticated".
	Audience string

	// PublishableKeys are the accepted sb_publishable_… keys; each authenticates as anonymous.
	// Compared in constant time. Default: none.
	PublishableKeys []string
	// SecretKeys are the accepted sb_secret_… keys; each authenticates as the service.
	// Compared in constant time. Default: none.
	SecretKeys []string

	// DenyAnonymous rejects anon keys and publishable keys with ErrAnonymousDenied (401).
	// Default: false — anonymous callers are allowed, as the app sends the anon key.
	DenyAnonymous bool

	// Leeway is the clock skew tolerated on exp and nbf. At most 5 min. Default: 30s.
	Leeway time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	// Users tells whether a user token's sub exists. Required; see [PgUserLookup].
	Users UserLookup
	// Sessions, when set, is asked about every user token after the other checks (see
	// [SupabaseSessions]): a revoked session is an invalid credential, an unanswerable check
	// fails the request (500) rather than letting it through. Default: none (off).
	Sessions SessionChecker
	// Logger receives JWKS fetch failures. Default: discard.
	Logger *slog.Logger
}

func (c AuthConfig) withDefaults() AuthConfig {
	c.SupabaseURL = strings.TrimRight(c.SupabaseURL, "/")
	local := isLocal(c.SupabaseURL)
	if c.JWTSecret == "" && local {
		c.JWTSecret = LocalJWTSecret
	}
	if c.JWKSURL == "" && c.SupabaseURL != "" {
		c.JWKSURL = c.SupabaseURL + "/auth/v1/.well-known/jwks.json"
	}
	if c.JWKSRefreshInterval == 0 {
		c.JWKSRefreshInterval = 10 * time.Minute
	}
	if c.JWKSUnknownKIDRefresh == 0 {
		c.JWKSUnknownKIDRefresh = 5 * time.Minute
	}
	if c.JWKSTimeout == 0 {
		c.JWKSTimeout = 10 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Issuers == nil {
		if c.SupabaseURL != "" {
			c.Issuers = []string{c.SupabaseURL + "/auth/v1"}
		} else {
			c.Issuers = []string{LocalIssuer, localIssuerAlias}
		}
	}
	if c.Audience == "" {
		c.Audience = RoleAuthenticated
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c AuthConfig) validate() error {
	if c.Users == nil {
		return errors.New("auth config: Users is required")
	}
	if c.SupabaseURL != "" {
		if err := checkHTTPURL(c.SupabaseURL); err != nil {
			return fmt.Errorf("auth config: supabase url: %w", err)
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		return errors.New("auth config: jwt secret must be at least 32 bytes")
	}
	if c.JWTSecret == LocalJWTSecret && !isLocal(c.SupabaseURL) {
		return fmt.Errorf("auth config: the public local-development jwt secret cannot protect %s", c.SupabaseURL)
	}
	if c.JWKSURL != "" {
		if err := checkHTTPURL(c.JWKSURL); err != nil {
			return fmt.Errorf("auth config: jwks url: %w", err)
		}
	}
	if len(c.JWKS) > 0 && c.JWKSFile != "" {
		return errors.New("auth config: set JWKS or JWKSFile, not both")
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"jwks refresh interval", c.JWKSRefreshInterval},
		{"jwks unknown-kid refresh", c.JWKSUnknownKIDRefresh},
		{"jwks timeout", c.JWKSTimeout},
	} {
		if d.d < 0 {
			return fmt.Errorf("auth config: %s must be positive, got %s", d.name, d.d)
		}
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		return fmt.Errorf("auth config: leeway must be between 0 and 5m, got %s", c.Leeway)
	}
	if len(c.Issuers) == 0 || slices.Contains(c.Issuers, "") {
		return errors.New("auth config: issuers must be non-empty strings")
	}
	for _, k := range c.PublishableKeys {
		if !strings.HasPrefix(k, "sb_publishable_") || len(k) == len("sb_publishable_") {
			return errors.New("auth config: a publishable key must look like sb_publishable_…")
		}
	}
	for _, k := range c.SecretKeys {
		if !strings.HasPrefix(k, "sb_secret_") || len(k) == len("sb_secret_") {
			return errors.New("auth config: a secret key must look like sb_secret_…")
		}
	}
	return nil
}

// isLocal reports whether supabaseURL is empty or points at this machine.
func isLocal(supabaseURL string) bool {
	if supabaseURL == "" {
		return true
	}
	u, err := url.Parse(supabaseURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// JWTAuth authenticates Supabase credentials: legacy HS256 JWTs, ES256/RS256 JWTs from a JWKS,
// and sb_publishable_/sb_secret_ API keys.
//
// Each algorithm is pinned to its key source: HS256 verifies only with the shared secret, ES256
// and RS256 only with a JWKS key found by the token's kid and of the matching type. "none" and
// every other algorithm are refused. A JWKSURL needs [JWTAuth.Start] (and [JWTAuth.Stop]) for
// its background refresh; without one, Start and Stop do nothing.
type JWTAuth struct {
	secret        []byte
	methods       []string
	static        keyfunc.Keyfunc // JWKS / JWKSFile keys; nil if none
	jwksURL       string
	refresh       time.Duration
	unknownKID    time.Duration
	jwksTimeout   time.Duration
	httpClient    *http.Client
	issuers       []string
	audience      string
	publishable   [][sha256.Size]byte
	secretKeys    [][sha256.Size]byte
	denyAnonymous bool
	users         UserLookup
	sessions      SessionChecker
	logger        *slog.Logger
	parser        *jwt.Parser

	keys    atomic.Pointer[keySource] // asymmetric keys; set by New (static only) or Start
	started atomic.Bool               // Start has loaded JWKSURL

	mu     sync.Mutex
	cancel context.CancelCauseFunc // of the JWKS refresh; nil before Start
}

type keySource struct{ kf keyfunc.Keyfunc }

var _ Authenticator = (*JWTAuth)(nil)

// NewJWTAuth returns a JWTAuth for cfg. It reads JWKSFile but fetches nothing: Start does.
func NewJWTAuth(cfg AuthConfig) (*JWTAuth, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &JWTAuth{
		jwksURL:       cfg.JWKSURL,
		refresh:       cfg.JWKSRefreshInterval,
		unknownKID:    cfg.JWKSUnknownKIDRefresh,
		jwksTimeout:   cfg.JWKSTimeout,
		httpClient:    cfg.HTTPClient,
		issuers:       slices.Clone(cfg.Issuers),
		audience:      cfg.Audience,
		denyAnonymous: cfg.DenyAnonymous,
		users:         cfg.Users,
		sessions:      cfg.Sessions,
		logger:        cfg.Logger,
	}
	if cfg.JWTSecret != "" {
		a.secret = []byte(cfg.JWTSecret)
		a.methods = append(a.methods, jwt.SigningMethodHS256.Alg())
	}
	raw := cfg.JWKS
	if cfg.JWKSFile != "" {
		b, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("read jwks file: %w", err)
		}
		raw = b
	}
	if len(raw) > 0 {
		kf, err := keyfunc.NewJWKSetJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("load jwks: %w", err)
		}
		a.static = kf
		a.keys.Store(&keySource{kf: kf})
	}
	if a.static != nil || a.jwksURL != "" {
		a.methods = append(a.methods, jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg())
	}
	seen := map[[sha256.Size]byte]bool{}
	for _, k := range cfg.PublishableKeys {
		h := sha256.Sum256([]byte(k))
		seen[h] = true
		a.publishable = append(a.publishable, h)
	}
	for _, k := range cfg.SecretKeys {
		h := sha256.Sum256([]byte(k))
		if seen[h] {
			return nil, errors.New("auth config: a key is both publishable and secret")
		}
		a.secretKeys = append(a.secretKeys, h)
	}
	if len(a.methods) == 0 && len(a.publishable)+len(a.secretKeys) == 0 {
		return nil, errors.New("auth config: no credential would ever verify: set a JWT secret, a JWKS or API keys")
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods(a.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	return a, nil
}

// Start loads the JWKS from JWKSURL and keeps refreshing it until Stop or until ctx ends. An
// unreachable JWKS does not fail Start — anon keys and HS256 tokens still work, and the fetch is
// retried on the refresh interval and on unknown kids — it is logged. Without a JWKSURL Start
// does nothing.
func (a *JWTAuth) Start(ctx context.Context) error {
	if a.jwksURL == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		return errors.New("start auth: already started")
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	var given jwkset.Storage
	if a.static != nil {
		given = a.static.Storage()
	}
	noFirstErr := true
	kf, err := keyfunc.NewDefaultOverrideCtx(runCtx, []string{a.jwksURL}, keyfunc.Override{
		Client:                    a.httpClient,
		Given:                     given,
		HTTPTimeout:               a.jwksTimeout,
		NoErrorReturnFirstHTTPReq: &noFirstErr,
		// The limiter would otherwise hold a request up to a minute for a refetch; a wait
		// shorter than the limiter's period makes it fail at once instead.
		RateLimitWaitMax:        a.jwksTimeout,
		RefreshErrorHandlerFunc: a.refreshErrorHandler,
		RefreshInterval:         a.refresh,
		RefreshUnknownKID:       rate.NewLimiter(rate.Every(a.unknownKID), 1),
	})
	if err != nil {
		cancel(err)
		return fmt.Errorf("start auth: load jwks from %s: %w", a.jwksURL, err)
	}
	a.cancel = cancel
	a.keys.Store(&keySource{kf: kf})
	a.started.Store(true)
	return nil
}

func (a *JWTAuth) refreshErrorHandler(u string) func(context.Context, error) {
	return func(ctx context.Context, err error) {
		a.logger.WarnContext(ctx, "fetch jwks failed", "jwks_url", u, "error", err)
	}
}

// Stop ends the JWKS refresh. It is idempotent. Keys already loaded stay in use.
func (a *JWTAuth) Stop(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		a.cancel(errStopped)
	}
	return nil
}

// maxTokenBytes bounds the work an oversized bearer can cause; real tokens are well under 4 KiB.
const maxTokenBytes = 16 << 10

// Authenticate implements [Authenticator].
//
// The credential is the Authorization bearer if there is one (supabase-js sends the session JWT
// there and the anon key in apikey; the gateway checks only Authorization), else the apikey
// header. Either may hold a JWT or an sb_ API key: the app sends its configured key as a bearer,
// whatever its format.
func (a *JWTAuth) Authenticate(ctx context.Context, h http.Header) (Principal, error) {
	cred, err := credential(h)
	if err != nil {
		return Principal{}, err
	}
	if strings.HasPrefix(cred, "sb_") {
		return a.apiKey(cred)
	}
	return a.token(ctx, cred)
}

func credential(h http.Header) (string, error) {
	if vs := h.Values("Authorization"); len(vs) > 0 {
		if len(vs) > 1 {
			return "", invalidf("%d Authorization headers", len(vs))
		}
		if v := strings.TrimSpace(vs[0]); v != "" {
			scheme, tok, _ := strings.Cut(v, " ")
			if !strings.EqualFold(scheme, "Bearer") {
				return "", invalidf("authorization header is not 'Bearer {token}'")
			}
			if tok = strings.TrimSpace(tok); tok == "" {
				return "", invalidf("empty bearer token")
			}
			return tok, nil
		}
	}
	if vs := h.Values("Apikey"); len(vs) > 0 {
		if len(vs) > 1 {
			return "", invalidf("%d apikey headers", len(vs))
		}
		if v := strings.TrimSpace(vs[0]); v != "" {
			return v, nil
		}
	}
	return "", ErrMissingCredential
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalidCredential, fmt.Errorf(format, args...))
}

func (a *JWTAuth) apiKey(key string) (Principal, error) {
	// Digests have one length, so the comparison leaks neither content nor length, and every
	// configured key is compared whatever matches.
	sum := sha256.Sum256([]byte(key))
	isPublishable, isSecret := 0, 0
	for _, k := range a.publishable {
		isPublishable |= subtle.ConstantTimeCompare(k[:], sum[:])
	}
	for _, k := range a.secretKeys {
		isSecret |= subtle.ConstantTimeCompare(k[:], sum[:])
	}
	switch {
	case isSecret == 1:
		return Principal{Kind: PrincipalService, Role: RoleServiceRole, KeyType: KeyTypeSecret}, nil
	case isPublishable == 1:
		return a.anonymous(KeyTypePublishable)
	}
	return Principal{}, invalidf("unknown API key")
}

func (a *JWTAuth) anonymous(keyType string) (Principal, error) {
	if a.denyAnonymous {
		return Principal{}, ErrAnonymousDenied
	}
	return Principal{Kind: PrincipalAnonymous, Role: RoleAnon, KeyType: keyType}, nil
}

// claims are the parts of a Supabase JWT we read. Audience is a list: Supabase writes a string
// or an array.
type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

func (a *JWTAuth) token(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > maxTokenBytes {
		return Principal{}, invalidf("token of %d bytes", len(raw))
	}
	if a.jwksURL != "" && !a.started.Load() {
		return Principal{}, errNotStarted
	}
	var c claims
	tok, err := a.parser.ParseWithClaims(raw, &c, a.keyFor(ctx))
	if err != nil {
		return Principal{}, invalidf("verify token: %w", err)
	}
	keyType := strings.ToLower(tok.Method.Alg())
	switch c.Role {
	case RoleAnon:
		return a.anonymous(keyType)
	case RoleServiceRole:
		return Principal{Kind: PrincipalService, Role: RoleServiceRole, KeyType: keyType}, nil
	case RoleAuthenticated:
		return a.user(ctx, &c, keyType, raw)
	}
	return Principal{}, invalidf("role %q is not accepted", c.Role)
}

// user applies the checks that only user tokens get: issuer, audience and a subject that is a
// user.
func (a *JWTAuth) user(ctx context.Context, c *claims, keyType, raw string) (Principal, error) {
	if !slices.Contains(a.issuers, c.Issuer) {
		return Principal{}, invalidf("issuer %q is not accepted", c.Issuer)
	}
	if !slices.Contains(c.Audience, a.audience) {
		return Principal{}, invalidf("audience %q does not include %q", []string(c.Audience), a.audience)
	}
	if c.Subject == "" {
		return Principal{}, invalidf("user token without sub")
	}
	id, ok := canonicalUUID(c.Subject)
	if !ok {
		return Principal{}, invalidf("sub %q is not a UUID", c.Subject)
	}
	exists, err := a.users.UserExists(ctx, id)
	if err != nil {
		return Principal{}, fmt.Errorf("look up user %s: %w", id, err)
	}
	if !exists {
		return Principal{}, fmt.Errorf("user %s: %w", id, ErrUnknownUser)
	}
	if a.sessions != nil {
		// For deployments that must reject revoked sessions before their tokens expire.
		if err := a.sessions.CheckSession(ctx, raw); err != nil {
			if errors.Is(err, ErrSessionRevoked) {
				return Principal{}, invalidf("user %s: %w", id, err)
			}
			return Principal{}, fmt.Errorf("check session of user %s: %w", id, err)
		}
	}
	return Principal{Kind: PrincipalUser, UserID: id, Role: RoleAuthenticated, KeyType: keyType}, nil
}

// keyFor pins each algorithm to its key source. The parser has already refused algorithms
// outside a.methods (including "none"), so an HS256 token never reaches the JWKS and an
// ES256/RS256 token never gets the shared secret.
func (a *JWTAuth) keyFor(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		switch alg {
		case jwt.SigningMethodHS256.Alg():
			if a.secret == nil {
				return nil, errors.New("no JWT secret configured")
			}
			return a.secret, nil
		case jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg():
			kid, _ := t.Header["kid"].(string)
			if kid == "" {
				// Supabase always names the key; trying every key would only widen the attack surface.
				return nil, errors.New("token without kid")
			}
			src := a.keys.Load()
			if src == nil {
				return nil, errors.New("no JWKS configured")
			}
			key, err := src.kf.KeyfuncCtx(ctx)(t)
			if err != nil {
				return nil, fmt.Errorf("find key %q: %w", kid, err)
			}
			if err := checkKeyType(alg, key); err != nil {
				return nil, fmt.Errorf("key %q: %w", kid, err)
			}
			return key, nil
		}
		return nil, fmt.Errorf("algorithm %q is not accepted", alg)
	}
}

// checkKeyType makes sure a JWKS key suits the token's algorithm, whatever the JWK's own alg
// says (it may have none).
func checkKeyType(alg string, key any) error {
	switch alg {
	case jwt.SigningMethodES256.Alg():
		if k, ok := key.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
			return nil
		}
		return errors.New("ES256 needs a P-256 public key")
	case jwt.SigningMethodRS256.Alg():
		if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() >= 2048 {
			return nil
		}
		return errors.New("RS256 needs an RSA public key of at least 2048 bits")
	}
	return fmt.Errorf("algorithm %q is not accepted", alg)
}

// canonicalUUID returns s in lower case if it is a UUID in the 8-4-4-4-12 hex form, the only
// form Supabase writes in sub.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// gatewayBody is the Supabase gateway's error body.
type gatewayBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// GatewayError maps an error of [Authenticator.Authenticate] to the status and JSON body the
// Supabase gateway answers with when verify_jwt fails:
//
//   - ErrMissingCredential → 401 {"code":401,"message":"Missing authorization header"}
//   - ErrInvalidCredential, ErrUnknownUser → 401 {"code":401,"message":"Invalid JWT"}
//     (a token for a deleted user is as good as invalid, and the answer does not tell
//     whether a user exists)
//   - ErrAnonymousDenied → 401 {"code":401,"message":"Anonymous access is disabled"} (the
//     gateway has no such case: the key is valid, this deployment refuses it)
//   - anything else (a failed user lookup) → 500 {"code":500,"message":"Internal server error"}
//
// The messages are fixed and safe to show; the error's detail belongs in the log.
func GatewayError(err error) (status int, body []byte) {
	b := gatewayBody{Code: http.StatusUnauthorized}
	switch {
	case errors.Is(err, ErrMissingCredential):
		b.Message = "Missing authorization header"
	case errors.Is(err, ErrInvalidCredential), errors.Is(err, ErrUnknownUser):
		b.Message = "Invalid JWT"
	case errors.Is(err, ErrAnonymousDenied):
		b.Message = "Anonymous access is disabled"
	default:
		b = gatewayBody{Code: http.StatusInternalServerError, Message: "Internal server error"}
	}
	body, _ = json.Marshal(b) // cannot fail for this type
	return b.Code, body
}

// SignHS256 signs claims with secret as an HS256 JWT — for development and tests (the
// `backfill token` command); see [TokenClaims].
func SignHS256(secret string, claims map[string]any) (string, error) {
	if secret == "" {
		return "", errors.New("sign token: empty secret")
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// TokenClaims returns the claims of a development token for role, valid from now for ttl:
// for RoleAuthenticated those of a Supabase Auth access token for userID (a UUID) from issuer;
// for RoleAnon and RoleServiceRole those of the legacy API keys (iss "supabase-demo", no sub, no
// aud).
func TokenClaims(role, userID, issuer string, now time.Time, ttl time.Duration) (map[string]any, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("token claims: ttl must be positive, got %s", ttl)
	}
	c := map[string]any{
		"role": role,
		"iat":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
	}
	switch role {
	case RoleAnon, RoleServiceRole:
		if userID != "" {
			return nil, fmt.Errorf("token claims: role %s has no user", role)
		}
		c["iss"] = "supabase-demo"
	case RoleAuthenticated:
		id, ok := canonicalUUID(userID)
		if !ok {
			return nil, fmt.Errorf("token claims: user %q is not a UUID", userID)
		}
		if issuer == "" {
			return nil, errors.New("token claims: empty issuer")
		}
		c["iss"] = issuer
		c["sub"] = id
		c["aud"] = RoleAuthenticated
		c["aal"] = "aal1"
		c["is_anonymous"] = false
	default:
		return nil, fmt.Errorf("token claims: unknown role %q", role)
	}
	return c, nil
}

// Querier is the part of pgx a single-row query needs. *pgxpool.Pool, *pgx.Conn and pgx.Tx all
// have it, so the lookup can run in a caller's transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PgUserLookup is a [UserLookup] on auth.users.
type PgUserLookup struct {
	db Querier
}

var _ UserLookup = (*PgUserLookup)(nil)

// NewPgUserLookup returns a PgUserLookup querying db.
func NewPgUserLookup(db Querier) *PgUserLookup { return &PgUserLookup{db: db} }

// UserExists implements [UserLookup].
func (l *PgUserLookup) UserExists(ctx context.Context, id string) (bool, error) {
	var exists bool
	if err := l.db.QueryRow(ctx, userExistsSQL, id).Scan(&exists); err != nil {
		return false, fmt.Errorf("query auth.users: %w", err)
	}
	return exists, nil
}
