package freshness

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

// metrics are the sampler's series; the only label is the timeframe.
type metrics struct {
	lag           *prometheus.HistogramVec // timeframe
	worst         *prometheus.GaugeVec     // timeframe
	unfetched     *prometheus.GaugeVec     // timeframe
	samples       prometheus.Counter
	failures      prometheus.Counter
	sampleSeconds prometheus.Histogram
}

// lagBuckets span 0 (fresh) to a week, at the lags that mean something: a minute, 5 min, one
// m15 bar, two, one h1 bar, one h4 bar, a day, a long weekend, a week.
var lagBuckets = []float64{0, 60, 300, 900, 1800, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_freshness_lag_seconds",
			Help:    "How far each fetched enabled definition's newest fetched bar lags the newest bar closed by now on its calendar, by timeframe: one observation per definition per sample.",
			Buckets: lagBuckets,
		}, []string{"timeframe"}),
		worst: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backfill_freshness_worst_lag_seconds",
			Help: "The largest lag of a fetched enabled definition, by timeframe, as of the last freshness sample (0 when none lags).",
		}, []string{"timeframe"}),
		unfetched: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backfill_freshness_unfetched_definitions",
			Help: "Enabled definitions not backfilled yet (no coverage, or no fetch reached anywhere), by timeframe, as of the last freshness sample.",
		}, []string{"timeframe"}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_freshness_samples_total",
			Help: "Freshness samples taken.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_freshness_sample_failures_total",
			Help: "Freshness samples that failed (logged; the gauges keep the last sample's values until one succeeds).",
		}),
		sampleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "backfill_freshness_sample_duration_seconds",
			Help:    "Duration of one freshness sample: the query and the lags.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, tf := range market.Timeframes() {
		m.lag.WithLabelValues(string(tf))
		m.worst.WithLabelValues(string(tf))
		m.unfetched.WithLabelValues(string(tf))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lag, m.worst, m.unfetched, m.samples, m.failures, m.sampleSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("freshness: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
