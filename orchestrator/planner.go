package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

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
	Inserted int // new runs
	Requeued int // runs set back from success to queued: open slices and slices that closed
}

// Enqueue plans every enabled definition at now (a zero now is the database clock): a queued
// run, due at now, for each slice of its window not covered yet (sql/enqueue.sql), and the
// refresh of slices fetched while open. It is idempotent: planning twice at the same now
// changes nothing the second time, except that a slice fetched while open is queued again.
func Enqueue(ctx context.Context, db DB, now time.Time, sizes SliceSizes) (EnqueueResult, error) {
	return enqueue(ctx, db, now, sizes, true, 0)
}

// EnqueueChanges is Enqueue without the refresh of open slices: what a change of the
// definitions asks for (new definitions, grown windows, re-enabled ones), so that a burst of
// changes does not fetch every open slice again each time.
func EnqueueChanges(ctx context.Context, db DB, now time.Time, sizes SliceSizes) (EnqueueResult, error) {
	return enqueue(ctx, db, now, sizes, false, 0)
}

// enqueue plans; with refresh, slices fetched while open are queued again once their last
// fetch finished at least refreshAge ago.
func enqueue(ctx context.Context, db DB, now time.Time, sizes SliceSizes, refresh bool, refreshAge time.Duration) (EnqueueResult, error) {
	if err := sizes.validate(); err != nil {
		return EnqueueResult{}, err
	}
	tfs := make([]string, 0, len(sizes))
	secs := make([]int64, 0, len(sizes))
	for _, tf := range slices.Sorted(maps.Keys(sizes)) {
		tfs = append(tfs, string(tf))
		secs = append(secs, int64(sizes[tf]/time.Second))
	}
	rows, err := db.Query(ctx, enqueueSQL, tfs, secs, at(now), refresh, refreshAge.Seconds())
	if err != nil {
		return EnqueueResult{}, fmt.Errorf("enqueue slices: %w", err)
	}
	defer rows.Close()
	var res EnqueueResult
	for rows.Next() {
		var inserted bool
		if err := rows.Scan(&inserted); err != nil {
			return EnqueueResult{}, fmt.Errorf("enqueue slices: %w", err)
		}
		if inserted {
			res.Inserted++
		} else {
			res.Requeued++
		}
	}
	if err := rows.Err(); err != nil {
		return EnqueueResult{}, fmt.Errorf("enqueue slices: %w", err)
	}
	return res, nil
}
