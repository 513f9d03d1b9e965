package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestHealth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		dbErr    error
		path     string
		wantCode int
		wantBody string
	}{
		{"live regardless of checks", errors.New("down"), "/healthz", 200, `{"status":"ok"}`},
		{"ready", nil, "/readyz", 200, `{"status":"ready","checks":{"database":"ok"}}`},
		{"not ready names the failing check", errors.New("database unreachable: connection refused"), "/readyz", 503,
			`{"status":"not ready","checks":{"database":"database unreachable: connection refused"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			server.NewHealth(server.HealthConfig{Checks: []server.Check{
				{Name: "database", Run: func(context.Context) error { return tc.dbErr }},
			}}).Register(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()

			resp, err := http.Get(srv.URL + tc.path)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.wantCode, resp.StatusCode)
			require.JSONEq(t, tc.wantBody, string(body))
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

			resp2, err := http.Post(srv.URL+tc.path, "text/plain", nil)
			require.NoError(t, err)
			resp2.Body.Close()
			require.Equal(t, http.StatusMethodNotAllowed, resp2.StatusCode)
		})
	}
}
