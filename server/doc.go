// Package server is the service's HTTP surface. For now it serves the health endpoints that
// scripts and orchestrators wait on: /healthz (the process is up) and /readyz (every readiness
// check passes, e.g. the database is reachable and migrated).
package server
