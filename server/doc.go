// Package server is the service's HTTP surface, on one handler and one port: the Supabase
// function path (/functions/v1/sync-user-symbols), symbolsync.v1.SymbolSyncService and, when
// configured, backfill.v1.ControlService (the operators' control plane, package control) over
// Connect, gRPC and gRPC-Web, gRPC health and reflection, /healthz, /readyz and /metrics.
//
// Every RPC passes the same request gate, which authenticates the caller before its message is
// read; ControlService adds a second gate that admits only service_role tokens and sb_secret_
// keys. Errors of the packages behind the handlers become Connect codes here and nowhere else.
package server
