package marketdata

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metrics are the provider series. Labels are bounded: provider and kind, never a symbol.
// Every provider registers the same three collectors; the second one to register on a registry
// shares the first one's (AlreadyRegisteredError.ExistingCollector), so Alpaca and Massive can
// live on one registry.
type metrics struct {
	provider      string
	duration      *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	waitedSeconds *prometheus.CounterVec
	waits         *prometheus.CounterVec
}

func newMetrics(provider string, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		provider: provider,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_provider_request_duration_seconds",
			Help:    "Duration of one provider request (one HTTP page; one Bars call for synthetic), whatever its outcome, by provider.",
			Buckets: requestBuckets,
		}, []string{"provider"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_provider_errors_total",
			Help: "Failed provider calls, by provider and kind: retryable (network, timeout, 5xx, malformed body), permanent (4xx, bad keys or plan), rate_limited (429).",
		}, []string{"provider", "kind"}),
		waitedSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_provider_rate_limit_wait_seconds_total",
			Help: "Seconds spent waiting for the client-side rate limiter before a request, by provider.",
		}, []string{"provider"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_provider_rate_limit_waits_total",
			Help: "Requests that had to wait for the client-side rate limiter, by provider.",
		}, []string{"provider"}),
	}
	if reg != nil {
		var err error
		if m.duration, err = register(reg, m.duration); err != nil {
			return nil, err
		}
		if m.errors, err = register(reg, m.errors); err != nil {
			return nil, err
		}
		if m.waitedSeconds, err = register(reg, m.waitedSeconds); err != nil {
			return nil, err
		}
		if m.waits, err = register(reg, m.waits); err != nil {
			return nil, err
		}
	}
	// Every series of this provider exists from the start, so rate() and absent() behave.
	m.duration.WithLabelValues(provider)
	for _, k := range []Kind{Retryable, Permanent, RateLimited} {
		m.errors.WithLabelValues(provider, k.String())
	}
	m.waitedSeconds.WithLabelValues(provider)
	m.waits.WithLabelValues(provider)
	return m, nil
}

// register registers c, or returns the identical collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register provider metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) observe(d time.Duration) {
	m.duration.WithLabelValues(m.provider).Observe(d.Seconds())
}

// fail counts err when it is a classified provider error.
func (m *metrics) fail(err error) {
	var e *Error
	if errors.As(err, &e) {
		m.errors.WithLabelValues(m.provider, e.Kind.String()).Inc()
	}
}

func (m *metrics) wait(d time.Duration) {
	if d <= 0 {
		return
	}
	m.waits.WithLabelValues(m.provider).Inc()
	m.waitedSeconds.WithLabelValues(m.provider).Add(d.Seconds())
}
