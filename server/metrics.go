package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series. Labels are bounded: procedure names come from the
// proto (or the fixed function path), codes from the Connect code set or HTTP status classes.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_server_requests_total",
			Help: "Requests handled, by procedure, protocol (connect, grpc, grpcweb, function) and result code.",
		}, []string{"procedure", "protocol", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backfill_server_request_duration_seconds",
			Help: "Time to handle a request, by procedure and protocol.",
			// From well under a millisecond (validation errors) to the request timeout.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"procedure", "protocol"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}
