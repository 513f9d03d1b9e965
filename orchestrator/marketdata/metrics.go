package marketdata

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metrics are the provider series. Labels are bounded: provider, kind and purpose (the three
// Purpose… values), never a symbol. Every provider registers the same collectors; the second one to register on a registry
// shares the first one's (AlreadyRegisteredError.ExistingCollector), so Alpaca and Massive can
// live on one registry.
type metrics struct {
	provider      string
	duration      *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	waitedSeconds *prometheus.CounterVec
	waits         *prometheus.CounterVec
	requests      *prometheus.CounterVec
	zeroBars      *prometheus.CounterVec
}

// purposes are the values of the purpose label.
var purposes = []string{PurposeBackfill, PurposeRefresh, PurposeRepair}

// purposeLabel keeps the label bounded: "" and any value not a Purpose… constant count as
// PurposeBackfill.
func purposeLabel(p string) string {
	switch p {
	case PurposeRefresh, PurposeRepair:
		return p
	}
	return PurposeBackfill
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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_provider_requests_total",
			Help: "Provider requests sent (one HTTP page; one simulated page for synthetic), whatever their outcome, by provider and purpose: backfill, refresh or repair.",
		}, []string{"provider", "purpose"}),
		zeroBars: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_provider_zero_bar_requests_total",
			Help: "Successful provider requests (pages) that held no bar at all, by provider and purpose: the share of requests spent on nothing.",
		}, []string{"provider", "purpose"}),
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
		if m.requests, err = register(reg, m.requests); err != nil {
			return nil, err
		}
		if m.zeroBars, err = register(reg, m.zeroBars); err != nil {
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
	for _, p := range purposes {
		m.requests.WithLabelValues(provider, p)
		m.zeroBars.WithLabelValues(provider, p)
	}
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

// request counts one request (page) sent for purpose.
func (m *metrics) request(purpose string) {
	m.requests.WithLabelValues(m.provider, purposeLabel(purpose)).Inc()
}

// zeroBar counts one successful request (page) for purpose that held no bar.
func (m *metrics) zeroBar(purpose string) {
	m.zeroBars.WithLabelValues(m.provider, purposeLabel(purpose)).Inc()
}
