package replicator

import "github.com/jackc/pglogrepl"

// SetConfirmHook makes r consult fn before it moves the slot's flush position to lsn; fn
// returning false keeps the position where it is, as if the process died before confirming.
// Call it before Start.
func SetConfirmHook(r *Replicator, fn func(lsn pglogrepl.LSN) bool) { r.confirmHook = fn }

// ApplyLockKey is the advisory lock every apply takes; a test holding it blocks applies.
const ApplyLockKey = applyLockKey
