// Package orchestrator plans backfill work and runs it: it cuts every enabled job definition's
// window into slices on a fixed UTC grid, enqueues one job_runs row per slice not yet covered,
// lets workers claim runs highest live priority first, writes the fetched bars together with
// the coverage and the run's success in one transaction, and retries, fails or rescues runs.
//
// # Slices
//
// Slice boundaries are multiples of a per-timeframe size counted from the Unix epoch
// (1970-01-01T00:00:00Z), never from now(), so the same definition always yields the same
// slices and job_runs' unique key (job_def_id, slice_from, slice_to) makes enqueueing
// idempotent. The sizes default to about one provider page ([SliceSizesFor] the provider's
// page limit, see [Paged]): a page of bars of a symbol trading around the clock, in whole days,
// capped at ten years. For Alpaca and the synthetic provider (10,000 bars) that is m15 104 days,
// h1 416, h4 1,666, d1 and w1 3,650, so a default window is one or two slices and one slice is
// one request. The slices of a window [now − window_days, now] are those that intersect it;
// the newest ends after now (it is "open"). A run fetches only the part of its slice inside
// the window as planned (job_runs.window_from): the oldest slice usually starts long before
// the window does.
//
// # Coverage
//
// A slice whose fetch succeeded is covered even when the provider returned no bars (nights,
// weekends, holidays). coverage_status.covered keeps the exact union of fetched ranges; a
// slice fetched while still open is covered only up to the moment it was fetched. Closed,
// covered slices are never queued again, unless the window grows to take more of them. A failed
// run stays failed until its definition changes (re-enabled, priority raised); the next pass
// after that queues it again with its attempts reset.
//
// Planning writes only what is new ([EnqueueAll], [EnqueueChanges]): slices without a run are
// inserted, and a pass woken by a change plans only the definitions whose revision differs from
// the one last planned (job_definitions.planned_revision), so its cost follows the change.
//
// # Refresh
//
// An open slice is queued again ([Refresh]) only once a bar of its timeframe has closed since
// its last fetch started: the orchestrator computes, per timeframe and calendar (NYSE, or 24/7
// for crypto pairs), the end of the newest bar on the provider's grid plus Config.Settle, and
// re-queues the runs fetched before it; it wakes at the next bar close. During a session that is
// right after each bar boundary, once more after the close, never at night, on weekends or
// holidays. A slice that has ended since its fetch started is queued once more for its tail. A
// refresh fetches only from one bar before the end of the covered stretch (that bar may have
// been forming). Without a grid every open slice is refreshed on every tick.
//
// # Claim order
//
// [Claim] and [ClaimBatch] take queued, due runs with FOR UPDATE SKIP LOCKED in this order,
// read from one index (job_runs_claim_idx), so a claim never sorts the queue:
//
//  1. a run that fetches a range for the first time (first bars, history, repairs, operators'
//     retries) before any refresh (triggered_by 'refresh'), whatever their priorities;
//  2. then the definition's priority as it is now (job_runs.claim_priority, kept equal to it by a
//     trigger while the definition is enabled, NULL while it is disabled: not claimable);
//  3. then the least recently fetched (job_runs.last_fetched_at; never fetched first);
//  4. then the newest slice, then the id.
//
// The starvation bound this gives: a new definition's first bars at priority P wait for the
// calls in flight and for the first-time fetches of priority ≥ P queued before them, never for
// refreshes, however many: refreshes come back at every bar close and could otherwise fill the
// budget for ever.
//
// # Batches
//
// [ClaimBatch] takes the first run in the claim order and the due runs of the same timeframe,
// slice and kind with it, as many as the provider serves in one request (Config.MaxBatch) and
// fewer when their bars would exceed Config.BatchBars. Runs whose ranges start close together
// share one multi-symbol request (marketdata.MultiProvider) for the union of their ranges; a
// symbol the provider refuses fails alone. [WriteBatch] then stores every finished run of the
// batch with one statement, and [HeartbeatBatch] renews all their leases with one. The
// orchestrator claims a batch under an advisory lock of its slice (sql/claim_lock.sql), so that
// processes claiming at once do not split one bar close's refreshes into several requests, and
// lets only Config.FetchConcurrency batches call the provider at once, so that under a request
// budget each batch finishes soon after it starts instead of all of them at the end.

// # Failures and leases
//
// [Write] and [WriteBatch] store finished slices: bars, coverage and success in one statement.
// [Fail] applies the retry rules: retryable errors back off exponentially with jitter up to
// MaxAttempts; a 429 waits Retry-After without using an attempt; a permanent error fails the
// run and disables the definition with disabled_reason; a shutdown puts the run back at once.
//
// # Runs
//
// A claimed run is leased to its owner until lease_expires_at; the worker's heartbeat pushes
// the lease forward and [Reap] returns runs whose lease lapsed (a killed process) to the queue.
// Every write of a run's outcome checks that the run is still running under the same owner
// and attempt, so a worker that lost its lease cannot record a success or a failure.
//
// # The worker pool
//
// [Orchestrator] runs all of it (meant for `backfill serve` and `backfill dev`): Concurrency
// batches at once, fed by one dispatcher, which plans on start, on every notification on
// replicator.NotifyChannel (a LISTEN connection of its own, reconnected with backoff) and every
// Tick; refreshes after every bar close; claims as soon as a worker is free; reaps expired
// leases every Lease; and sleeps until the earliest delayed retry falls due. Several processes can share one database: the claim
// never hands a run to two of them.
//
// # One clock
//
// Every statement that stamps or compares a time (planning, claims, heartbeats, writes,
// failures and retries, reaping, milestones, the queue gauges) takes the clock as a parameter
// in the shape coalesce($n::timestamptz, now()), and the exported functions take it as their
// now argument: a zero now is NULL there, i.e. the database's clock. [Config.Now] nil, the
// default, means the database clock everywhere: one clock for every process and replica that
// shares the database, whatever their own clocks say. A clock set there (a test, a replay) is
// used by every statement instead, never by some of them: a rule that compares a time one
// statement stamped with a time another computed (a slice refreshed only while it was claimed
// before it ended) must see both on one timeline. Go timers (ticks, polls, heartbeat and reap
// intervals) measure durations and are not clocks in this sense.
//
// Rules that compare a definition's change with a run's (a failed run is retried once its
// definition changed after the failure; the covered milestone counts runs failed since the
// request) use the definition's revision counters, not times: those changes are stamped by
// other writers (the replicator, the control plane, psql) on clocks of their own. Only the
// milestone durations still subtract the request's requested_at, stamped by whoever made the
// request (the replicator uses the database clock).
//
// Every query runs through the small [DB] interface (a pool, a connection or a caller's
// pgx.Tx); the SQL lives in sql/*.sql, embedded.
package orchestrator
