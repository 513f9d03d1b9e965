// Package replicator derives backfill job definitions from user_symbol_tracking over logical
// replication, instead of a trigger.
//
// It streams the table's changes from a permanent pgoutput slot (publication backfill_tracking,
// protocol version 1, so it only ever sees committed transactions, in commit order) and, for
// every symbol a change touched, re-derives that symbol's job definitions from the current
// tracking rows with one SQL statement (sql/apply.sql). The definitions are therefore a
// function of the tracking rows, whatever the order or number of deliveries.
//
// What it guarantees, in plain words:
//
//   - At-least-once delivery. The slot's confirmed position moves only after the effects of a
//     transaction are committed, so after any crash, kill or lost connection the slot replays
//     what might not have been applied.
//   - Idempotent effects. Applying a change twice, late, or for more symbols than it touched
//     gives the same definitions, because the statement reads the tracking rows as they are now
//     rather than the change itself.
//   - The applied LSN is recorded with the effects. The end LSN of the last applied upstream
//     transaction is written to replication_progress in the same database transaction as the
//     job definitions, and a restart skips transactions at or below it. At-least-once delivery
//     plus idempotent effects plus this record gives exactly-once effects.
//   - A lost slot means a full reconcile. Before it streams, every session re-derives every
//     symbol's definitions: on start, on every reconnect, when it created the slot and when the
//     slot was dropped or invalidated (then it drops and recreates it). Rows written while
//     nothing listened are never missed.
//   - One active consumer per slot. PostgreSQL lets one walsender hold a slot; other replicas
//     (every `backfill serve` runs one) get "replication slot ... is active for PID n"
//     (55006), stand by, and retry with a backoff capped at Config.MaxBackoff, so one of them
//     takes over within seconds when the active one dies. Leadership is in [Status] and the
//     backfill_replicator_leader metric.
//
// Definitions made by the seed or by hand (origin 'seed' or 'manual') are never touched; a
// definition whose origin is set to 'tracking' (`UPDATE job_definitions SET origin = 'tracking'
// WHERE ...`) is handed over and from then on follows the tracking rows. window_days of an
// existing definition is never changed, so SQL edits stick. A definition no tracking row asks
// for any more is disabled (disabled_reason 'no longer tracked'); its bars stay.
//
// Every apply sends a notification on [NotifyChannel] in the same transaction, so the
// orchestrator can LISTEN and plan as soon as definitions change.
//
// The replication connection must be a direct connection to PostgreSQL (the URL with
// replication=database): a transaction pooler such as Supavisor or PgBouncer in transaction
// mode cannot carry it. On Supabase that is db.<ref>.supabase.co:5432, not the pooler URL. The
// role needs the REPLICATION attribute (Supabase's postgres role has it).
package replicator
