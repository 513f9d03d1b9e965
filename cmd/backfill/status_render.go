package main

// The pure half of `backfill status`: what the control plane reported, turned into rows and the
// rows into text. Nothing here does I/O or reads a clock; status.go feeds it.

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
)

// statusView is what `backfill status` knows of the backfill: job definitions, their runs and
// the bar counts, as the control plane last reported them.
type statusView struct {
	defs map[string]*backfillv1.JobDefinition         // by definition id
	runs map[string]map[string]*backfillv1.JobRun     // by definition id, then run id
	bars map[statusBarsKey]*backfillv1.SymbolCoverage // by symbol and timeframe
}

type statusBarsKey struct {
	symbol    string
	timeframe backfillv1.Timeframe
}

func newStatusView() *statusView {
	return &statusView{
		defs: map[string]*backfillv1.JobDefinition{},
		runs: map[string]map[string]*backfillv1.JobRun{},
		bars: map[statusBarsKey]*backfillv1.SymbolCoverage{},
	}
}

func (v *statusView) putDefinition(d *backfillv1.JobDefinition) { v.defs[d.GetId()] = d }

// putRun stores r, a whole row as a list call returned it.
func (v *statusView) putRun(r *backfillv1.JobRun) {
	byID := v.runs[r.GetJobDefId()]
	if byID == nil {
		byID = map[string]*backfillv1.JobRun{}
		v.runs[r.GetJobDefId()] = byID
	}
	byID[r.GetId()] = r
}

// applyEvent applies a WatchBackfill event to the run it reports and returns the run as the view
// has it now, or nil when the view holds a newer state already: events that arrive while a load
// runs are applied after it, and the load may have read a later change.
//
// An event may carry only part of a run — the server sends what its trigger knows (status,
// attempt, rows written, error code, the slice) and the event's time, no error message and no
// row timestamps — so the rest is kept from what the view had. The event's time stands in for
// the run's updated_at: both come from the database clock, and a change's updated_at (its
// transaction's start) is never after the event's time (just before its commit).
func (v *statusView) applyEvent(ev *backfillv1.WatchBackfillResponse) *backfillv1.JobRun {
	in := ev.GetRun()
	at := in.GetUpdatedAt()
	if at == nil {
		at = ev.GetAt()
	}
	old := v.runs[in.GetJobDefId()][in.GetId()]
	if old != nil && at != nil && old.GetUpdatedAt() != nil && old.GetUpdatedAt().AsTime().After(at.AsTime()) {
		return nil
	}
	r := proto.CloneOf(in)
	if old != nil {
		r = proto.CloneOf(old)
		proto.Merge(r, in)
		// Zeros are news too: Merge would keep the old values.
		r.Attempt, r.RowsWritten, r.ErrorCode = in.GetAttempt(), in.GetRowsWritten(), in.GetErrorCode()
		if in.GetErrorMessage() != "" || in.GetErrorCode() != old.GetErrorCode() || in.GetErrorCode() == "" {
			// A new error's message is not in the event; the old one would be wrong.
			r.ErrorMessage = in.GetErrorMessage()
		}
	}
	r.UpdatedAt = at
	if old == nil && r.GetCreatedAt() == nil && ev.GetPreviousStatus() == backfillv1.RunStatus_RUN_STATUS_UNSPECIFIED {
		r.CreatedAt = at // a new run: windowCoverage tells new work by it
	}
	v.putRun(r)
	return r
}

func (v *statusView) putCoverage(symbol string, rows []*backfillv1.SymbolCoverage) {
	for _, c := range rows {
		v.bars[statusBarsKey{symbol, c.GetTimeframe()}] = c
	}
}

// symbols returns the tickers the view has definitions or bars of, sorted.
func (v *statusView) symbols() []string {
	seen := map[string]bool{}
	for _, d := range v.defs {
		seen[d.GetSymbol()] = true
	}
	for k := range v.bars {
		seen[k.symbol] = true
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// statusRow is one line of the view: a job definition (or a timeframe that has bars but no
// definition) with its progress.
type statusRow struct {
	Symbol    string
	Timeframe backfillv1.Timeframe
	// HasJob is false for a timeframe with bars but no job definition.
	HasJob bool
	// Coverage is the share of the definition's window that is fetched, in [0, 1]; see
	// [windowCoverage].
	Coverage float64
	// Bars is the number of distinct bar timestamps stored (GetSymbolCoverage's bars_count).
	Bars                    int64
	Queued, Running, Failed int
	// LastError is the error of the run that failed or retried most recently, "" when none.
	LastError      string
	Disabled       bool
	DisabledReason string
}

// Complete reports whether the whole window is fetched.
func (r statusRow) Complete() bool { return r.HasJob && r.Coverage >= 1 }

// rows returns the view's rows at now, by symbol, then timeframe from short to long.
func (v *statusView) rows(now time.Time) []statusRow {
	var out []statusRow
	withJob := map[statusBarsKey]bool{}
	for id, d := range v.defs {
		out = append(out, v.row(id, now))
		withJob[statusBarsKey{d.GetSymbol(), d.GetTimeframe()}] = true
	}
	for k, c := range v.bars {
		// A timeframe without a definition is shown only when it has bars: the coverage RPC
		// answers every timeframe of a known symbol.
		if !withJob[k] && c.GetBarsCount() > 0 {
			out = append(out, statusRow{Symbol: k.symbol, Timeframe: k.timeframe, Bars: c.GetBarsCount()})
		}
	}
	slices.SortFunc(out, func(a, b statusRow) int {
		return cmp.Or(cmp.Compare(a.Symbol, b.Symbol), cmp.Compare(a.Timeframe, b.Timeframe))
	})
	return out
}

// row is the row of definition defID at now; a definition the view does not know yet gives a
// row with HasJob false.
func (v *statusView) row(defID string, now time.Time) statusRow {
	d, ok := v.defs[defID]
	if !ok {
		return statusRow{}
	}
	runs := v.runs[defID]
	r := statusRow{
		Symbol:         d.GetSymbol(),
		Timeframe:      d.GetTimeframe(),
		HasJob:         true,
		Coverage:       windowCoverage(d, runs, now),
		Bars:           v.bars[statusBarsKey{d.GetSymbol(), d.GetTimeframe()}].GetBarsCount(),
		Disabled:       !d.GetEnabled(),
		DisabledReason: d.GetDisabledReason(),
	}
	var lastErrAt time.Time
	for _, run := range runs {
		switch run.GetStatus() {
		case backfillv1.RunStatus_RUN_STATUS_QUEUED:
			r.Queued++
		case backfillv1.RunStatus_RUN_STATUS_RUNNING:
			r.Running++
		case backfillv1.RunStatus_RUN_STATUS_FAILED:
			r.Failed++
		}
		// Queued runs keep the error of the attempt that is being retried; a success clears it.
		if msg := runError(run); msg != "" {
			at, _ := tsTime(run.GetUpdatedAt())
			if r.LastError == "" || at.After(lastErrAt) {
				r.LastError, lastErrAt = msg, at
			}
		}
	}
	return r
}

func runError(r *backfillv1.JobRun) string {
	switch {
	case r.GetErrorMessage() == "" && r.GetErrorCode() == "":
		return ""
	case r.GetErrorCode() == "":
		return r.GetErrorMessage()
	case r.GetErrorMessage() == "":
		return r.GetErrorCode()
	}
	return r.GetErrorCode() + ": " + r.GetErrorMessage()
}

// windowCoverage is the share of d's window, [now − window_days, now), fetched by its runs, in
// [0, 1].
//
// Why from the runs and not from GetSymbolCoverage's coverage_days: coverage_days is latest bar
// minus earliest bar, and markets close at night, on weekends and on holidays, so it falls short
// of the window even when every slice is fetched (and bars from an older, wider window push it
// over). The orchestrator's own notion of done is "every slice of the window fetched", a fetched
// slice counting even when it held no bars — and ListJobRuns lists exactly those slices. So: the
// union of the slices whose run succeeded, clipped to the window, over the window's length. A
// slice is written in one transaction, so there is nothing finer to show than whole slices; one
// counts whole once fetched (the planner refreshes the open one on every tick).
//
// That refresh puts the open slice's run — with page-sized slices often the whole window — back
// to queued for a moment on every tick, which would make a finished bar drop. The definition's
// covered_at, set by the orchestrator once no run of the requested window was left queued,
// running or failed, pins it at 100% unless a run in the window failed since or new work came
// after it: a queued or running run created after covered_at (the window grew, a new slice
// opened).
func windowCoverage(d *backfillv1.JobDefinition, runs map[string]*backfillv1.JobRun, now time.Time) float64 {
	days := d.GetWindowDays()
	if days <= 0 {
		return 0
	}
	start, end := now.Add(-time.Duration(days)*24*time.Hour), now
	coveredAt, pinned := tsTime(d.GetCoveredAt())
	type span struct{ from, to time.Time }
	var spans []span
	for _, r := range runs {
		from, okFrom := tsTime(r.GetSliceFrom())
		to, okTo := tsTime(r.GetSliceTo())
		if !okFrom || !okTo {
			continue
		}
		from, to = later(from, start), earlier(to, end)
		if !from.Before(to) {
			continue // outside the window
		}
		switch r.GetStatus() {
		case backfillv1.RunStatus_RUN_STATUS_SUCCESS:
			spans = append(spans, span{from, to})
		case backfillv1.RunStatus_RUN_STATUS_FAILED:
			pinned = false
		case backfillv1.RunStatus_RUN_STATUS_QUEUED, backfillv1.RunStatus_RUN_STATUS_RUNNING:
			if created, ok := tsTime(r.GetCreatedAt()); ok && created.After(coveredAt) {
				pinned = false
			}
		}
	}
	if pinned {
		return 1
	}
	// Slices of one grid never overlap, but a changed slice size leaves runs of two grids.
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	var covered time.Duration
	var cur span
	for i, s := range spans {
		switch {
		case i == 0:
			cur = s
		case !s.from.After(cur.to):
			cur.to = later(cur.to, s.to)
		default:
			covered += cur.to.Sub(cur.from)
			cur = s
		}
	}
	if len(spans) > 0 {
		covered += cur.to.Sub(cur.from)
	}
	return min(1, float64(covered)/float64(end.Sub(start)))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// tsTime converts a protobuf timestamp; ok is false when it is absent (AsTime would say 1970).
func tsTime(ts *timestamppb.Timestamp) (time.Time, bool) {
	if ts == nil {
		return time.Time{}, false
	}
	return ts.AsTime(), true
}

// statusStyle is how the view is written.
type statusStyle struct {
	// plain: no escape sequences and ASCII only, for pipes, files and logs.
	plain bool
	// color: ANSI colours (a terminal, NO_COLOR unset).
	color bool
	// width: the terminal's columns; 0 means unbounded (plain output).
	width int
	// height: the terminal's lines; 0 means unbounded.
	height int
}

const (
	statusBarWidth      = 20
	statusPlainErrWidth = 160 // a plain line's error, in runes
	ansiReset           = "\x1b[0m"
	ansiBold            = "\x1b[1m"
	ansiRed             = "\x1b[31m"
	ansiGreen           = "\x1b[32m"
	ansiYellow          = "\x1b[33m"
	ansiDim             = "\x1b[2m"
	// ansiHome moves the cursor to the top left; ansiClearLine clears to the end of the line and
	// ansiClearBelow to the end of the screen. Overwriting in place instead of clearing the whole
	// screen first keeps the redraw from flickering.
	ansiHome       = "\x1b[H"
	ansiClearLine  = "\x1b[K"
	ansiClearBelow = "\x1b[J"
)

// partialBlocks are the left-aligned eighth blocks, so a bar moves in eighths of a cell.
var partialBlocks = []rune{' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'}

// progressBar draws frac (clamped to [0, 1]) in width cells: '#' and '-' when ascii, block
// characters otherwise. A bar is full only at 1: 99.99% leaves a cell short.
func progressBar(frac float64, width int, ascii bool) string {
	if width <= 0 {
		return ""
	}
	if math.IsNaN(frac) || frac < 0 {
		frac = 0
	}
	frac = min(frac, 1)
	if ascii {
		n := int(frac * float64(width))
		if frac < 1 && n == width {
			n--
		}
		return strings.Repeat("#", n) + strings.Repeat("-", width-n)
	}
	eighths := int(frac * float64(width*8))
	if frac < 1 && eighths == width*8 {
		eighths--
	}
	full, part := eighths/8, eighths%8
	var b strings.Builder
	b.WriteString(strings.Repeat("█", full))
	rest := width - full
	if part > 0 {
		b.WriteRune(partialBlocks[part])
		rest--
	}
	b.WriteString(strings.Repeat("░", rest))
	return b.String()
}

// percent labels frac as a whole percentage, rounded down so that 100% means done.
func percent(frac float64) string {
	if math.IsNaN(frac) || frac < 0 {
		frac = 0
	}
	p := int(math.Floor(min(frac, 1) * 100))
	if frac < 1 && p == 100 {
		p = 99
	}
	return fmt.Sprintf("%3d%%", p)
}

// truncate puts s on one line and cuts it to at most n runes, marking the cut.
func truncate(s string, n int, ascii bool) string {
	s = strings.Join(strings.Fields(s), " ")
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	mark := "…"
	if ascii {
		mark = "..."
	}
	keep := n - utf8.RuneCountInString(mark)
	if keep <= 0 {
		return string([]rune(mark)[:n])
	}
	return string([]rune(s)[:keep]) + mark
}

// timeframeName is the short name the API and the database use: m15, h1, h4, d1, w1.
func timeframeName(tf backfillv1.Timeframe) string {
	if tf == backfillv1.Timeframe_TIMEFRAME_UNSPECIFIED {
		return "?"
	}
	return strings.ToLower(strings.TrimPrefix(tf.String(), "TIMEFRAME_"))
}

func runStatusName(s backfillv1.RunStatus) string {
	if s == backfillv1.RunStatus_RUN_STATUS_UNSPECIFIED {
		return "new"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "RUN_STATUS_"))
}

func (st statusStyle) paint(code, s string) string {
	if !st.color || s == "" {
		return s
	}
	return code + s + ansiReset
}

// renderTable writes rows as aligned lines: a header, then one line per row. Each line fits
// st.width (when set) by shortening the error column, and the bar when the screen is narrow.
func renderTable(rows []statusRow, st statusStyle) []string {
	symW := len("SYMBOL")
	for _, r := range rows {
		symW = max(symW, utf8.RuneCountInString(r.Symbol))
	}
	barW := statusBarWidth
	brackets := 0
	if st.plain {
		brackets = 2
	}
	// symbol, tf, coverage (bar + " 100%"), bars, queued, running, failed, each followed by two
	// spaces; what is left is the error's.
	fixed := func() int { return symW + 2 + 3 + 2 + barW + brackets + 5 + 2 + 9 + 2 + 6 + 2 + 7 + 2 + 6 + 2 }
	errW := statusPlainErrWidth
	if st.width > 0 {
		for barW > 5 && st.width-fixed() < 20 {
			barW--
		}
		errW = st.width - fixed()
	}
	covW := barW + brackets + 5
	header := fmt.Sprintf("%-*s  %-3s  %-*s  %9s  %6s  %7s  %6s  %s", symW, "SYMBOL", "TF", covW, "COVERAGE", "BARS", "QUEUED", "RUNNING", "FAILED", truncate("LAST ERROR", errW, st.plain))
	lines := []string{st.paint(ansiBold, strings.TrimRight(header, " "))}
	for _, r := range rows {
		var cov string
		if r.HasJob {
			bar := progressBar(r.Coverage, barW, st.plain)
			if st.plain {
				bar = "[" + bar + "]"
			}
			switch {
			case r.Failed > 0 || r.Disabled:
				bar = st.paint(ansiRed, bar)
			case r.Complete():
				bar = st.paint(ansiGreen, bar)
			default:
				bar = st.paint(ansiYellow, bar)
			}
			cov = bar + " " + percent(r.Coverage)
		} else {
			cov = st.paint(ansiDim, fmt.Sprintf("%-*s", covW, "no job"))
		}
		note := r.LastError
		if r.Disabled {
			note = strings.TrimSuffix("disabled: "+cmp.Or(r.DisabledReason, "by hand")+"; "+note, "; ")
		}
		failed := fmt.Sprintf("%6d", r.Failed)
		if r.Failed > 0 {
			failed = st.paint(ansiRed, failed)
		}
		line := fmt.Sprintf("%-*s  %-3s  %s  %9d  %6d  %7d  %s  %s", symW, r.Symbol, timeframeName(r.Timeframe), cov,
			r.Bars, r.Queued, r.Running, failed, st.paint(ansiRed, truncate(note, errW, st.plain)))
		lines = append(lines, strings.TrimRight(line, " "))
	}
	return lines
}

// renderSummary is the line under the table: totals over rows.
func renderSummary(rows []statusRow) string {
	var jobs, done, queued, running, failed int
	var bars int64
	for _, r := range rows {
		bars += r.Bars
		if !r.HasJob {
			continue
		}
		jobs++
		queued += r.Queued
		running += r.Running
		failed += r.Failed
		if r.Complete() {
			done++
		}
	}
	return fmt.Sprintf("%d/%d jobs complete, %d queued, %d running, %d failed, %d bars", done, jobs, queued, running, failed, bars)
}

// renderEmpty is what the view says when there is nothing to show.
func renderEmpty(symbol string) string {
	if symbol == "" {
		return "no job definitions yet (track a symbol with: backfill sync SYMBOL)"
	}
	return fmt.Sprintf("no job definitions for %s yet (track it with: backfill sync %s)", symbol, symbol)
}

// renderScreen is one frame of the terminal view: title, table, summary and the recent events,
// drawn over the previous frame from the top left. It never has more than st.height lines (when
// set), and no newline after the last, so the terminal never scrolls: a frame that scrolled
// would leave the next one drawn from the wrong line. Rows that do not fit are left out,
// complete ones first, and counted; recent events show only where there is room.
func renderScreen(title, symbol string, rows []statusRow, recent []string, st statusStyle) string {
	// A line longer than the screen would wrap and take two: cut every line to the width (the
	// table's lines fit already).
	fit := func(s string) string {
		if st.width > 0 {
			return truncate(s, st.width, st.plain)
		}
		return s
	}
	lines := []string{st.paint(ansiBold, fit(title)), ""}
	if len(rows) == 0 {
		lines = append(lines, fit(renderEmpty(symbol)))
	} else {
		shown, hidden := rows, 0
		// Title, blank, header, blank and summary take 5 lines; a line saying rows are left out
		// takes one more.
		if st.height > 0 {
			if shown, hidden = fitRows(rows, st.height-5); hidden > 0 {
				shown, hidden = fitRows(rows, st.height-6)
			}
		}
		lines = append(lines, renderTable(shown, st)...)
		if hidden > 0 {
			lines = append(lines, st.paint(ansiDim, fit(fmt.Sprintf("… %d more rows (watch one SYMBOL, or a taller terminal, to see them)", hidden))))
		}
		lines = append(lines, "", fit(renderSummary(rows)))
	}
	if room := st.height - len(lines) - 2; st.height == 0 || room > 0 {
		if st.height > 0 {
			recent = recent[max(0, len(recent)-room):]
		}
		if len(recent) > 0 {
			lines = append(lines, "", st.paint(ansiDim, "recent events:"))
			for _, e := range recent {
				lines = append(lines, st.paint(ansiDim, fit(e)))
			}
		}
	}
	var b strings.Builder
	b.WriteString(ansiHome)
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(l)
		b.WriteString(ansiClearLine)
	}
	b.WriteString(ansiClearBelow)
	return b.String()
}

// fitRows returns at most room of rows (at least one), in their order, keeping jobs still in
// progress (or failed, or disabled) before complete ones and bars without a job, and how many it
// left out.
func fitRows(rows []statusRow, room int) (shown []statusRow, hidden int) {
	if len(rows) <= room {
		return rows, 0
	}
	room = max(room, 1)
	keep := make([]bool, len(rows))
	n := 0
	for pass := range 2 {
		for i, r := range rows {
			if n < room && !keep[i] && (pass == 1 || r.HasJob && (!r.Complete() || r.Failed > 0 || r.Disabled)) {
				keep[i] = true
				n++
			}
		}
	}
	for i, r := range rows {
		if keep[i] {
			shown = append(shown, r)
		}
	}
	return shown, len(rows) - len(shown)
}

// renderEvent is one line for a WatchBackfill event: when, which slice, which transition, and
// the definition's coverage afterwards when known (row.HasJob). Never more than st.width runes
// when st.width is set.
func renderEvent(ev *backfillv1.WatchBackfillResponse, row statusRow, now time.Time, st statusStyle) string {
	run := ev.GetRun()
	at, ok := tsTime(ev.GetAt())
	if !ok {
		at = now
	}
	arrow := "→"
	if st.plain {
		arrow = "->"
	}
	// A log line carries the date; the screen shows the time only, under a title.
	stamp := at.UTC().Format(time.TimeOnly)
	if st.plain {
		stamp = at.UTC().Format(time.RFC3339)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %s%s%s", stamp, run.GetSymbol(), timeframeName(run.GetTimeframe()),
		sliceLabel(run), runStatusName(ev.GetPreviousStatus()), arrow, runStatusName(run.GetStatus()))
	switch run.GetStatus() {
	case backfillv1.RunStatus_RUN_STATUS_RUNNING:
		fmt.Fprintf(&b, " attempt=%d", run.GetAttempt())
	case backfillv1.RunStatus_RUN_STATUS_SUCCESS:
		fmt.Fprintf(&b, " bars=%d", ev.GetBarsWritten())
	}
	if row.HasJob {
		fmt.Fprintf(&b, " coverage=%s", strings.TrimSpace(percent(row.Coverage)))
	}
	if msg := runError(run); msg != "" {
		room := statusPlainErrWidth
		if st.width > 0 {
			room = st.width - utf8.RuneCountInString(b.String()) - len(` error=""`)
		}
		fmt.Fprintf(&b, " error=%q", truncate(msg, max(room, 10), st.plain))
	}
	return b.String()
}

// sliceLabel names a run's slice by its dates (slices sit on whole UTC days), or its instants
// when they are not midnights.
func sliceLabel(r *backfillv1.JobRun) string {
	from, okFrom := tsTime(r.GetSliceFrom())
	to, okTo := tsTime(r.GetSliceTo())
	if !okFrom || !okTo {
		return "?"
	}
	midnight := func(t time.Time) bool { return t.UTC().Truncate(24 * time.Hour).Equal(t) }
	if midnight(from) && midnight(to) {
		return from.UTC().Format(time.DateOnly) + ".." + to.UTC().Format(time.DateOnly)
	}
	return from.UTC().Format(time.RFC3339) + ".." + to.UTC().Format(time.RFC3339)
}
