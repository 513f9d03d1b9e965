package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/symbolsync/backfill/server/tracking"
)

// SyncFunctionName is the Supabase Edge Function this server stands in for.
const SyncFunctionName = "sync-user-symbols"

// FunctionConfig is the per-function gateway setting, as [functions.<name>] in supabase/config.toml.
type FunctionConfig struct {
	// VerifyJWT makes the gateway demand a valid credential before the function runs (Supabase's
	// default, true). With it off, a request without credentials runs as anonymous; a present but
	// invalid credential is still refused.
	VerifyJWT bool
}

// corsHeaders are the original function's CORS headers (backend/supabase/functions/_shared/cors.ts).
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "authorization, x-client-info, apikey, content-type")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
}

// writeJSON answers like the original jsonResponse: CORS, JSON and no caching.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	setCORS(h)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeValue(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"Internal server error"}`)
	}
	writeJSON(w, status, body)
}

// errorBody is the original errorResponse shape.
type errorBody struct {
	Error string `json:"error"`
}

// syncBody is the original request; RawMessage fields let us name a wrongly typed field instead
// of failing with a decoder message.
type syncBody struct {
	Symbols    json.RawMessage `json:"symbols"`
	Source     json.RawMessage `json:"source"`
	Timeframes json.RawMessage `json:"timeframes"`
}

// syncResponse is the original 200 body, fields in the original order.
type syncResponse struct {
	Success          bool   `json:"success"`
	SymbolsTracked   int    `json:"symbols_tracked"`
	SymbolsRequested int    `json:"symbols_requested"`
	Timeframes       int    `json:"timeframes"`
	JobsUpdated      int    `json:"jobs_updated"`
	Priority         int    `json:"priority"`
	Source           string `json:"source"`
}

type untrackResponse struct {
	Success          bool   `json:"success"`
	SymbolsUntracked int    `json:"symbols_untracked"`
	SymbolsRequested int    `json:"symbols_requested"`
	Source           string `json:"source"`
}

// gateway serves /functions/v1/{name} like the Supabase API gateway: unknown functions 404,
// verify_jwt per function, body limit, then the function itself.
type gateway struct {
	auth      Authenticator
	functions map[string]FunctionConfig
	store     *tracking.Store
	maxBody   int64
	logger    *slog.Logger
	metrics   *metrics
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	cfg, ok := g.functions[name]
	if !ok {
		// The hosted gateway's answer for a function that is not deployed.
		writeJSON(w, http.StatusNotFound, []byte(`{"code":"NOT_FOUND","message":"Requested function was not found"}`))
		return
	}
	if r.Method == http.MethodOptions {
		// The original answered the preflight itself: 200, CORS headers, no body. The
		// gateway does not check credentials on OPTIONS.
		setCORS(w.Header())
		w.WriteHeader(http.StatusOK)
		return
	}
	principal, err := g.auth.Authenticate(r.Context(), r.Header)
	switch {
	case err == nil:
	case !cfg.VerifyJWT && errors.Is(err, ErrMissingCredential):
		principal = Principal{Kind: PrincipalAnonymous, Role: RoleAnon}
	default:
		status, body := GatewayError(err)
		if status == http.StatusInternalServerError {
			g.logger.LogAttrs(r.Context(), slog.LevelError, "authenticate", slog.Any("error", err))
		}
		writeJSON(w, status, body)
		return
	}
	ctx := withPrincipal(r.Context(), principal)

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Appendf(nil, `{"code":413,"message":"Payload too large: the limit is %d bytes"}`, g.maxBody))
			return
		}
		writeValue(w, http.StatusBadRequest, errorBody{Error: "Could not read request body"})
		return
	}
	g.syncUserSymbols(ctx, w, r.Method, body)
}

// syncUserSymbols is the function: POST tracks, DELETE untracks.
func (g *gateway) syncUserSymbols(ctx context.Context, w http.ResponseWriter, method string, body []byte) {
	if method != http.MethodPost && method != http.MethodDelete {
		w.Header().Set("Allow", "POST, DELETE, OPTIONS")
		writeValue(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("Method %s not allowed: POST tracks symbols, DELETE untracks them", method)})
		return
	}
	req, err := decodeSyncBody(body)
	if err != nil {
		writeValue(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	if method == http.MethodDelete {
		res, err := g.store.Untrack(ctx, callerID(ctx), tracking.UntrackRequest{Symbols: req.Symbols, Source: req.Source})
		if err != nil {
			g.writeStoreError(ctx, w, err)
			return
		}
		writeValue(w, http.StatusOK, untrackResponse{Success: true, SymbolsUntracked: res.SymbolsUntracked, SymbolsRequested: res.SymbolsRequested, Source: res.Source})
		return
	}
	res, err := g.store.Sync(ctx, callerID(ctx), req)
	if err != nil {
		g.writeStoreError(ctx, w, err)
		return
	}
	writeValue(w, http.StatusOK, syncResponse{
		Success: true, SymbolsTracked: res.SymbolsTracked, SymbolsRequested: res.SymbolsRequested,
		Timeframes: res.Timeframes, JobsUpdated: res.JobsUpdated, Priority: res.Priority, Source: res.Source,
	})
}

func (g *gateway) writeStoreError(ctx context.Context, w http.ResponseWriter, err error) {
	var invalid *tracking.InvalidError
	switch {
	case errors.As(err, &invalid):
		writeValue(w, http.StatusBadRequest, errorBody{Error: invalid.Message})
	case errors.Is(err, tracking.ErrUnknownUser):
		status, body := GatewayError(ErrUnknownUser)
		writeJSON(w, status, body)
	default:
		g.logger.LogAttrs(ctx, slog.LevelError, "sync-user-symbols failed", slog.Any("error", err))
		writeValue(w, http.StatusInternalServerError, errorBody{Error: "Internal server error"})
	}
}

// decodeSyncBody parses the original request body. The original answered invalid JSON with a
// 500; a client error is a 400 here.
func decodeSyncBody(body []byte) (tracking.SyncRequest, error) {
	var req tracking.SyncRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, errors.New("Request body is empty: send a JSON object with symbols and source")
	}
	var raw syncBody
	if err := json.Unmarshal(body, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return req, errors.New("Request body must be a JSON object with symbols and source")
		}
		return req, fmt.Errorf("Invalid JSON in request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := decodeField(raw.Symbols, &req.Symbols, "symbols must be an array of strings"); err != nil {
		return req, err
	}
	if err := decodeField(raw.Source, &req.Source, "source must be a string"); err != nil {
		return req, err
	}
	if err := decodeField(raw.Timeframes, &req.Timeframes, "timeframes must be an array of strings"); err != nil {
		return req, err
	}
	return req, nil
}

func decodeField(raw json.RawMessage, into any, msg string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return errors.New("Invalid request body: " + msg)
	}
	return nil
}
