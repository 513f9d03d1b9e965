package completeness

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

// metrics are the checker's series; labels are bounded (timeframe, state, kind).
type metrics struct {
	holes        *prometheus.GaugeVec   // timeframe, state
	found        *prometheus.CounterVec // timeframe, kind
	healed       *prometheus.CounterVec // timeframe
	givenUp      *prometheus.CounterVec // timeframe
	repairs      prometheus.Counter
	checked      prometheus.Counter
	failures     prometheus.Counter
	passSeconds  prometheus.Histogram
	batchSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	seconds := []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &metrics{
		holes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backfill_coverage_holes",
			Help: "Sessions of enabled definitions that were fetched but lack bars, or whose run failed for good, by timeframe and state (open, repairing, given_up), as of the last completeness pass.",
		}, []string{"timeframe", "state"}),
		found: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_coverage_holes_found_total",
			Help: "Holes the completeness check found, by timeframe and kind (missing, partial, failed).",
		}, []string{"timeframe", "kind"}),
		healed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_coverage_holes_healed_total",
			Help: "Holes the completeness check found filled again, by timeframe.",
		}, []string{"timeframe"}),
		givenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_coverage_holes_given_up_total",
			Help: "Holes given up after their repairs brought nothing, by timeframe.",
		}, []string{"timeframe"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_coverage_repairs_queued_total",
			Help: "Repair runs queued for holes.",
		}),
		checked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_coverage_definitions_checked_total",
			Help: "Definitions whose completeness was checked.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_coverage_pass_failures_total",
			Help: "Periodic completeness passes that failed (logged; retried at the next interval).",
		}),
		passSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "backfill_coverage_pass_duration_seconds",
			Help:    "Duration of one periodic completeness pass.",
			Buckets: seconds,
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "backfill_coverage_check_batch_duration_seconds",
			Help:    "Duration of checking one batch of definitions (reads, verdicts, stored results).",
			Buckets: seconds,
		}),
	}
	for _, tf := range market.Timeframes() {
		for _, st := range []string{StateOpen, StateRepairing, StateGivenUp} {
			m.holes.WithLabelValues(string(tf), st)
		}
		for _, k := range []string{KindMissing, KindPartial, KindFailed} {
			m.found.WithLabelValues(string(tf), k)
		}
		m.healed.WithLabelValues(string(tf))
		m.givenUp.WithLabelValues(string(tf))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.holes, m.found, m.healed, m.givenUp, m.repairs, m.checked, m.failures, m.passSeconds, m.batchSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("completeness: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
