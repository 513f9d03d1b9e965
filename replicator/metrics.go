package replicator

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values. All bounded: no symbol, user or slot labels (a process runs one replicator; wrap
// the Registerer with prometheus.WrapRegistererWith to tell several apart).
var (
	operations     = []string{opInsert.String(), opUpdate.String(), opDelete.String(), opTruncate.String()}
	applyKinds     = []string{kindStream, kindPartial, kindReconcile}
	reconcileWhy   = []string{reasonStart, reasonReconnect, reasonCreated, reasonLost}
	txnResults     = []string{"applied", "skipped"}
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// metrics are the replicator's Prometheus series.
type metrics struct {
	received     *prometheus.CounterVec
	applied      *prometheus.CounterVec
	transactions *prometheus.CounterVec
	applies      *prometheus.CounterVec
	latency      prometheus.Histogram
	lagBytes     prometheus.Gauge
	lastApplied  prometheus.Gauge
	reconnects   prometheus.Counter
	reconciles   *prometheus.CounterVec
	leader       prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_replicator_changes_received_total",
			Help: "Row changes of user_symbol_tracking received from the slot, by operation (insert, update, delete, truncate). Replays after a restart count again.",
		}, []string{"operation"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_replicator_changes_applied_total",
			Help: "Row changes whose transaction's effects were committed to job_definitions, by operation. Skipped replays do not count.",
		}, []string{"operation"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_replicator_transactions_total",
			Help: "Upstream transactions completed, by result: applied, or skipped because their end LSN was already recorded as applied.",
		}, []string{"result"}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_replicator_applies_total",
			Help: "Database transactions that applied the rule, by kind: stream (one or more upstream transactions, with their LSN), partial (part of a huge transaction, early), reconcile (every symbol).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "backfill_replicator_apply_latency_seconds",
			Help:    "Time from an upstream transaction's commit (its commit timestamp) to its effects committed.",
			Buckets: latencyBuckets,
		}),
		lagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backfill_replicator_slot_lag_bytes",
			Help: "WAL bytes between the server's current position and the slot's confirmed flush position, refreshed by the active replicator on every status update.",
		}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backfill_replicator_last_applied_timestamp_seconds",
			Help: "Unix time when this process last committed the effects of an upstream transaction; time() minus it is the seconds since the last applied change. 0 before the first.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_replicator_reconnects_total",
			Help: "Replication sessions that ended with an error and were retried (standing by for a slot held by another process does not count).",
		}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_replicator_reconciles_total",
			Help: "Full reconciles (every symbol re-derived) before streaming, by reason: start, reconnect, created (the slot was missing), lost (the slot was invalidated and recreated).",
		}, []string{"reason"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backfill_replicator_leader",
			Help: "1 while this process holds the replication slot and streams, 0 while it stands by or reconnects.",
		}),
	}
	// Every series exists from the start, so rate() and absent() behave.
	for _, op := range operations {
		m.received.WithLabelValues(op)
		m.applied.WithLabelValues(op)
	}
	for _, v := range txnResults {
		m.transactions.WithLabelValues(v)
	}
	for _, v := range applyKinds {
		m.applies.WithLabelValues(v)
	}
	for _, v := range reconcileWhy {
		m.reconciles.WithLabelValues(v)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.received, m.applied, m.transactions, m.applies, m.latency,
		m.lagBytes, m.lastApplied, m.reconnects, m.reconciles, m.leader}
}

// register registers every series on reg, or none: on failure it unregisters what it added.
func (m *metrics) register(reg prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("register replicator metrics: %w (a second replicator in this process needs prometheus.WrapRegistererWith)", err)
			}
			return fmt.Errorf("register replicator metrics: %w", err)
		}
		done = append(done, c)
	}
	return nil
}
