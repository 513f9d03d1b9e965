package control

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the control plane's own series; the RPCs themselves are counted by the server's
// backfill_server_requests_total. No labels.
type metrics struct {
	watchers       prometheus.Gauge
	watchEvents    prometheus.Counter
	watchesRefused prometheus.Counter
	watchOverflows prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backfill_control_watchers",
			Help: "WatchBackfill streams open now, each holding one database connection.",
		}),
		watchEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_control_watch_events_total",
			Help: "Run events sent to WatchBackfill streams.",
		}),
		watchesRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_control_watches_refused_total",
			Help: "WatchBackfill streams refused because the most allowed were open.",
		}),
		watchOverflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backfill_control_watch_overflows_total",
			Help: "WatchBackfill streams ended because their client fell too far behind.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.watchers, m.watchEvents, m.watchesRefused, m.watchOverflows} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register control metrics: %w", err)
		}
	}
	return m, nil
}
