package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/market"
)

// SliceSizes is the slice length per timeframe. Each size must be a positive whole number of
// seconds; the grid is anchored at the Unix epoch, so every boundary is a multiple of it.
type SliceSizes map[market.Timeframe]time.Duration

// DefaultSliceSizes are the slices for a provider whose page size is unknown: each stays
// inside one page of 1,000 bars even for symbols that trade around the clock (m15 10 days,
// h1 41, h4 166, d1 1,000, w1 3,650).
func DefaultSliceSizes() SliceSizes { return SliceSizesFor(1000) }

// maxSliceDays caps a slice: ten years, beyond any default window.
const maxSliceDays = 3650

// SliceSizesFor sizes each timeframe's slice to about one provider page of pageLimit bars:
// pageLimit bars of a symbol that trades around the clock (the densest case), cut down to
// whole days, at least one day and at most ten years. One slice is then one request, and a
// window of the default length is one or two slices: per-run overhead stays small, while an
// open slice is refreshed from where its coverage ends, not fetched whole again.
func SliceSizesFor(pageLimit int) SliceSizes {
	const day = 24 * time.Hour
	s := make(SliceSizes, len(market.Timeframes()))
	for _, tf := range market.Timeframes() {
		// In minutes: pageLimit weeks in nanoseconds would overflow.
		days := int64(max(pageLimit, 1)) * int64(tf.Duration()/time.Minute) / int64(day/time.Minute)
		s[tf] = time.Duration(min(max(days, 1), maxSliceDays)) * day
	}
	return s
}

// validate reports a size that is missing, not positive or not whole seconds.
func (s SliceSizes) validate() error {
	for _, tf := range market.Timeframes() {
		d, ok := s[tf]
		if !ok {
			return fmt.Errorf("slice size for %s missing", tf)
		}
		if d <= 0 || d%time.Second != 0 {
			return fmt.Errorf("slice size for %s is %s: want a positive whole number of seconds", tf, d)
		}
	}
	return nil
}

// Slice is a half-open range [From, To) on the grid.
type Slice struct {
	From, To time.Time
}

// Open reports whether the slice still extends past now, so its data can still grow.
func (s Slice) Open(now time.Time) bool { return s.To.After(now) }

// Slices returns, oldest first, the slices of the given size that intersect [from, to): the
// first may start before from and the last may end after to. An empty range gives none. It is
// the Go statement of the grid that sql/enqueue.sql computes; a test keeps the two equal.
func Slices(size time.Duration, from, to time.Time) []Slice {
	if size <= 0 || !to.After(from) {
		return nil
	}
	first := floorDiv(from.Unix(), int64(size/time.Second))
	last := ceilDiv(to.Unix(), int64(size/time.Second)) // exclusive
	out := make([]Slice, 0, last-first)
	for k := first; k < last; k++ {
		out = append(out, Slice{
			From: time.Unix(k*int64(size/time.Second), 0).UTC(),
			To:   time.Unix((k+1)*int64(size/time.Second), 0).UTC(),
		})
	}
	return out
}

// Window returns the slices of a definition's window [now − windowDays, now]. A window day is
// 24 hours (in UTC), whatever now's location and its DST changes, as sql/enqueue.sql counts.
func Window(size time.Duration, windowDays int, now time.Time) []Slice {
	return Slices(size, now.UTC().AddDate(0, 0, -windowDays), now)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// EnqueueResult counts what one planning pass did.
type EnqueueResult struct {
	Inserted  int // new runs
	Requeued  int // failed runs of changed definitions, and succeeded runs of grown windows
	Refreshed int // slices fetched while open, queued again
}

// Enqueue plans every enabled definition at now (a zero now is the database clock): a queued
// run, due at now, for each slice of its window not covered yet (sql/enqueue.sql), and queues
// again every slice fetched while open before now (sql/refresh.sql): what an operator's
// "plan now" asks for. The orchestrator itself refreshes only after a bar closed (see
// Refresh). Planning twice at the same now changes nothing the second time, except that a
// slice fetched while open in between is queued again.
func Enqueue(ctx context.Context, db DB, now time.Time, sizes SliceSizes) (EnqueueResult, error) {
	res, err := enqueue(ctx, db, now, sizes, false)
	if err != nil {
		return res, err
	}
	// Zero instants: the statement's clock, so every slice fetched before now.
	th := make(map[market.Timeframe]RefreshAfter, len(sizes))
	for tf := range sizes {
		th[tf] = RefreshAfter{}
	}
	refreshed, err := Refresh(ctx, db, now, th)
	for _, n := range refreshed {
		res.Refreshed += n
	}
	return res, err
}

// EnqueueChanges plans only the definitions changed since they were last planned (new ones,
// grown windows, re-enabled ones: job_definitions.planned_revision differs from revision), in
// time proportional to the change; it refreshes nothing.
func EnqueueChanges(ctx context.Context, db DB, now time.Time, sizes SliceSizes) (EnqueueResult, error) {
	return enqueue(ctx, db, now, sizes, true)
}

// EnqueueAll plans every enabled definition, without refreshing: what the orchestrator does at
// start, after a slice boundary and on its tick. A pass with nothing to plan writes nothing.
func EnqueueAll(ctx context.Context, db DB, now time.Time, sizes SliceSizes) (EnqueueResult, error) {
	return enqueue(ctx, db, now, sizes, false)
}

func enqueue(ctx context.Context, db DB, now time.Time, sizes SliceSizes, changedOnly bool) (EnqueueResult, error) {
	if err := sizes.validate(); err != nil {
		return EnqueueResult{}, err
	}
	tfs := make([]string, 0, len(sizes))
	secs := make([]int64, 0, len(sizes))
	for _, tf := range slices.Sorted(maps.Keys(sizes)) {
		tfs = append(tfs, string(tf))
		secs = append(secs, int64(sizes[tf]/time.Second))
	}
	var res EnqueueResult
	if err := db.QueryRow(ctx, enqueueSQL, tfs, secs, at(now), changedOnly).Scan(&res.Inserted, &res.Requeued); err != nil {
		return EnqueueResult{}, fmt.Errorf("enqueue slices: %w", err)
	}
	return res, nil
}

// RefreshAfter is, for one timeframe, the latest instant after which a bar closed (settle
// delay included), for stocks on the NYSE calendar and for crypto pairs: a slice fetched while
// open before it may lack that bar. A zero instant means the statement's clock (now).
type RefreshAfter struct {
	Stock, Crypto time.Time
}

// Refresh queues again the successful runs of slices fetched while open whose fetch started
// before their timeframe's RefreshAfter instant, and once more those of slices that have ended
// since (sql/refresh.sql). Timeframes missing from after are not refreshed. A zero now is the
// database clock. It returns how many runs it queued, by timeframe.
func Refresh(ctx context.Context, db DB, now time.Time, after map[market.Timeframe]RefreshAfter) (map[market.Timeframe]int, error) {
	tfs := make([]string, 0, len(after))
	stock := make([]*time.Time, 0, len(after))
	crypto := make([]*time.Time, 0, len(after))
	for _, tf := range slices.Sorted(maps.Keys(after)) {
		tfs = append(tfs, string(tf))
		stock = append(stock, at(after[tf].Stock))
		crypto = append(crypto, at(after[tf].Crypto))
	}
	rows, err := db.Query(ctx, refreshSQL, tfs, stock, crypto, at(now))
	if err != nil {
		return nil, fmt.Errorf("refresh open slices: %w", err)
	}
	out := make(map[market.Timeframe]int)
	var tf string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&tf, &n}, func() error {
		out[market.Timeframe(tf)] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("refresh open slices: %w", err)
	}
	return out, nil
}
