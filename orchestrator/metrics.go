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
	batchRuns    *prometheus.HistogramVec // timeframe
	requests     *prometheus.CounterVec   // timeframe, purpose: provider calls (one per batch group)
	refreshed    *prometheus.CounterVec   // timeframe
}

// backfillBuckets span a synthetic backfill (tens of milliseconds) to a rate-limited real one
// (an hour).
var backfillBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batchRuns: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backfill_orchestrator_batch_runs",
			Help:    "Runs per claimed batch (one timeframe and slice, served by as few multi-symbol provider calls as the ranges allow), by timeframe.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"timeframe"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_orchestrator_provider_calls_total",
			Help: "Provider calls made for runs (one per group of batch-mates with one range; each may take several pages), by timeframe and purpose (backfill, refresh, repair).",
		}, []string{"timeframe", "purpose"}),
		refreshed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_orchestrator_refreshes_queued_total",
			Help: "Open slices queued again because a bar of their timeframe closed since their last fetch, by timeframe.",
		}, []string{"timeframe"}),
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
		m.batchRuns.WithLabelValues(string(tf))
		m.refreshed.WithLabelValues(string(tf))
		for _, p := range []string{"backfill", "refresh", "repair"} {
			m.requests.WithLabelValues(string(tf), p)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ticks, m.tickSeconds, m.claimed, m.completed, m.runSeconds, m.pickup, m.writeSeconds,
			m.barsWritten, m.skipped, m.queueDepth, m.oldestQueued, m.firstBars, m.covered, m.batchRuns, m.requests, m.refreshed} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register orchestrator metrics: %w", err)
			}
		}
	}
	return m, nil
}
