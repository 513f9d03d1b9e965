package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Check is one readiness condition; a nil error means ready.
type Check struct {
	// Name appears in the /readyz body, e.g. "database".
	Name string
	// Run reports whether the condition holds. It gets a context bounded by the probe timeout.
	Run func(ctx context.Context) error
}

// HealthConfig configures [NewHealth].
type HealthConfig struct {
	// Checks must all pass for /readyz to answer 200.
	Checks []Check
	// Timeout bounds each /readyz probe. Default 2s.
	Timeout time.Duration
}

// Health serves /healthz and /readyz.
type Health struct {
	checks  []Check
	timeout time.Duration
}

// NewHealth returns a Health for cfg.
func NewHealth(cfg HealthConfig) *Health {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	return &Health{checks: cfg.Checks, timeout: cfg.Timeout}
}

// Register mounts GET /healthz and GET /readyz on mux.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.live)
	mux.HandleFunc("GET /readyz", h.ready)
}

type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (h *Health) live(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, healthBody{Status: "ok"})
}

func (h *Health) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	body := healthBody{Status: "ready", Checks: map[string]string{}}
	code := http.StatusOK
	for _, c := range h.checks {
		if err := c.Run(ctx); err != nil {
			body.Checks[c.Name] = err.Error()
			body.Status = "not ready"
			code = http.StatusServiceUnavailable
			continue
		}
		body.Checks[c.Name] = "ok"
	}
	writeHealth(w, code, body)
}

func writeHealth(w http.ResponseWriter, code int, body healthBody) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
