package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// authNow is the tests' clock: before the local keys expire (1983812996 is in 2032).
var authNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const (
	existingUser = "6f1f2c1e-3b0a-4c55-9a39-2f8f0f7b6a11"
	missingUser  = "0b7f8f7e-9c1d-4a2b-8e3f-5d6c7b8a9f00"
	publishable  = "sb_publishable_Zx9Q2mW4nR7tY1uI3oP5aS_8dF6gH0j"
	secretKey    = "sb_secret_Kq3Lp9Vw2Xe7Rt5Yu1Io8Pa4Sd6Fg0Hj"
	ecKID        = "ec-key-1"
	rsaKID       = "rsa-key-1"
)

// fakeUsers is a UserLookup over a fixed set.
type fakeUsers struct {
	ids map[string]bool
	err error
}

func (f fakeUsers) UserExists(_ context.Context, id string) (bool, error) {
	return f.ids[id], f.err
}

// signingKeys are generated once per test binary: RSA generation is slow under -race.
type signingKeys struct {
	ec, otherEC   *ecdsa.PrivateKey
	rsa, otherRSA *rsa.PrivateKey
}

var testKeys = sync.OnceValue(func() signingKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k signingKeys
	var err error
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.otherEC, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	return k
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(t *testing.T, kid string, k *ecdsa.PublicKey) map[string]any {
	t.Helper()
	pt, err := k.Bytes() // 0x04 || X || Y
	require.NoError(t, err)
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": b64(pt[1:33]), "y": b64(pt[33:])}
}

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func jwksJSON(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	return b
}

// jwksServer serves a JWK Set that the test can replace, and counts fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.body.Store(&body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/auth/v1/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) jwksURL() string { return s.URL + "/auth/v1/.well-known/jwks.json" }

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// userClaims are those of a Supabase Auth access token for existingUser from the local CLI.
func userClaims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": server.LocalIssuer, "sub": existingUser, "aud": "authenticated",
		"role": "authenticated", "exp": authNow.Add(time.Hour).Unix(), "iat": authNow.Unix(),
		"session_id": "9d6b3f0e-1111-4222-8333-444455556666", "aal": "aal1", "email": "a@example.com",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func hs(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(server.LocalJWTSecret), "", c)
}

func bearer(tok string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return h
}

func apikey(key string) http.Header {
	h := http.Header{}
	h.Set("apikey", key)
	return h
}

func pemPublic(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// withPayload replaces a token's payload and keeps its header and signature.
func withPayload(t *testing.T, tok string, c jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	p, err := json.Marshal(c)
	require.NoError(t, err)
	return parts[0] + "." + b64(p) + "." + parts[2]
}

func unsignedToken(t *testing.T, alg string, c jwt.MapClaims) string {
	t.Helper()
	h, err := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
	require.NoError(t, err)
	p, err := json.Marshal(c)
	require.NoError(t, err)
	return b64(h) + "." + b64(p) + "."
}

// newAuth builds a started JWTAuth with the local defaults, the test clock, users holding
// existingUser, the test API keys and the JWKS of srv; mod adjusts the config first.
func newAuth(t *testing.T, srv *jwksServer, mod func(*server.AuthConfig)) *server.JWTAuth {
	t.Helper()
	cfg := server.AuthConfig{
		JWKSURL:         srv.jwksURL(),
		HTTPClient:      srv.Client(),
		PublishableKeys: []string{publishable},
		SecretKeys:      []string{secretKey},
		Now:             func() time.Time { return authNow },
		Users:           fakeUsers{ids: map[string]bool{existingUser: true}},
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := server.NewJWTAuth(cfg)
	require.NoError(t, err)
	require.NoError(t, a.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	return a
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	srv := newJWKSServer(t, jwksJSON(t, ecJWK(t, ecKID, &keys.ec.PublicKey), rsaJWK(rsaKID, &keys.rsa.PublicKey)))

	user := server.Principal{Kind: server.PrincipalUser, UserID: existingUser, Role: "authenticated", KeyType: "hs256"}
	anon := server.Principal{Kind: server.PrincipalAnonymous, Role: "anon", KeyType: "hs256"}
	service := server.Principal{Kind: server.PrincipalService, Role: "service_role", KeyType: "hs256"}
	with := func(p server.Principal, keyType string) server.Principal { p.KeyType = keyType; return p }
	denyAnonymous := func(c *server.AuthConfig) { c.DenyAnonymous = true }
	// A hosted project on asymmetric keys only: no shared secret at all.
	jwksOnly := func(c *server.AuthConfig) {
		c.SupabaseURL = "https://abcdefghijklmnop.supabase.co"
		c.Issuers = []string{server.LocalIssuer}
	}
	rsaPEM := pemPublic(t, &keys.rsa.PublicKey)
	ecPEM := pemPublic(t, &keys.ec.PublicKey)
	rsaDER, err := x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
	require.NoError(t, err)
	validUser := hs(t, userClaims(nil))
	validES := sign(t, jwt.SigningMethodES256, keys.ec, ecKID, userClaims(nil))

	for _, tc := range []struct {
		name    string
		cfg     func(*server.AuthConfig)
		header  http.Header
		want    server.Principal
		wantErr error
	}{
		// Accepted.
		{name: "local anon key as bearer", header: bearer(server.LocalAnonKey), want: anon},
		{name: "local anon key in apikey only", header: apikey(server.LocalAnonKey), want: anon},
		{name: "local service_role key", header: bearer(server.LocalServiceRoleKey), want: service},
		{name: "HS256 user token", header: bearer(validUser), want: user},
		{name: "lower-case bearer scheme", header: http.Header{"Authorization": {"bearer " + validUser}}, want: user},
		{name: "user token, localhost issuer", header: bearer(hs(t, userClaims(setClaim("iss", "http://localhost:54321/auth/v1")))), want: user},
		{name: "user token, aud array", header: bearer(hs(t, userClaims(setClaim("aud", []string{"other", "authenticated"})))), want: user},
		{name: "user token, upper-case sub", header: bearer(hs(t, userClaims(setClaim("sub", strings.ToUpper(existingUser))))), want: user},
		{name: "user bearer wins over anon apikey", header: func() http.Header {
			h := bearer(validUser)
			h.Set("apikey", server.LocalAnonKey)
			return h
		}(), want: user},
		{name: "ES256 user token from JWKS", header: bearer(validES), want: with(user, "es256")},
		{name: "RS256 user token from JWKS", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, rsaKID, userClaims(nil))), want: with(user, "rs256")},
		{name: "ES256 service_role token", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, ecKID, jwt.MapClaims{"role": "service_role", "exp": authNow.Add(time.Hour).Unix()})), want: with(service, "es256")},
		{name: "ES256 user token, JWKS only", cfg: jwksOnly, header: bearer(validES), want: with(user, "es256")},
		{name: "publishable key in apikey", header: apikey(publishable), want: with(anon, "publishable")},
		{name: "publishable key as bearer (the app)", header: bearer(publishable), want: with(anon, "publishable")},
		{name: "secret key in apikey", header: apikey(secretKey), want: with(service, "secret")},
		{name: "expired within leeway", header: bearer(hs(t, userClaims(setClaim("exp", authNow.Add(-10*time.Second).Unix())))), want: user},
		{name: "not yet valid within leeway", header: bearer(hs(t, userClaims(setClaim("nbf", authNow.Add(10*time.Second).Unix())))), want: user},
		{name: "service key with anonymous denied", cfg: denyAnonymous, header: bearer(server.LocalServiceRoleKey), want: service},
		{name: "user with anonymous denied", cfg: denyAnonymous, header: bearer(validUser), want: user},

		// No credential.
		{name: "no headers", header: http.Header{}, wantErr: server.ErrMissingCredential},
		{name: "empty headers", header: http.Header{"Authorization": {" "}, "Apikey": {""}}, wantErr: server.ErrMissingCredential},

		// Attacks and mistakes.
		{name: "alg none", header: bearer(unsignedToken(t, "none", userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "alg none service_role", header: bearer(unsignedToken(t, "none", jwt.MapClaims{"role": "service_role", "exp": authNow.Add(time.Hour).Unix()})), wantErr: server.ErrInvalidCredential},
		{name: "alg None", header: bearer(unsignedToken(t, "None", userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "HS256 signed with RSA public key PEM", header: bearer(sign(t, jwt.SigningMethodHS256, rsaPEM, rsaKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "HS256 signed with RSA public key DER", header: bearer(sign(t, jwt.SigningMethodHS256, rsaDER, rsaKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "HS256 signed with EC public key PEM", header: bearer(sign(t, jwt.SigningMethodHS256, ecPEM, ecKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "HS256 signed with RSA PEM, JWKS only", cfg: jwksOnly, header: bearer(sign(t, jwt.SigningMethodHS256, rsaPEM, rsaKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "local anon key, JWKS only", cfg: jwksOnly, header: bearer(server.LocalAnonKey), wantErr: server.ErrInvalidCredential},
		{name: "HS384 with the secret", header: bearer(sign(t, jwt.SigningMethodHS384, []byte(server.LocalJWTSecret), "", userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "HS256 with another secret", header: bearer(sign(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-at-least-32-characters"), "", jwt.MapClaims{"role": "service_role", "exp": authNow.Add(time.Hour).Unix()})), wantErr: server.ErrInvalidCredential},
		{name: "expired", header: bearer(hs(t, userClaims(setClaim("exp", authNow.Add(-time.Minute).Unix())))), wantErr: server.ErrInvalidCredential},
		{name: "expired ES256", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, ecKID, userClaims(setClaim("exp", authNow.Add(-time.Minute).Unix())))), wantErr: server.ErrInvalidCredential},
		{name: "no exp", header: bearer(hs(t, userClaims(delClaim("exp")))), wantErr: server.ErrInvalidCredential},
		{name: "not yet valid", header: bearer(hs(t, userClaims(setClaim("nbf", authNow.Add(time.Minute).Unix())))), wantErr: server.ErrInvalidCredential},
		{name: "wrong issuer", header: bearer(hs(t, userClaims(setClaim("iss", "https://evil.example/auth/v1")))), wantErr: server.ErrInvalidCredential},
		{name: "no issuer", header: bearer(hs(t, userClaims(delClaim("iss")))), wantErr: server.ErrInvalidCredential},
		{name: "hosted issuer on local config", header: bearer(hs(t, userClaims(setClaim("iss", "https://abcdefghijklmnop.supabase.co/auth/v1")))), wantErr: server.ErrInvalidCredential},
		{name: "wrong audience", header: bearer(hs(t, userClaims(setClaim("aud", "anon")))), wantErr: server.ErrInvalidCredential},
		{name: "no audience", header: bearer(hs(t, userClaims(delClaim("aud")))), wantErr: server.ErrInvalidCredential},
		{name: "tampered payload: other user", header: bearer(withPayload(t, validUser, userClaims(setClaim("sub", missingUser)))), wantErr: server.ErrInvalidCredential},
		{name: "tampered payload: service_role", header: bearer(withPayload(t, validUser, jwt.MapClaims{"role": "service_role", "exp": authNow.Add(time.Hour).Unix()})), wantErr: server.ErrInvalidCredential},
		{name: "tampered ES256 payload", header: bearer(withPayload(t, validES, userClaims(setClaim("exp", authNow.Add(24*time.Hour).Unix())))), wantErr: server.ErrInvalidCredential},
		{name: "missing sub", header: bearer(hs(t, userClaims(delClaim("sub")))), wantErr: server.ErrInvalidCredential},
		{name: "sub not a UUID", header: bearer(hs(t, userClaims(setClaim("sub", "admin")))), wantErr: server.ErrInvalidCredential},
		{name: "sub UUID without hyphens", header: bearer(hs(t, userClaims(setClaim("sub", strings.ReplaceAll(existingUser, "-", ""))))), wantErr: server.ErrInvalidCredential},
		{name: "sub not in auth.users", header: bearer(hs(t, userClaims(setClaim("sub", missingUser)))), wantErr: server.ErrUnknownUser},
		{name: "no role", header: bearer(hs(t, userClaims(delClaim("role")))), wantErr: server.ErrInvalidCredential},
		{name: "other role", header: bearer(hs(t, userClaims(setClaim("role", "supabase_admin")))), wantErr: server.ErrInvalidCredential},
		{name: "garbage bearer", header: bearer("not-a-jwt"), wantErr: server.ErrInvalidCredential},
		{name: "garbage three parts", header: bearer("a.b.c"), wantErr: server.ErrInvalidCredential},
		{name: "garbage apikey", header: apikey("hunter2"), wantErr: server.ErrInvalidCredential},
		{name: "oversized bearer", header: bearer(strings.Repeat("a", 20<<10)), wantErr: server.ErrInvalidCredential},
		{name: "basic scheme", header: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, wantErr: server.ErrInvalidCredential},
		{name: "bare token without scheme", header: http.Header{"Authorization": {validUser}}, wantErr: server.ErrInvalidCredential},
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}, wantErr: server.ErrInvalidCredential},
		{name: "two Authorization headers", header: http.Header{"Authorization": {"Bearer " + validUser, "Bearer " + server.LocalServiceRoleKey}}, wantErr: server.ErrInvalidCredential},
		{name: "invalid bearer, valid apikey", header: func() http.Header {
			h := bearer("garbage")
			h.Set("apikey", secretKey)
			return h
		}(), wantErr: server.ErrInvalidCredential},
		{name: "unknown publishable key", header: apikey("sb_publishable_unknown"), wantErr: server.ErrInvalidCredential},
		{name: "unknown secret key", header: apikey(secretKey + "x"), wantErr: server.ErrInvalidCredential},
		{name: "unknown sb_ key as bearer", header: bearer("sb_secret_" + strings.Repeat("0", 32)), wantErr: server.ErrInvalidCredential},
		{name: "sb_ key of no kind", header: apikey("sb_admin_xyz"), wantErr: server.ErrInvalidCredential},
		{name: "unknown kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.otherEC, "ec-key-unknown", userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "ES256 without kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, "", userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "ES256 signed by another key, our kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.otherEC, ecKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "RS256 signed by another key, our kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.otherRSA, rsaKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "ES256 naming the RSA kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, rsaKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "RS256 naming the EC kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, ecKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "PS256 with the RSA key", header: bearer(sign(t, jwt.SigningMethodPS256, keys.rsa, rsaKID, userClaims(nil))), wantErr: server.ErrInvalidCredential},
		{name: "anon key with anonymous denied", cfg: denyAnonymous, header: bearer(server.LocalAnonKey), wantErr: server.ErrAnonymousDenied},
		{name: "publishable key with anonymous denied", cfg: denyAnonymous, header: apikey(publishable), wantErr: server.ErrAnonymousDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAuth(t, srv, tc.cfg)
			got, err := a.Authenticate(t.Context(), tc.header)
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
			require.Zero(t, got)
			status, _ := server.GatewayError(err)
			require.Equal(t, http.StatusUnauthorized, status)
		})
	}
}

func TestAuthenticateUserLookupFails(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksJSON(t))
	a := newAuth(t, srv, func(c *server.AuthConfig) {
		c.Users = fakeUsers{err: errors.New("connection refused")}
	})
	_, err := a.Authenticate(t.Context(), bearer(hs(t, userClaims(nil))))
	require.ErrorContains(t, err, "connection refused")
	for _, sentinel := range []error{server.ErrInvalidCredential, server.ErrUnknownUser, server.ErrMissingCredential} {
		require.NotErrorIs(t, err, sentinel)
	}
	status, body := server.GatewayError(err)
	require.Equal(t, http.StatusInternalServerError, status)
	require.JSONEq(t, `{"code":500,"message":"Internal server error"}`, string(body))
}

func TestGatewayError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err        error
		wantStatus int
		wantBody   string
	}{
		{server.ErrMissingCredential, 401, `{"code":401,"message":"Missing authorization header"}`},
		{fmt.Errorf("%w: token is expired", server.ErrInvalidCredential), 401, `{"code":401,"message":"Invalid JWT"}`},
		{fmt.Errorf("user x: %w", server.ErrUnknownUser), 401, `{"code":401,"message":"Invalid JWT"}`},
		{server.ErrAnonymousDenied, 401, `{"code":401,"message":"Anonymous access is disabled"}`},
		{errors.New("db down"), 500, `{"code":500,"message":"Internal server error"}`},
	} {
		status, body := server.GatewayError(tc.err)
		require.Equal(t, tc.wantStatus, status, tc.err)
		require.JSONEq(t, tc.wantBody, string(body), tc.err)
	}
}

// The JWKS is refetched when a token names a kid it does not know yet (a rotation), at most
// once per JWKSUnknownKIDRefresh; in between, unknown kids fail at once.
func TestAuthJWKSRotation(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	srv := newJWKSServer(t, jwksJSON(t, ecJWK(t, ecKID, &keys.ec.PublicKey)))
	a := newAuth(t, srv, nil)
	require.EqualValues(t, 1, srv.fetches.Load())

	rotated := sign(t, jwt.SigningMethodES256, keys.otherEC, "ec-key-2", userClaims(nil))
	rotated2 := sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-key-2", userClaims(nil))
	srv.body.Store(new(jwksJSON(t, ecJWK(t, ecKID, &keys.ec.PublicKey), ecJWK(t, "ec-key-2", &keys.otherEC.PublicKey),
		rsaJWK("rsa-key-2", &keys.rsa.PublicKey))))

	p, err := a.Authenticate(t.Context(), bearer(rotated))
	require.NoError(t, err)
	require.Equal(t, "es256", p.KeyType)
	require.EqualValues(t, 2, srv.fetches.Load())
	// Loaded by the same refetch.
	_, err = a.Authenticate(t.Context(), bearer(rotated2))
	require.NoError(t, err)

	// An unknown kid now finds the limiter spent: rejected without waiting or fetching.
	start := time.Now()
	_, err = a.Authenticate(t.Context(), bearer(sign(t, jwt.SigningMethodES256, keys.otherEC, "ec-key-3", userClaims(nil))))
	require.ErrorIs(t, err, server.ErrInvalidCredential)
	require.Less(t, time.Since(start), 5*time.Second)
	require.EqualValues(t, 2, srv.fetches.Load())
}

func TestAuthStaticJWKS(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	set := jwksJSON(t, ecJWK(t, ecKID, &keys.ec.PublicKey), rsaJWK(rsaKID, &keys.rsa.PublicKey))
	file := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(file, set, 0o600))
	users := fakeUsers{ids: map[string]bool{existingUser: true}}
	now := func() time.Time { return authNow }

	for name, cfg := range map[string]server.AuthConfig{
		"raw":  {JWKS: set, Users: users, Now: now},
		"file": {JWKSFile: file, Users: users, Now: now},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := server.NewJWTAuth(cfg)
			require.NoError(t, err)
			// No JWKS URL: nothing to start, and nothing needed.
			for _, tok := range []string{
				sign(t, jwt.SigningMethodES256, keys.ec, ecKID, userClaims(nil)),
				sign(t, jwt.SigningMethodRS256, keys.rsa, rsaKID, userClaims(nil)),
				server.LocalAnonKey,
			} {
				_, err := a.Authenticate(t.Context(), bearer(tok))
				require.NoError(t, err)
			}
			_, err = a.Authenticate(t.Context(), bearer(sign(t, jwt.SigningMethodHS256, pemPublic(t, &keys.rsa.PublicKey), rsaKID, userClaims(nil))))
			require.ErrorIs(t, err, server.ErrInvalidCredential)
		})
	}
}

// JWKs need not say their alg; the key's type must still suit the token's algorithm.
func TestAuthJWKSWithoutAlg(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	ec, rs := ecJWK(t, ecKID, &keys.ec.PublicKey), rsaJWK(rsaKID, &keys.rsa.PublicKey)
	delete(ec, "alg")
	delete(rs, "alg")
	a, err := server.NewJWTAuth(server.AuthConfig{
		JWKS:  jwksJSON(t, ec, rs),
		Now:   func() time.Time { return authNow },
		Users: fakeUsers{ids: map[string]bool{existingUser: true}},
	})
	require.NoError(t, err)
	for _, tc := range []struct {
		tok     string
		wantErr bool
	}{
		{sign(t, jwt.SigningMethodES256, keys.ec, ecKID, userClaims(nil)), false},
		{sign(t, jwt.SigningMethodRS256, keys.rsa, rsaKID, userClaims(nil)), false},
		{sign(t, jwt.SigningMethodES256, keys.ec, rsaKID, userClaims(nil)), true},
		{sign(t, jwt.SigningMethodRS256, keys.rsa, ecKID, userClaims(nil)), true},
	} {
		_, err := a.Authenticate(t.Context(), bearer(tc.tok))
		if tc.wantErr {
			require.ErrorIs(t, err, server.ErrInvalidCredential)
			require.ErrorContains(t, err, "needs")
		} else {
			require.NoError(t, err)
		}
	}
}

func TestAuthJWKSUnreachable(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	srv := newJWKSServer(t, nil)
	srv.Close() // nothing listens at its URL any more
	a, err := server.NewJWTAuth(server.AuthConfig{
		JWKSURL: srv.jwksURL(),
		Now:     func() time.Time { return authNow },
		Users:   fakeUsers{ids: map[string]bool{existingUser: true}},
	})
	require.NoError(t, err)

	// Before Start a configured JWKS URL is a wiring mistake, not the caller's.
	_, err = a.Authenticate(t.Context(), bearer(server.LocalAnonKey))
	require.Error(t, err)
	status, _ := server.GatewayError(err)
	require.Equal(t, http.StatusInternalServerError, status)

	// Start does not fail: the local keys keep working; JWKS tokens fail as invalid.
	require.NoError(t, a.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	require.Error(t, a.Start(t.Context()), "second Start")
	_, err = a.Authenticate(t.Context(), bearer(server.LocalAnonKey))
	require.NoError(t, err)
	_, err = a.Authenticate(t.Context(), bearer(sign(t, jwt.SigningMethodES256, keys.ec, ecKID, userClaims(nil))))
	require.ErrorIs(t, err, server.ErrInvalidCredential)
	require.NoError(t, a.Stop(t.Context()), "Stop is idempotent")
}

func TestAuthConfigDefaults(t *testing.T) {
	t.Parallel()
	users := fakeUsers{ids: map[string]bool{existingUser: true}}
	now := func() time.Time { return authNow }
	hosted := "https://abcdefghijklmnop.supabase.co"
	srv := newJWKSServer(t, jwksJSON(t))

	// A hosted URL: no secret by default (the public one is not trusted), issuer from the URL,
	// JWKS from the URL.
	var fetchedPath atomic.Pointer[string]
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		fetchedPath.Store(new(r.URL.String()))
		r2 := r.Clone(r.Context())
		r2.URL.Scheme, r2.URL.Host = "http", strings.TrimPrefix(srv.URL, "http://")
		return srv.Client().Transport.RoundTrip(r2)
	})}
	a, err := server.NewJWTAuth(server.AuthConfig{SupabaseURL: hosted + "/", HTTPClient: client, Users: users, Now: now})
	require.NoError(t, err)
	require.NoError(t, a.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	require.Equal(t, hosted+"/auth/v1/.well-known/jwks.json", *fetchedPath.Load())
	_, err = a.Authenticate(t.Context(), bearer(server.LocalAnonKey))
	require.ErrorIs(t, err, server.ErrInvalidCredential, "public secret must not verify for a hosted project")

	// The same project with its own secret: the issuer is the project's.
	secret := "project-secret-project-secret-project-secret"
	a2, err := server.NewJWTAuth(server.AuthConfig{SupabaseURL: hosted, JWKSURL: srv.jwksURL(), HTTPClient: srv.Client(),
		JWTSecret: secret, Users: users, Now: now})
	require.NoError(t, err)
	require.NoError(t, a2.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, a2.Stop(context.Background())) })
	_, err = a2.Authenticate(t.Context(), bearer(sign(t, jwt.SigningMethodHS256, []byte(secret), "", userClaims(setClaim("iss", hosted+"/auth/v1")))))
	require.NoError(t, err)
	_, err = a2.Authenticate(t.Context(), bearer(sign(t, jwt.SigningMethodHS256, []byte(secret), "", userClaims(nil))))
	require.ErrorIs(t, err, server.ErrInvalidCredential, "local issuer on a hosted project")

	// Leeway is configurable.
	a3, err := server.NewJWTAuth(server.AuthConfig{Leeway: 2 * time.Minute, Users: users, Now: now})
	require.NoError(t, err)
	_, err = a3.Authenticate(t.Context(), bearer(hs(t, userClaims(setClaim("exp", authNow.Add(-time.Minute).Unix())))))
	require.NoError(t, err)
}

func setClaim(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }

func delClaim(k string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, k) } }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAuthConfigValidate(t *testing.T) {
	t.Parallel()
	users := fakeUsers{}
	for _, tc := range []struct {
		name string
		cfg  server.AuthConfig
		want string
	}{
		{"no users", server.AuthConfig{}, "Users is required"},
		{"short secret", server.AuthConfig{Users: users, JWTSecret: "short"}, "at least 32 bytes"},
		{"public secret for a hosted project", server.AuthConfig{Users: users, SupabaseURL: "https://x.supabase.co", JWTSecret: server.LocalJWTSecret}, "public local-development"},
		{"bad supabase url", server.AuthConfig{Users: users, SupabaseURL: "x.supabase.co"}, "supabase url"},
		{"bad jwks url", server.AuthConfig{Users: users, JWKSURL: "ftp://x/jwks.json"}, "jwks url"},
		{"jwks and file", server.AuthConfig{Users: users, JWKS: []byte(`{"keys":[]}`), JWKSFile: "x"}, "not both"},
		{"bad jwks", server.AuthConfig{Users: users, JWKS: []byte(`{"keys":`)}, "load jwks"},
		{"missing jwks file", server.AuthConfig{Users: users, JWKSFile: "/nonexistent/jwks.json"}, "read jwks file"},
		{"negative leeway", server.AuthConfig{Users: users, Leeway: -time.Second}, "leeway"},
		{"huge leeway", server.AuthConfig{Users: users, Leeway: time.Hour}, "leeway"},
		{"negative refresh", server.AuthConfig{Users: users, JWKSRefreshInterval: -time.Second}, "refresh interval"},
		{"empty issuer", server.AuthConfig{Users: users, Issuers: []string{""}}, "issuers"},
		{"publishable key format", server.AuthConfig{Users: users, PublishableKeys: []string{"sb_secret_x"}}, "sb_publishable_"},
		{"secret key format", server.AuthConfig{Users: users, SecretKeys: []string{"sb_secret_"}}, "sb_secret_"},
		{"key in both lists", server.AuthConfig{Users: users, PublishableKeys: []string{"sb_publishable_x"}, SecretKeys: []string{"sb_secret_x", "sb_publishable_x"}}, "sb_secret_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := server.NewJWTAuth(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// The helpers `backfill token` uses mint tokens the authenticator accepts.
func TestSignHS256(t *testing.T) {
	t.Parallel()
	a, err := server.NewJWTAuth(server.AuthConfig{Users: fakeUsers{ids: map[string]bool{existingUser: true}}})
	require.NoError(t, err)
	for _, tc := range []struct {
		role, user string
		want       server.PrincipalKind
	}{
		{"anon", "", server.PrincipalAnonymous},
		{"service_role", "", server.PrincipalService},
		{"authenticated", existingUser, server.PrincipalUser},
	} {
		claims, err := server.TokenClaims(tc.role, tc.user, server.LocalIssuer, time.Now(), time.Hour)
		require.NoError(t, err)
		tok, err := server.SignHS256(server.LocalJWTSecret, claims)
		require.NoError(t, err)
		p, err := a.Authenticate(t.Context(), bearer(tok))
		require.NoError(t, err, tc.role)
		require.Equal(t, tc.want, p.Kind)
		require.Equal(t, tc.user, p.UserID)
		require.Equal(t, tc.role, p.Role)
	}
	_, err = server.SignHS256("", map[string]any{"role": "anon"})
	require.Error(t, err)
	for _, bad := range [][2]string{{"authenticated", "nope"}, {"anon", existingUser}, {"admin", ""}} {
		_, err := server.TokenClaims(bad[0], bad[1], server.LocalIssuer, time.Now(), time.Hour)
		require.Error(t, err, bad)
	}
}

func TestPgUserLookup(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, "INSERT INTO auth.users (id, email) VALUES ($1, 'a@example.com')", existingUser)
	require.NoError(t, err)

	lookup := server.NewPgUserLookup(pool)
	for id, want := range map[string]bool{existingUser: true, missingUser: false} {
		got, err := lookup.UserExists(ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, got, id)
	}

	// In a caller's transaction it sees the transaction's own rows.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO auth.users (id) VALUES ($1)", missingUser)
	require.NoError(t, err)
	got, err := server.NewPgUserLookup(tx).UserExists(ctx, missingUser)
	require.NoError(t, err)
	require.True(t, got)
	require.NoError(t, tx.Rollback(ctx))

	// Wired into the authenticator, the database decides.
	a, err := server.NewJWTAuth(server.AuthConfig{Users: lookup, Now: func() time.Time { return authNow }})
	require.NoError(t, err)
	p, err := a.Authenticate(ctx, bearer(hs(t, userClaims(nil))))
	require.NoError(t, err)
	require.Equal(t, existingUser, p.UserID)
	_, err = a.Authenticate(ctx, bearer(hs(t, userClaims(setClaim("sub", missingUser)))))
	require.ErrorIs(t, err, server.ErrUnknownUser)

	// A failing database is not the caller's fault.
	conn, err := pgx.Connect(ctx, pool.Config().ConnString())
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	_, err = server.NewPgUserLookup(conn).UserExists(ctx, existingUser)
	require.Error(t, err)
}
