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
// slice fetched while still open is covered only up to the moment it was fetched, so the
// planner re-queues it on the next tick while the definition is enabled, and once more after
// it closes, which fills its tail. Such a refresh fetches only from one bar before the end of
// the covered stretch (that bar may have been forming), not the whole slice. Closed, covered
// slices are never queued again, unless the window grows to take more of them. A failed
// run stays failed until its definition changes (re-enabled, priority raised); the next pass
// after that queues it again with its attempts reset.
//
// # Claims, failures and leases
//
// [Claim] takes queued, due runs of enabled definitions with FOR UPDATE SKIP LOCKED, ordered
// by the definition's priority as it is at that moment (watchlist 300 > chart view 200 >
// search 100), then newest slice first. [Write] stores a finished slice with one statement:
// bars, coverage and success.
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
// [Orchestrator] runs all of it (meant for `backfill serve` and `backfill dev`): Concurrency workers
// fed by one dispatcher, which plans on start, on every notification on
// replicator.NotifyChannel (a LISTEN connection of its own, reconnected with backoff) and every
// Tick; claims as soon as a worker is free; reaps expired leases every Lease; and sleeps until
// the earliest delayed retry falls due. Several processes can share one database: the claim
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
