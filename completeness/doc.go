// Package completeness checks that the stored bars are there, per (definition, session), and
// heals the holes it finds.
//
// coverage_status.covered records which time ranges were fetched; that is not the same as the
// bars being stored. The checker compares, for each enabled definition, the sessions of its
// window (package market's calendar) with the bars stored for them by the configured provider,
// on that provider's bar grid:
//
//   - A session is judged once it has ended (its last bar closed): the session in progress is
//     left to the refresh. Expected is the number of such sessions in the window.
//   - Fetched: coverage_status.covered holds every bar start of the session.
//   - Complete: for an exact grid (the synthetic provider returns a bar at every start), the
//     session holds exactly its bar starts: as many bars as starts, the first and the last
//     where the grid puts them. For a real provider (Alpaca, Massive) a session is complete
//     when it holds at least one bar: real feeds such as IEX skip intervals without a trade,
//     so a missing quarter-hour is not a hole, while a whole session without a bar is. Bars
//     outside the session's hours (before its first start or after its last) make it
//     suspicious: counted and reported, not fetched again.
//   - A hole is a fetched session that is not complete (missing: no bar; partial: some bars
//     missing from an exact grid), or an ended session that was not fetched because the run
//     that should have fetched it failed for good (failed). A session not fetched for any
//     other reason is pending: the planner has it queued or will queue it.
//
// Holes heal: each one found gets a repair run, a job run (triggered_by 'repair') of exactly
// its session's bar starts, merged with the holes next to it; the orchestrator executes it like
// any other run. A hole still there after MaxRepairs repairs that succeeded is given up: it stays
// in coverage_holes (state given_up, with the reason), in the gauge and in `backfill verify`,
// and is not queued again until an operator asks (`backfill verify --repair`). A definition
// disabled by a permanent provider error is not checked: its failed run and disabled_reason
// already say why.
//
// # Cost
//
// A check of one definition reads its window's bars through the bars' key index as one row per
// session (count, first, last), its coverage and its unfinished runs. The periodic check does
// not read every bar each time: it checks the definitions whose bars changed since it last
// looked (coverage_dirty, marked by the writer in the statement that writes bars, and by
// triggers when bars are deleted or truncated, or when a run fails for good), the definitions
// whose repair runs finished, and a rolling sweep of the least recently checked ones, sized so
// that every enabled definition is checked at least once per SweepEvery. Passes of several
// processes exclude each other with an advisory lock.
//
// # One clock
//
// As in package orchestrator: Config.Now, when set, is the clock of every statement and of the
// calendar's "has this session ended"; nil means the database clock, read once per pass.
package completeness
