package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// TestAuthAttacksOverHTTP sends each forged or unacceptable credential to the function path and
// over Connect: all get 401 and none writes anything.
func TestAuthAttacksOverHTTP(t *testing.T) {
	t.Parallel()
	a := startAPI(t, apiOptions{})
	const user = "3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b"
	valid := a.userToken(t, user)
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims(userJWT(user))
		mod(c)
		return c
	}
	keys := testKeys()
	now := time.Now()
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"alg none", unsignedToken(t, "none", claims(func(jwt.MapClaims) {}))},
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, pemPublic(t, &keys.rsa.PublicKey), "", claims(func(jwt.MapClaims) {}))},
		{"HS256 signed with the EC public key", sign(t, jwt.SigningMethodHS256, pemPublic(t, &keys.ec.PublicKey), "", claims(func(jwt.MapClaims) {}))},
		{"ES256 without a JWKS", sign(t, jwt.SigningMethodES256, keys.ec, ecKID, claims(func(jwt.MapClaims) {}))},
		{"expired", hs(t, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))},
		{"not yet valid", hs(t, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))},
		{"wrong issuer", hs(t, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/auth/v1" }))},
		{"wrong audience", hs(t, claims(func(c jwt.MapClaims) { c["aud"] = "service" }))},
		{"tampered payload", withPayload(t, valid, claims(func(c jwt.MapClaims) { c["sub"] = "9f9f9f9f-9f9f-4f9f-8f9f-9f9f9f9f9f9f" }))},
		{"missing sub", hs(t, claims(func(c jwt.MapClaims) { delete(c, "sub") }))},
		{"sub not in auth.users", hs(t, claims(func(c jwt.MapClaims) { c["sub"] = "0d0d0d0d-0d0d-4d0d-8d0d-0d0d0d0d0d0d" }))},
		{"signed with another secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-at-least-32-bytes-long"), "", claims(func(jwt.MapClaims) {}))},
		{"garbage bearer", "garbage"},
		{"unknown sb_ key", "sb_secret_NotAKeyWeKnowAbout123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols",
				headers("Authorization", "Bearer "+tc.token, "Content-Type", "application/json"), `{"symbols":["AAPL"],"source":"watchlist"}`)
			require.Equal(t, http.StatusUnauthorized, r.status, r.body)
			require.JSONEq(t, `{"code":401,"message":"Invalid JWT"}`, r.body)

			r = do(t, http.MethodPost, a.url+"/symbolsync.v1.SymbolSyncService/SyncUserSymbols",
				headers("Authorization", "Bearer "+tc.token, "Content-Type", "application/json"), `{"symbols":["AAPL"],"source":"watchlist"}`)
			require.Equal(t, http.StatusUnauthorized, r.status, r.body)
			require.JSONEq(t, `{"code":"unauthenticated","message":"invalid JWT"}`, r.body)
		})
	}
	require.Zero(t, a.count(t, "user_symbol_tracking"))
	require.Zero(t, a.count(t, "symbols"))

	// The same request with the valid token goes through: the attacks failed for their flaw.
	r := do(t, http.MethodPost, a.url+"/functions/v1/sync-user-symbols", headers("Authorization", "Bearer "+valid), `{"symbols":["AAPL"],"source":"watchlist"}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
}
