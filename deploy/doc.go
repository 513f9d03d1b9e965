// Package deploy holds backfill's monitoring assets and the tests that keep them true; it has no
// code of its own.
//
//   - prometheus/prometheus.yml scrapes /metrics on the API port (127.0.0.1:54321 for
//     `backfill dev`) and loads prometheus/alerts.yml, the alert rules, which
//     prometheus/alerts_test.yml unit-tests with promtool.
//   - grafana/provisioning/ provisions a Prometheus data source with the fixed uid
//     "backfill-prometheus" and a file provider for grafana/dashboards/backfill.json.
//
// The tests run promtool on the files, then build the backfill binary, run `backfill dev` with
// the synthetic provider (injecting errors), scrape it with a real Prometheus loaded with the
// shipped configuration and rules, drive a backfill through sync-user-symbols, and require every
// dashboard query to return data. They need Debian's prometheus package (`make prometheus`).
package deploy
