package orchestrator

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbolsync/backfill/market"
)

// metrics are the orchestrator series. Labels are bounded (timeframe, outcome), never a symbol.
type metrics struct {
	ticks        prometheus.Counter
	tickSeconds  prometheus.Histogram
	claimed      prometheus.Counter
	completed    *prometheus.CounterVec // timeframe, outcome
	runSeconds   *prometheus.HistogramVec
	pickup       *prometheus.HistogramVec // timeframe
	writeSeconds *prometheus.HistogramVec // timeframe
	barsWritten  *prometheus.CounterVec
	skipped      *prometheus.CounterVec // timeframe
	queueDepth   prometheus.Gauge
	oldestQueued prometheus.Gauge
	firstBars    *prometheus.HistogramVec // timeframe
	covered      *prometheus.HistogramVec // timeframe
}

// backfillBuckets span a synthetic backfill (tens of milliseconds) to a rate-limited real one
// (an hour).
var backfillBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ticks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_orchestrator_ticks_total",
			Help: "Planning passes (enqueue + reap), whether woken by the tick, a notification or a start.",
		}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_tick_duration_seconds",
			Help:    "Duration of one planning pass.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		claimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_orchestrator_runs_claimed_total",
			Help: "Job runs claimed by this process.",
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_orchestrator_runs_completed_total",
			Help: "Job runs finished by this process, by timeframe and outcome (success, retried, deferred, failed, disabled, lease_lost).",
		}, []string{"timeframe", "outcome"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_run_duration_seconds",
			Help:    "Duration of one job run from claim to its recorded outcome, by timeframe.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"timeframe"}),
		pickup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_pickup_latency_seconds",
			Help:    "Job pickup: from a run being due (queued, or its retry delay over) to its claim, by timeframe; queueing behind busy workers included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"timeframe"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_write_duration_seconds",
			Help:    "One run's write of bars, coverage and success (one statement), by timeframe, waiting for a write slot excluded.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"timeframe"}),
		barsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_orchestrator_bars_written_total",
			Help: "Bar rows inserted or changed in ohlc_bars_v2, by timeframe.",
		}, []string{"timeframe"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_orchestrator_requests_skipped_total",
			Help: "Runs recorded as fetched without a provider request because their range held only closed-market time (nights, weekends, holidays), by timeframe.",
		}, []string{"timeframe"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backfill_orchestrator_queue_depth",
			Help: "Queued job runs of enabled definitions, sampled at every planning pass and whenever this process runs out of due work.",
		}),
		oldestQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backfill_orchestrator_oldest_queued_age_seconds",
			Help: "How long the oldest due queued job run has been due, sampled at every planning pass and whenever this process runs out of due work; 0 when none.",
		}),
		firstBars: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_first_bars_latency_seconds",
			Help:    "Backfill latency: from a definition's request (created, or re-enabled by tracking) to its first bars written, by timeframe.",
			Buckets: backfillBuckets,
		}, []string{"timeframe"}),
		covered: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_window_covered_latency_seconds",
			Help:    "Backfill latency: from a definition's request to its whole window fetched, by timeframe.",
			Buckets: backfillBuckets,
		}, []string{"timeframe"}),
	}
	for _, tf := range market.Timeframes() {
		// Every series exists from the start, so rate() sees the first increment and ratios
		// have a denominator before anything failed.
		for _, out := range []Outcome{Succeeded, Retried, Deferred, Failed, Disabled, LeaseLost} {
			m.completed.WithLabelValues(string(tf), string(out))
		}
		m.runSeconds.WithLabelValues(string(tf))
		m.pickup.WithLabelValues(string(tf))
		m.writeSeconds.WithLabelValues(string(tf))
		m.barsWritten.WithLabelValues(string(tf))
		m.skipped.WithLabelValues(string(tf))
		m.firstBars.WithLabelValues(string(tf))
		m.covered.WithLabelValues(string(tf))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ticks, m.tickSeconds, m.claimed, m.completed, m.runSeconds, m.pickup, m.writeSeconds,
			m.barsWritten, m.skipped, m.queueDepth, m.oldestQueued, m.firstBars, m.covered} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register orchestrator metrics: %w", err)
			}
		}
	}
	return m, nil
}
