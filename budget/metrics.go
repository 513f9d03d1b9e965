package budget

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Budget's series. The provider is a constant label (bounded: one per
// configured provider), so budgets of several providers can share a registry.
type metrics struct {
	requests    prometheus.Counter
	waitSeconds prometheus.Histogram
	limit       prometheus.Gauge
	pace        prometheus.Gauge
	pauses      prometheus.Counter
	failures    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, provider string) (*metrics, error) {
	labels := prometheus.Labels{"provider": provider}
	m := &metrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "backfill_provider_budget_requests_total",
			Help:        "Tokens this process took from the provider's shared budget (one per provider request; a wait abandoned when its context ended counts too: its token is not given back).",
			ConstLabels: labels,
		}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "backfill_provider_budget_wait_seconds",
			Help:        "Wall-clock time from asking the shared budget for a token to the request being allowed, the database statement included.",
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
			ConstLabels: labels,
		}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "backfill_provider_budget_limit_per_minute",
			Help:        "The provider plan's requests a minute for the whole deployment, as this process is configured.",
			ConstLabels: labels,
		}),
		pace: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "backfill_provider_budget_pace_per_minute",
			Help:        "Requests a minute the shared budget allows (the plan times the pace), as this process is configured.",
			ConstLabels: labels,
		}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "backfill_provider_budget_pauses_total",
			Help:        "Pauses of the shared budget this process asked for (the provider said to wait: Retry-After, X-RateLimit-Reset).",
			ConstLabels: labels,
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "backfill_provider_budget_errors_total",
			Help:        "Statements on the shared budget that failed (the database unreachable, the budget's row missing); the request was not sent.",
			ConstLabels: labels,
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.waitSeconds, m.limit, m.pace, m.pauses, m.failures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register provider budget metrics of %q: %w", provider, err)
			}
		}
	}
	return m, nil
}
