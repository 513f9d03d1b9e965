package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/server"
)

// fakeAuth stands in for Supabase Auth's GET /auth/v1/user: the edge we cannot reach here.
type fakeAuth struct {
	*httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	revoked map[string]bool
	down    bool
}

func newFakeAuth(t *testing.T) *fakeAuth {
	f := &fakeAuth{revoked: map[string]bool{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		tok := r.Header.Get("Authorization")
		switch {
		case r.URL.Path != "/auth/v1/user" || r.Header.Get("apikey") != "sb_publishable_projectkey":
			w.WriteHeader(http.StatusBadRequest)
		case f.down:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"message":"unavailable"}`))
		case f.revoked[tok]:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":401,"error_code":"session_not_found","msg":"Session from session_id claim in JWT does not exist"}`))
		default:
			_, _ = w.Write([]byte(`{"id":"` + existingUser + `","aud":"authenticated","role":"authenticated","email":"a@example.com"}`))
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAuth) set(fn func(f *fakeAuth)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func TestSupabaseSessions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fa := newFakeAuth(t)
	var clock atomic.Int64
	clock.Store(authNow.Unix())
	s, err := server.NewSupabaseSessions(server.SessionConfig{
		SupabaseURL: fa.URL, Key: "sb_publishable_projectkey", TTL: 30 * time.Second,
		Now: func() time.Time { return time.Unix(clock.Load(), 0) },
	})
	require.NoError(t, err)

	require.NoError(t, s.CheckSession(ctx, "live-token"))
	require.NoError(t, s.CheckSession(ctx, "live-token"))
	require.EqualValues(t, 1, fa.calls.Load(), "the second answer came from the cache")

	fa.set(func(f *fakeAuth) { f.revoked["Bearer revoked-token"] = true })
	require.ErrorIs(t, s.CheckSession(ctx, "revoked-token"), server.ErrSessionRevoked)

	// Revoking a cached session is noticed once the answer is older than the TTL.
	fa.set(func(f *fakeAuth) { f.revoked["Bearer live-token"] = true })
	require.NoError(t, s.CheckSession(ctx, "live-token"))
	clock.Add(31)
	require.ErrorIs(t, s.CheckSession(ctx, "live-token"), server.ErrSessionRevoked)

	// An outage is an error of its own, and is not cached.
	fa.set(func(f *fakeAuth) { f.down = true })
	err = s.CheckSession(ctx, "other-token")
	require.Error(t, err)
	require.NotErrorIs(t, err, server.ErrSessionRevoked)
	fa.set(func(f *fakeAuth) { f.down = false })
	require.NoError(t, s.CheckSession(ctx, "other-token"))
}

func TestAuthWithSessionCheck(t *testing.T) {
	t.Parallel()
	fa := newFakeAuth(t)
	sessions, err := server.NewSupabaseSessions(server.SessionConfig{SupabaseURL: fa.URL, Key: "sb_publishable_projectkey"})
	require.NoError(t, err)
	a, err := server.NewJWTAuth(server.AuthConfig{
		Now:      func() time.Time { return authNow },
		Users:    fakeUsers{ids: map[string]bool{existingUser: true}},
		Sessions: sessions,
	})
	require.NoError(t, err)
	ctx := context.Background()

	live := hs(t, userClaims(nil))
	p, err := a.Authenticate(ctx, bearer(live))
	require.NoError(t, err)
	require.Equal(t, server.PrincipalUser, p.Kind)

	revoked := hs(t, userClaims(func(c jwt.MapClaims) { c["session_id"] = "revoked" }))
	fa.set(func(f *fakeAuth) { f.revoked["Bearer "+revoked] = true })
	_, err = a.Authenticate(ctx, bearer(revoked))
	require.ErrorIs(t, err, server.ErrInvalidCredential)
	status, _ := server.GatewayError(err)
	require.Equal(t, http.StatusUnauthorized, status)

	// Keys are not user sessions: no call to Auth for them.
	before := fa.calls.Load()
	_, err = a.Authenticate(ctx, bearer(server.LocalAnonKey))
	require.NoError(t, err)
	require.Equal(t, before, fa.calls.Load())

	fa.set(func(f *fakeAuth) { f.down = true })
	_, err = a.Authenticate(ctx, bearer(hs(t, userClaims(func(c jwt.MapClaims) { c["session_id"] = "new" }))))
	status, _ = server.GatewayError(err)
	require.Equal(t, http.StatusInternalServerError, status, "fails closed while Auth cannot answer")
}
