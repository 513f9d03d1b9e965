package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	connectrpc "connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
	"github.com/symbolsync/backfill/server"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

const (
	tfM15 = backfillv1.Timeframe_TIMEFRAME_M15
	tfH1  = backfillv1.Timeframe_TIMEFRAME_H1
	tfD1  = backfillv1.Timeframe_TIMEFRAME_D1

	runQueued  = backfillv1.RunStatus_RUN_STATUS_QUEUED
	runRunning = backfillv1.RunStatus_RUN_STATUS_RUNNING
	runSuccess = backfillv1.RunStatus_RUN_STATUS_SUCCESS
	runFailed  = backfillv1.RunStatus_RUN_STATUS_FAILED
)

var day = 24 * time.Hour

// statusNow is the fixed clock of the pure tests: a Wednesday noon.
var statusNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

func TestStatusProgressBar(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		frac  float64
		width int
		ascii bool
		want  string
	}{
		{"0%", 0, 10, false, "░░░░░░░░░░"},
		{"100%", 1, 10, false, "██████████"},
		{"half", 0.5, 10, false, "█████░░░░░"},
		{"eighths of a cell", 0.55, 10, false, "█████▌░░░░"},
		{"almost done is not full", 0.9999, 10, false, "█████████▉"},
		{"over 100% is full", 1.7, 4, false, "████"},
		{"negative is empty", -0.2, 4, false, "░░░░"},
		{"NaN is empty", math.NaN(), 4, false, "░░░░"},
		{"width 1", 0.5, 1, false, "▌"},
		{"width 0", 0.5, 0, false, ""},
		{"ascii 0%", 0, 10, true, "----------"},
		{"ascii 100%", 1, 10, true, "##########"},
		{"ascii partial rounds down", 0.57, 10, true, "#####-----"},
		{"ascii almost done is not full", 0.999, 10, true, "#########-"},
		{"ascii width 20", 0.25, 20, true, "#####---------------"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := progressBar(tc.frac, tc.width, tc.ascii)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.width, utf8.RuneCountInString(got), "a bar always fills its width")
		})
	}
}

func TestStatusPercent(t *testing.T) {
	t.Parallel()
	for frac, want := range map[float64]string{0: "  0%", 0.004: "  0%", 0.5: " 50%", 0.999: " 99%", 0.99999: " 99%", 1: "100%", 2: "100%", -1: "  0%"} {
		require.Equal(t, want, percent(frac), "%v", frac)
	}
}

func TestStatusTruncate(t *testing.T) {
	t.Parallel()
	long := "provider alpaca: 429 Too Many Requests: rate limit exceeded, retry after 60s " + strings.Repeat("x", 200)
	for _, tc := range []struct {
		name  string
		in    string
		n     int
		ascii bool
		want  string
	}{
		{"short stays", "timeout", 20, false, "timeout"},
		{"exact fit stays", "12345", 5, false, "12345"},
		{"long is cut with an ellipsis", long, 20, false, "provider alpaca: 42…"},
		{"ascii mark", long, 20, true, "provider alpaca: ..."},
		{"newlines and runs of spaces become one space", "bad\n  gateway\t502", 40, false, "bad gateway 502"},
		{"no room", long, 0, false, ""},
		{"room for the mark only", long, 2, true, ".."},
		{"multibyte runes are counted as one", "ßßßßßßßß", 4, false, "ßßß…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := truncate(tc.in, tc.n, tc.ascii)
			require.Equal(t, tc.want, got)
			require.LessOrEqual(t, utf8.RuneCountInString(got), max(tc.n, 0))
		})
	}
}

// gridRuns returns the runs of def's window at now on a grid of size, the way the planner cuts
// it (slices from the Unix epoch, the oldest may start before the window), with statuses in
// order from the oldest slice; slices beyond the statuses given are queued.
func gridRuns(def *backfillv1.JobDefinition, size time.Duration, now time.Time, statuses ...backfillv1.RunStatus) map[string]*backfillv1.JobRun {
	start := now.Add(-time.Duration(def.GetWindowDays()) * day)
	first := start.Unix() / int64(size.Seconds())
	last := int64(math.Ceil(float64(now.Unix())/size.Seconds())) - 1
	runs := map[string]*backfillv1.JobRun{}
	for i, k := 0, first; k <= last; i, k = i+1, k+1 {
		status := runQueued
		if i < len(statuses) {
			status = statuses[i]
		}
		id := fmt.Sprintf("%s-run-%d", def.GetId(), i)
		runs[id] = &backfillv1.JobRun{
			Id: id, JobDefId: def.GetId(), Symbol: def.GetSymbol(), Timeframe: def.GetTimeframe(), Status: status,
			SliceFrom: timestamppb.New(time.Unix(k*int64(size.Seconds()), 0)),
			SliceTo:   timestamppb.New(time.Unix((k+1)*int64(size.Seconds()), 0)),
			UpdatedAt: timestamppb.New(now),
		}
	}
	return runs
}

func TestStatusWindowCoverage(t *testing.T) {
	t.Parallel()
	def := func(windowDays int32, coveredAt *timestamppb.Timestamp) *backfillv1.JobDefinition {
		return &backfillv1.JobDefinition{Id: "d", Symbol: "AAPL", Timeframe: tfM15, WindowDays: windowDays, Enabled: true, CoveredAt: coveredAt}
	}
	run := func(from, to time.Time, status backfillv1.RunStatus) map[string]*backfillv1.JobRun {
		return map[string]*backfillv1.JobRun{"r": {Id: "r", JobDefId: "d", Status: status, SliceFrom: timestamppb.New(from), SliceTo: timestamppb.New(to)}}
	}
	merge := func(ms ...map[string]*backfillv1.JobRun) map[string]*backfillv1.JobRun {
		out := map[string]*backfillv1.JobRun{}
		for i, m := range ms {
			for _, r := range m {
				r = proto.CloneOf(r)
				r.Id = fmt.Sprintf("r%d", i)
				out[r.Id] = r
			}
		}
		return out
	}
	d30 := def(30, nil)
	week := 7 * day
	covered := timestamppb.New(statusNow.Add(-time.Hour))
	for _, tc := range []struct {
		name string
		def  *backfillv1.JobDefinition
		runs map[string]*backfillv1.JobRun
		want float64
	}{
		{"no runs yet", d30, nil, 0},
		{"all queued", d30, gridRuns(d30, week, statusNow), 0},
		{"every slice fetched, the oldest reaching before the window", d30,
			gridRuns(d30, week, statusNow, runSuccess, runSuccess, runSuccess, runSuccess, runSuccess), 1},
		{"the newest (open) slice counts whole", d30, run(statusNow.Add(-30*day), statusNow.Add(3*day), runSuccess), 1},
		{"half the window", d30, run(statusNow.Add(-15*day), statusNow, runSuccess), 0.5},
		{"a slice outside the window counts nothing", d30, run(statusNow.Add(-90*day), statusNow.Add(-60*day), runSuccess), 0},
		{"running and failed slices count nothing", d30, merge(run(statusNow.Add(-30*day), statusNow.Add(-15*day), runRunning),
			run(statusNow.Add(-15*day), statusNow, runFailed)), 0},
		{"overlapping slices of two grids count once", d30, merge(run(statusNow.Add(-30*day), statusNow.Add(-10*day), runSuccess),
			run(statusNow.Add(-20*day), statusNow.Add(-15*day), runSuccess)), 20.0 / 30},
		{"covered_at pins 100% while the open slice is re-fetched", def(30, covered),
			gridRuns(d30, week, statusNow, runSuccess, runSuccess, runSuccess, runSuccess, runQueued), 1},
		{"covered_at does not hide new work: a run created after it", def(30, covered), func() map[string]*backfillv1.JobRun {
			runs := gridRuns(d30, week, statusNow, runQueued, runSuccess, runSuccess, runSuccess, runSuccess)
			runs["d-run-0"].CreatedAt = timestamppb.New(statusNow) // the window grew
			return runs
		}(), 1 - 2.5/30},
		{"covered_at does not hide a failure in the window", def(30, covered),
			merge(run(statusNow.Add(-30*day), statusNow.Add(-15*day), runSuccess), run(statusNow.Add(-15*day), statusNow, runFailed)), 0.5},
		{"a window of no days", def(0, nil), run(statusNow.Add(-day), statusNow, runSuccess), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tc.want, windowCoverage(tc.def, tc.runs, statusNow), 1e-9)
		})
	}
}

// testView is a view of two symbols: AAPL m15 half done with a retrying run, AAPL h1 complete,
// MSFT d1 disabled after a permanent error, and MSFT h1 bars without a definition.
func testView() *statusView {
	v := newStatusView()
	m15 := &backfillv1.JobDefinition{Id: "aapl-m15", Symbol: "AAPL", Timeframe: tfM15, WindowDays: 28, Enabled: true}
	h1 := &backfillv1.JobDefinition{Id: "aapl-h1", Symbol: "AAPL", Timeframe: tfH1, WindowDays: 90, Enabled: true}
	d1 := &backfillv1.JobDefinition{Id: "msft-d1", Symbol: "MSFT", Timeframe: tfD1, WindowDays: 730, Enabled: false,
		DisabledReason: "permanent provider error"}
	for _, d := range []*backfillv1.JobDefinition{m15, h1, d1} {
		v.putDefinition(d)
	}
	put := func(runs map[string]*backfillv1.JobRun) {
		for _, r := range runs {
			v.putRun(r)
		}
	}
	m15Runs := gridRuns(m15, 7*day, statusNow, runSuccess, runSuccess, runRunning, runQueued, runQueued)
	m15Runs["aapl-m15-run-3"].ErrorMessage = "provider timeout after 30s"
	m15Runs["aapl-m15-run-3"].UpdatedAt = timestamppb.New(statusNow.Add(time.Minute))
	put(m15Runs)
	put(gridRuns(h1, 30*day, statusNow, runSuccess, runSuccess, runSuccess, runSuccess))
	d1Runs := gridRuns(d1, 365*day, statusNow, runFailed)
	d1Runs["msft-d1-run-0"].ErrorCode = "permanent"
	d1Runs["msft-d1-run-0"].ErrorMessage = "alpaca: 403 forbidden: subscription does not permit querying recent SIP data " + strings.Repeat("and more ", 30)
	put(d1Runs)
	v.putCoverage("AAPL", []*backfillv1.SymbolCoverage{{Timeframe: tfM15, BarsCount: 1344}, {Timeframe: tfH1, BarsCount: 2160}})
	v.putCoverage("MSFT", []*backfillv1.SymbolCoverage{{Timeframe: tfH1, BarsCount: 42}, {Timeframe: tfD1, BarsCount: 0},
		{Timeframe: backfillv1.Timeframe_TIMEFRAME_W1, BarsCount: 0}})
	return v
}

func TestStatusRows(t *testing.T) {
	t.Parallel()
	rows := testView().rows(statusNow)
	require.Len(t, rows, 4, "one per definition, plus MSFT h1 (bars, no job); MSFT w1 has neither")
	m15, h1, msftH1, d1 := rows[0], rows[1], rows[2], rows[3]
	require.Equal(t, []string{"AAPL m15", "AAPL h1", "MSFT h1", "MSFT d1"}, []string{
		m15.Symbol + " " + timeframeName(m15.Timeframe), h1.Symbol + " " + timeframeName(h1.Timeframe),
		msftH1.Symbol + " " + timeframeName(msftH1.Timeframe), d1.Symbol + " " + timeframeName(d1.Timeframe)})
	require.Equal(t, statusRow{Symbol: "AAPL", Timeframe: tfM15, HasJob: true, Coverage: m15.Coverage, Bars: 1344, Queued: 2, Running: 1,
		LastError: "provider timeout after 30s"}, m15)
	// Two of five 7-day slices, the oldest reaching 5½ days before the 28-day window.
	require.InDelta(t, 7.5/28, m15.Coverage, 1e-9)
	require.True(t, h1.Complete())
	require.Equal(t, statusRow{Symbol: "MSFT", Timeframe: tfH1, Bars: 42}, msftH1)
	require.True(t, d1.Disabled)
	require.Equal(t, 1, d1.Failed)
	require.True(t, strings.HasPrefix(d1.LastError, "permanent: alpaca: 403"), d1.LastError)

	// A stale event never replaces a newer state.
	v := testView()
	stale := proto.CloneOf(v.runs["aapl-m15"]["aapl-m15-run-2"])
	stale.Status, stale.UpdatedAt = runQueued, nil
	require.Nil(t, v.applyEvent(&backfillv1.WatchBackfillResponse{Run: stale, At: timestamppb.New(statusNow.Add(-time.Hour))}))
	require.Equal(t, runRunning, v.runs["aapl-m15"]["aapl-m15-run-2"].GetStatus())
}

func TestStatusApplyEvent(t *testing.T) {
	t.Parallel()
	v := testView()
	full := v.runs["aapl-m15"]["aapl-m15-run-3"] // queued, retrying after "provider timeout after 30s"
	full.ErrorCode = "timeout"
	// What the server's trigger sends: no error message, no row timestamps.
	partial := func(status backfillv1.RunStatus, attempt, rows int32, code string) *backfillv1.WatchBackfillResponse {
		return &backfillv1.WatchBackfillResponse{
			Run: &backfillv1.JobRun{Id: full.GetId(), JobDefId: full.GetJobDefId(), Symbol: "AAPL", Timeframe: tfM15, SliceFrom: full.GetSliceFrom(),
				SliceTo: full.GetSliceTo(), Status: status, Attempt: attempt, RowsWritten: rows, ErrorCode: code},
			At: timestamppb.New(statusNow.Add(time.Hour)),
		}
	}
	for _, tc := range []struct {
		name        string
		ev          *backfillv1.WatchBackfillResponse
		wantMessage string
	}{
		{"claimed again: the retried error stays", partial(runRunning, 2, 0, "timeout"), "provider timeout after 30s"},
		{"another error: its message is not known yet", partial(runQueued, 2, 0, "rate_limited"), ""},
		{"success clears the error", partial(runSuccess, 2, 96, ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := testView()
			v.runs["aapl-m15"]["aapl-m15-run-3"].ErrorCode = "timeout"
			got := v.applyEvent(tc.ev)
			require.NotNil(t, got)
			require.Same(t, got, v.runs["aapl-m15"]["aapl-m15-run-3"])
			require.Equal(t, tc.ev.GetRun().GetStatus(), got.GetStatus())
			require.Equal(t, tc.ev.GetRun().GetErrorCode(), got.GetErrorCode())
			require.Equal(t, tc.wantMessage, got.GetErrorMessage())
			require.Equal(t, tc.ev.GetRun().GetRowsWritten(), got.GetRowsWritten())
			require.Equal(t, tc.ev.GetAt().AsTime(), got.GetUpdatedAt().AsTime(), "the event's time stands in for updated_at")
		})
	}
	// A new run is taken as sent, created at the event's time.
	ev := partial(runQueued, 0, 0, "")
	ev.Run.Id = "new"
	got := proto.CloneOf(v.applyEvent(ev))
	require.Equal(t, ev.GetAt().AsTime(), got.GetCreatedAt().AsTime())
	got.UpdatedAt, got.CreatedAt = nil, nil
	require.True(t, proto.Equal(ev.GetRun(), got))
}

var ansiRe = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func TestStatusRenderTable(t *testing.T) {
	t.Parallel()
	rows := testView().rows(statusNow)
	for _, tc := range []struct {
		name  string
		style statusStyle
		check func(t *testing.T, lines []string)
	}{
		{"plain: ASCII, no escapes, one line per row", statusStyle{plain: true}, func(t *testing.T, lines []string) {
			require.Len(t, lines, 1+len(rows))
			require.Regexp(t, `^SYMBOL\s+TF\s+COVERAGE\s+BARS\s+QUEUED\s+RUNNING\s+FAILED\s+LAST ERROR$`, lines[0])
			require.Regexp(t, `^AAPL\s+m15\s+\[#+-+\]\s+\d\d%\s+1344\s+2\s+1\s+0\s+provider timeout after 30s$`, lines[1])
			require.Regexp(t, `^AAPL\s+h1\s+\[#{20}\] 100%\s+2160\s+0\s+0\s+0$`, lines[2])
			require.Regexp(t, `^MSFT\s+h1\s+no job\s+42\s+0\s+0\s+0$`, lines[3])
			require.Regexp(t, `^MSFT\s+d1\s+\[-{20}\]   0%\s+0\s+2\s+0\s+1\s+disabled: permanent provider error; permanent: alpaca: 403 .*\.\.\.$`, lines[4])
			require.Equal(t, statusPlainErrWidth, utf8.RuneCountInString(lines[4][strings.Index(lines[4], "disabled:"):]), "long error cut")
		}},
		{"terminal with colours", statusStyle{color: true, width: 120}, func(t *testing.T, lines []string) {
			require.Contains(t, lines[2], ansiGreen+strings.Repeat("█", 20)+ansiReset, "complete is green")
			require.Contains(t, lines[1], ansiYellow, "in progress is yellow")
			require.Contains(t, lines[4], ansiRed, "failed is red")
			for _, l := range lines {
				require.LessOrEqual(t, utf8.RuneCountInString(ansiRe.ReplaceAllString(l, "")), 120, "fits the screen: %q", l)
			}
			require.True(t, strings.HasSuffix(ansiRe.ReplaceAllString(lines[4], ""), "…"), "long error cut to the screen")
		}},
		{"NO_COLOR: blocks, no colour", statusStyle{width: 120}, func(t *testing.T, lines []string) {
			for _, l := range lines {
				require.NotContains(t, l, "\x1b", "no escape at all in a table without colour")
			}
			require.Contains(t, lines[2], strings.Repeat("█", 20)+" 100%")
		}},
		{"narrow terminal: the bar shrinks, lines still fit", statusStyle{width: 70}, func(t *testing.T, lines []string) {
			for _, l := range lines {
				require.LessOrEqual(t, utf8.RuneCountInString(l), 70, "%q", l)
			}
			require.Regexp(t, `█+ 100%`, lines[2])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, renderTable(rows, tc.style))
		})
	}
}

func TestStatusRenderScreen(t *testing.T) {
	t.Parallel()
	rows := testView().rows(statusNow)
	recent := []string{"12:00:01 AAPL m15 ... queued→running", "12:00:02 AAPL m15 ... running→success bars=672"}
	frame := renderScreen("backfill status · all symbols", "", rows, recent, statusStyle{width: 120})
	require.True(t, strings.HasPrefix(frame, ansiHome), "drawn from the top left")
	require.True(t, strings.HasSuffix(frame, ansiClearBelow), "what the last frame left below is cleared")
	require.False(t, strings.HasSuffix(strings.TrimSuffix(frame, ansiClearBelow), "\n"), "no newline after the last line: it could scroll")
	for _, l := range strings.Split(strings.TrimSuffix(frame, ansiClearBelow), "\n") {
		require.True(t, strings.HasSuffix(l, ansiClearLine), "each line clears its rest: %q", l)
	}
	require.Contains(t, frame, "1/3 jobs complete, 4 queued, 1 running, 1 failed, 3546 bars")
	require.Contains(t, frame, "recent events:")

	empty := renderScreen("t", "ZZZZ", nil, nil, statusStyle{color: true, width: 80})
	require.Contains(t, empty, "no job definitions for ZZZZ yet (track it with: backfill sync ZZZZ)")

	// Nothing wraps on a narrow screen: a wrapped line would scroll the frame.
	long := []string{"12:00:03 AAPL m15 2026-03-04T12:15:00Z..2026-03-11T12:15:00Z running→queued error=\"" + strings.Repeat("e", 200) + "\""}
	narrow := renderScreen("backfill status · all symbols · http://127.0.0.1:54321 · 12:00:03", "", rows, long, statusStyle{color: true, width: 60})
	for _, l := range strings.Split(ansiRe.ReplaceAllString(narrow, ""), "\n") {
		require.LessOrEqual(t, utf8.RuneCountInString(l), 60, "%q", l)
	}

	// A frame never has more lines than the screen: rows in progress stay, complete ones go first.
	for _, tc := range []struct {
		height     int
		wantRows   []string
		wantHidden string
		wantRecent int
	}{
		{0, []string{"AAPL m15", "AAPL h1", "MSFT h1", "MSFT d1"}, "", 2},
		{40, []string{"AAPL m15", "AAPL h1", "MSFT h1", "MSFT d1"}, "", 2},
		{12, []string{"AAPL m15", "AAPL h1", "MSFT h1", "MSFT d1"}, "", 1},
		{9, []string{"AAPL m15", "AAPL h1", "MSFT h1", "MSFT d1"}, "", 0},
		{8, []string{"AAPL m15", "MSFT d1"}, "… 2 more rows", 0},
		{7, []string{"AAPL m15"}, "… 3 more rows", 0},
		{3, []string{"AAPL m15"}, "… 3 more rows", 0},
	} {
		frame := renderScreen("title", "", rows, recent, statusStyle{width: 120, height: tc.height})
		lines := strings.Split(ansiRe.ReplaceAllString(frame, ""), "\n")
		if tc.height > 6 {
			require.LessOrEqual(t, len(lines), tc.height, "height %d:\n%s", tc.height, strings.Join(lines, "\n"))
		}
		var shown []string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 1 && (f[0] == "AAPL" || f[0] == "MSFT") {
				shown = append(shown, f[0]+" "+f[1])
			}
		}
		require.Equal(t, tc.wantRows, shown, "height %d", tc.height)
		if tc.wantHidden != "" {
			require.Contains(t, frame, tc.wantHidden, "height %d", tc.height)
		}
		require.Equal(t, tc.wantRecent, strings.Count(frame, "12:00:0"), "recent events at height %d", tc.height)
	}
}

func TestStatusRenderEvent(t *testing.T) {
	t.Parallel()
	run := &backfillv1.JobRun{Id: "r", JobDefId: "d", Symbol: "AAPL", Timeframe: tfM15, Status: runSuccess, RowsWritten: 672,
		SliceFrom: timestamppb.New(time.Date(2026, 2, 26, 0, 0, 0, 0, time.UTC)), SliceTo: timestamppb.New(time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC))}
	ev := &backfillv1.WatchBackfillResponse{Run: run, PreviousStatus: runRunning, BarsWritten: 672, At: timestamppb.New(statusNow)}
	row := statusRow{HasJob: true, Coverage: 0.8}
	require.Equal(t, "2026-03-04T12:00:00Z AAPL m15 2026-02-26..2026-03-05 running->success bars=672 coverage=80%",
		renderEvent(ev, row, statusNow, statusStyle{plain: true}))
	require.Equal(t, "12:00:00 AAPL m15 2026-02-26..2026-03-05 running→success bars=672 coverage=80%",
		renderEvent(ev, row, statusNow, statusStyle{width: 120}))

	retry := proto.CloneOf(ev)
	retry.Run.Status, retry.Run.ErrorCode, retry.Run.ErrorMessage = runQueued, "retryable", "timeout\n"+strings.Repeat("z", 500)
	line := renderEvent(retry, statusRow{}, statusNow, statusStyle{plain: true})
	require.Regexp(t, `^2026-03-04T12:00:00Z AAPL m15 \S+ running->queued error="retryable: timeout z+\.\.\."$`, line, "an unknown definition: no coverage")
	require.NotContains(t, line, "\n")
	require.LessOrEqual(t, utf8.RuneCountInString(renderEvent(retry, statusRow{}, statusNow, statusStyle{width: 100})), 100)

	created := &backfillv1.WatchBackfillResponse{Run: &backfillv1.JobRun{Symbol: "AAPL", Timeframe: tfH1, Status: runQueued,
		SliceFrom: timestamppb.New(statusNow), SliceTo: timestamppb.New(statusNow.Add(time.Hour))}}
	require.Equal(t, "2026-03-04T12:00:00Z AAPL h1 2026-03-04T12:00:00Z..2026-03-04T13:00:00Z new->queued",
		renderEvent(created, statusRow{}, statusNow, statusStyle{plain: true}), "no event time: the local clock")
}

func TestStatusSplitArgs(t *testing.T) {
	t.Parallel()
	f := newFlags(&env{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}, "status", "", "")
	var b bool
	var s string
	f.Bool(&b, "watch", "X_WATCH", false, "")
	f.String(&s, "url", "X_URL", "", "")
	for _, tc := range []struct {
		args       []string
		positional []string
		flags      []string
	}{
		{[]string{"AAPL", "--watch"}, []string{"AAPL"}, []string{"--watch"}},
		{[]string{"--watch", "AAPL"}, []string{"AAPL"}, []string{"--watch"}},
		{[]string{"--url", "http://x", "AAPL"}, []string{"AAPL"}, []string{"--url", "http://x"}},
		{[]string{"--url=http://x", "AAPL", "-watch=false"}, []string{"AAPL"}, []string{"--url=http://x", "-watch=false"}},
		{[]string{"--", "-WEIRD"}, []string{"-WEIRD"}, nil},
		{[]string{"--nope", "AAPL"}, []string{"AAPL"}, []string{"--nope"}},
		{[]string{"A", "B"}, []string{"A", "B"}, nil},
	} {
		p, fl := splitArgs(f.fs, tc.args)
		require.Equal(t, tc.positional, p, "%q", tc.args)
		require.Equal(t, tc.flags, fl, "%q", tc.args)
	}
}

// fakeControl is a hand-written ControlService for the command's tests: the definitions, runs
// and bar counts the test sets, a WatchBackfill stream the test feeds, and the server's auth
// rules (a service key passes, the anon key is denied, anything else is unauthenticated).
type fakeControl struct {
	backfillv1connect.UnimplementedControlServiceHandler // the methods backfill status does not call

	mu      sync.Mutex
	defs    []*backfillv1.JobDefinition
	runs    map[string]*backfillv1.JobRun // by id
	order   []string                      // run ids in creation order
	bars    map[string]map[backfillv1.Timeframe]int64
	clock   time.Time // updated_at of the next change; moves 1ms per change
	headers []http.Header

	// holdHeaders: WatchBackfill sends its response headers with the first event instead of at
	// once, as our server does.
	holdHeaders bool
	events      chan *backfillv1.WatchBackfillResponse // sent to the watcher, in order
	watching    chan struct{}                          // one value per WatchBackfill call
	end         chan struct{}                          // closed: WatchBackfill returns (the server ends the stream); see endStream
}

var _ backfillv1connect.ControlServiceHandler = (*fakeControl)(nil)

func newFakeControl() *fakeControl {
	return &fakeControl{
		runs:     map[string]*backfillv1.JobRun{},
		bars:     map[string]map[backfillv1.Timeframe]int64{},
		clock:    time.Now(),
		events:   make(chan *backfillv1.WatchBackfillResponse),
		watching: make(chan struct{}, 10),
		end:      make(chan struct{}),
	}
}

// serve serves f on a local port until the test ends and returns its URL.
func (f *fakeControl) serve(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(backfillv1connect.NewControlServiceHandler(f, connectrpc.WithInterceptors(fakeAuth{f})))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

type fakeAuth struct{ f *fakeControl }

func (a fakeAuth) check(h http.Header) error {
	a.f.mu.Lock()
	a.f.headers = append(a.f.headers, h.Clone())
	a.f.mu.Unlock()
	cred := strings.TrimPrefix(h.Get("Authorization"), "Bearer ")
	if cred == "" {
		cred = h.Get("apikey")
	}
	switch cred {
	case server.LocalServiceRoleKey, "sb_secret_fake", "from-flag", "from-backfill-env", "from-supabase-env":
		return nil
	case server.LocalAnonKey:
		return connectrpc.NewError(connectrpc.CodePermissionDenied, errors.New("the control plane needs a service_role token or an sb_secret_ key"))
	}
	return connectrpc.NewError(connectrpc.CodeUnauthenticated, errors.New("invalid JWT"))
}

func (a fakeAuth) WrapUnary(next connectrpc.UnaryFunc) connectrpc.UnaryFunc {
	return func(ctx context.Context, req connectrpc.AnyRequest) (connectrpc.AnyResponse, error) {
		if err := a.check(req.Header()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a fakeAuth) WrapStreamingClient(next connectrpc.StreamingClientFunc) connectrpc.StreamingClientFunc {
	return next
}

func (a fakeAuth) WrapStreamingHandler(next connectrpc.StreamingHandlerFunc) connectrpc.StreamingHandlerFunc {
	return func(ctx context.Context, conn connectrpc.StreamingHandlerConn) error {
		if err := a.check(conn.RequestHeader()); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

func (f *fakeControl) lastHeader() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) == 0 {
		return nil
	}
	return f.headers[len(f.headers)-1]
}

// addJob adds a definition of symbol and timeframe with its window cut into queued runs on a
// grid of size, as the planner does, and returns the runs oldest first.
func (f *fakeControl) addJob(symbol string, tf backfillv1.Timeframe, windowDays int32, size time.Duration) []*backfillv1.JobRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &backfillv1.JobDefinition{Id: fmt.Sprintf("%s-%s", symbol, timeframeName(tf)), Symbol: symbol, Timeframe: tf, WindowDays: windowDays, Enabled: true}
	f.defs = append(f.defs, d)
	runs := gridRuns(d, size, time.Now())
	out := make([]*backfillv1.JobRun, len(runs))
	for i := range len(runs) {
		r := runs[fmt.Sprintf("%s-run-%d", d.GetId(), i)]
		r.UpdatedAt = f.tick()
		f.runs[r.GetId()], out[i] = r, r
		f.order = append(f.order, r.GetId())
	}
	return out
}

func (f *fakeControl) tick() *timestamppb.Timestamp {
	f.clock = f.clock.Add(time.Millisecond)
	return timestamppb.New(f.clock)
}

// move changes run's state as a worker would and sends the event to the watcher (blocking until
// the stream took it).
func (f *fakeControl) move(t *testing.T, run *backfillv1.JobRun, to backfillv1.RunStatus, bars int32) {
	t.Helper()
	f.change(t, run, to, bars, "", "")
}

// retry puts a running run back in the queue after an error. The event carries the error's code
// but not its message, as the server's does; ListJobRuns has the message.
func (f *fakeControl) retry(t *testing.T, run *backfillv1.JobRun, code, message string) {
	t.Helper()
	f.change(t, run, runQueued, 0, code, message)
}

func (f *fakeControl) change(t *testing.T, run *backfillv1.JobRun, to backfillv1.RunStatus, bars int32, code, message string) {
	t.Helper()
	f.mu.Lock()
	r := proto.CloneOf(f.runs[run.GetId()])
	prev := r.GetStatus()
	r.Status, r.UpdatedAt, r.ErrorCode, r.ErrorMessage = to, f.tick(), code, message
	if to == runSuccess {
		r.RowsWritten = bars
		if f.bars[r.GetSymbol()] == nil {
			f.bars[r.GetSymbol()] = map[backfillv1.Timeframe]int64{}
		}
		f.bars[r.GetSymbol()][r.GetTimeframe()] += int64(bars)
	}
	f.runs[r.GetId()] = r
	f.mu.Unlock()
	sent := proto.CloneOf(r)
	sent.ErrorMessage = ""
	select {
	case f.events <- &backfillv1.WatchBackfillResponse{Run: sent, PreviousStatus: prev, BarsWritten: bars, At: r.GetUpdatedAt()}:
	case <-time.After(10 * time.Second):
		t.Fatal("no watcher took the event within 10s")
	}
}

func (f *fakeControl) GetSymbolCoverage(_ context.Context, req *backfillv1.GetSymbolCoverageRequest) (*backfillv1.GetSymbolCoverageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	known := f.bars[req.GetSymbol()] != nil
	for _, d := range f.defs {
		known = known || d.GetSymbol() == req.GetSymbol()
	}
	res := &backfillv1.GetSymbolCoverageResponse{}
	if !known {
		return res, nil
	}
	for tf := tfM15; tf <= backfillv1.Timeframe_TIMEFRAME_W1; tf++ {
		res.Coverage = append(res.Coverage, &backfillv1.SymbolCoverage{Timeframe: tf, BarsCount: f.bars[req.GetSymbol()][tf]})
	}
	return res, nil
}

func (f *fakeControl) ListJobDefinitions(_ context.Context, req *backfillv1.ListJobDefinitionsRequest) (*backfillv1.ListJobDefinitionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := &backfillv1.ListJobDefinitionsResponse{}
	for _, d := range f.defs {
		if req.GetSymbol() == "" || req.GetSymbol() == d.GetSymbol() {
			res.Definitions = append(res.Definitions, d)
		}
	}
	return res, nil
}

// ListJobRuns pages by 2, so that the command's paging is exercised.
func (f *fakeControl) ListJobRuns(_ context.Context, req *backfillv1.ListJobRunsRequest) (*backfillv1.ListJobRunsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var match []*backfillv1.JobRun
	for _, id := range f.order {
		r := f.runs[id]
		if (req.GetSymbol() == "" || req.GetSymbol() == r.GetSymbol()) && (req.GetJobDefId() == "" || req.GetJobDefId() == r.GetJobDefId()) {
			match = append(match, r)
		}
	}
	from, _ := strconv.Atoi(req.GetPageToken())
	to := min(from+2, len(match))
	res := &backfillv1.ListJobRunsResponse{Runs: match[from:to]}
	if to < len(match) {
		res.NextPageToken = strconv.Itoa(to)
	}
	return res, nil
}

// endStream ends the open watch stream, as a server going away does; the next watch gets a
// stream of its own.
func (f *fakeControl) endStream() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.end)
	f.end = make(chan struct{})
}

func (f *fakeControl) WatchBackfill(ctx context.Context, req *backfillv1.WatchBackfillRequest, stream *connectrpc.ServerStream[backfillv1.WatchBackfillResponse]) error {
	f.mu.Lock()
	end := f.end
	f.mu.Unlock()
	f.watching <- struct{}{}
	if !f.holdHeaders {
		if err := stream.Send(nil); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case ev := <-f.events:
			if req.GetSymbol() != "" && req.GetSymbol() != ev.GetRun().GetSymbol() {
				continue
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

var errFakeUnimplemented = connectrpc.NewError(connectrpc.CodeUnimplemented, errors.New("not in the fake"))

func (f *fakeControl) GetTimeframeJobStats(context.Context, *backfillv1.GetTimeframeJobStatsRequest) (*backfillv1.GetTimeframeJobStatsResponse, error) {
	return nil, errFakeUnimplemented
}

func (f *fakeControl) ListUserTrackedSymbols(context.Context, *backfillv1.ListUserTrackedSymbolsRequest) (*backfillv1.ListUserTrackedSymbolsResponse, error) {
	return nil, errFakeUnimplemented
}

func (f *fakeControl) UpdateJobDefinition(context.Context, *backfillv1.UpdateJobDefinitionRequest) (*backfillv1.UpdateJobDefinitionResponse, error) {
	return nil, errFakeUnimplemented
}

func (f *fakeControl) RetryJobRun(context.Context, *backfillv1.RetryJobRunRequest) (*backfillv1.RetryJobRunResponse, error) {
	return nil, errFakeUnimplemented
}

func (f *fakeControl) CancelJobRun(context.Context, *backfillv1.CancelJobRunRequest) (*backfillv1.CancelJobRunResponse, error) {
	return nil, errFakeUnimplemented
}

func (f *fakeControl) RunTick(context.Context, *backfillv1.RunTickRequest) (*backfillv1.RunTickResponse, error) {
	return nil, errFakeUnimplemented
}

func (f *fakeControl) GetReplicationStatus(context.Context, *backfillv1.GetReplicationStatusRequest) (*backfillv1.GetReplicationStatusResponse, error) {
	return nil, errFakeUnimplemented
}

func TestStatusPlainSnapshot(t *testing.T) {
	t.Parallel()
	fake := newFakeControl()
	for _, r := range fake.addJob("AAPL", tfM15, 30, 7*day) {
		fake.runs[r.GetId()].Status = runSuccess
	}
	fake.bars["AAPL"] = map[backfillv1.Timeframe]int64{tfM15: 1890}
	fake.addJob("MSFT", tfH1, 90, 30*day)
	url := fake.serve(t)

	r := runCmd(t.Context(), map[string]string{"BACKFILL_URL": url}, "status")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "\x1b", "a pipe gets no escapes")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 3, "header and one line per row: %q", r.stdout)
	require.Regexp(t, `^AAPL\s+m15\s+\[#{20}\] 100%\s+1890\s+0\s+0\s+0$`, lines[1])
	require.Regexp(t, `^MSFT\s+h1\s+\[-{20}\]   0%\s+0\s+[45]\s+0\s+0$`, lines[2])

	r = runCmd(t.Context(), nil, "status", "msft", "--url", url)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 2, strings.Count(r.stdout, "\n"), "only MSFT, whose ticker is upper-cased: %q", r.stdout)
	r = runCmd(t.Context(), nil, "status", "NOPE", "--url", url)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "no job definitions for NOPE yet (track it with: backfill sync NOPE)\n", r.stdout)
}

func TestStatusKeyAndErrors(t *testing.T) {
	t.Parallel()
	fake := newFakeControl()
	url := fake.serve(t)

	// The key is sent as supabase-js sends it; the flag wins over BACKFILL_SERVICE_ROLE_KEY,
	// which wins over SUPABASE_SERVICE_ROLE_KEY, which wins over the local development key.
	for _, tc := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantBearer string
		wantAPIKey string
	}{
		{"local development key", nil, nil, server.LocalServiceRoleKey, server.LocalServiceRoleKey},
		{"SUPABASE_SERVICE_ROLE_KEY", map[string]string{"SUPABASE_SERVICE_ROLE_KEY": "from-supabase-env"}, nil, "from-supabase-env", "from-supabase-env"},
		{"BACKFILL_SERVICE_ROLE_KEY", map[string]string{"SUPABASE_SERVICE_ROLE_KEY": "from-supabase-env", "BACKFILL_SERVICE_ROLE_KEY": "from-backfill-env"},
			nil, "from-backfill-env", "from-backfill-env"},
		{"--key", map[string]string{"BACKFILL_SERVICE_ROLE_KEY": "from-backfill-env"}, []string{"--key", "from-flag"}, "from-flag", "from-flag"},
		{"sb_secret_ key: apikey only", nil, []string{"--key", "sb_secret_fake"}, "", "sb_secret_fake"},
	} {
		r := runCmd(t.Context(), tc.env, append([]string{"status", "--url", url}, tc.args...)...)
		require.Equal(t, 0, r.code, "%s: %s", tc.name, r.stderr)
		h := fake.lastHeader()
		require.Equal(t, tc.wantAPIKey, h.Get("apikey"), tc.name)
		if tc.wantBearer == "" {
			require.Empty(t, h.Values("Authorization"), tc.name)
		} else {
			require.Equal(t, "Bearer "+tc.wantBearer, h.Get("Authorization"), tc.name)
		}
	}

	notControl := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notControl.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"anon key", map[string]string{"BACKFILL_SERVICE_ROLE_KEY": server.LocalAnonKey}, []string{"--url", url}, 1,
			[]string{"the key from BACKFILL_SERVICE_ROLE_KEY may not use the control plane (permission_denied)", "service_role key or an sb_secret_ key"}},
		{"bad key", nil, []string{"--url", url, "--key", "nonsense"}, 1,
			[]string{"refused the key from --key (unauthenticated)", "BACKFILL_SERVICE_ROLE_KEY (or SUPABASE_SERVICE_ROLE_KEY)"}},
		{"bad key while watching", map[string]string{"SUPABASE_SERVICE_ROLE_KEY": "nonsense"}, []string{"--url", url, "--watch"}, 1,
			[]string{"refused the key from SUPABASE_SERVICE_ROLE_KEY (unauthenticated)"}},
		{"unreachable", nil, []string{"--url", closed}, 1,
			[]string{"cannot reach " + closed + " (is `backfill dev` or `backfill serve` running there?)"}},
		{"unreachable while watching", nil, []string{"--url", closed, "--watch"}, 1, []string{"cannot reach " + closed}},
		{"not a control plane", nil, []string{"--url", notControl.URL}, 1, []string{"does not serve backfill.v1.ControlService"}},
		{"two symbols", nil, []string{"AAPL", "MSFT"}, 2, []string{`at most one symbol, got ["AAPL" "MSFT"]`}},
		{"bad url", nil, []string{"--url", "127.0.0.1:54321"}, 2, []string{"must start with http:// or https://"}},
		{"bad interval", map[string]string{"BACKFILL_STATUS_INTERVAL": "often"}, nil, 2, []string{`BACKFILL_STATUS_INTERVAL="often" is not a duration`}},
		{"zero interval", nil, []string{"--interval", "0s"}, 2, []string{"--interval and --timeout must be positive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCmd(t.Context(), tc.env, append([]string{"status"}, tc.args...)...)
			require.Equal(t, tc.code, r.code, r.stderr)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			for _, w := range tc.want {
				require.Contains(t, r.stderr, w)
			}
			require.Empty(t, r.stdout)
		})
	}
}

// outputWaiter is a writer a test can wait on.
type outputWaiter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutputWaiter() *outputWaiter { return &outputWaiter{changed: make(chan struct{}, 1)} }

func (w *outputWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *outputWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait waits until ok says yes of the output and returns it.
func (w *outputWaiter) wait(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if s := w.String(); ok(s) {
			return s
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("the output never showed %s:\n%s", what, w.String())
		}
	}
}

// waitMatch waits until the output matches re and returns the match's submatches.
func (w *outputWaiter) waitMatch(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	return rx.FindStringSubmatch(w.wait(t, re, rx.MatchString))
}

// startStatus runs `backfill status` in-process, its stdout a pipe-like writer, until the test
// ends. exited is closed when the command returned; stop cancels it and returns its exit code.
func startStatus(t *testing.T, env map[string]string, args ...string) (stdout, stderr *outputWaiter, stop func() int, exited <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr = newOutputWaiter(), newOutputWaiter()
	done := make(chan struct{})
	code := -1
	go func() {
		defer close(done)
		code = run(ctx, append([]string{"status"}, args...), func(k string) string { return env[k] }, stdout, stderr)
	}()
	stop = func() int {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("status did not stop within 10s of its context ending")
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop, done
}

func TestStatusWatchPlain(t *testing.T) {
	t.Parallel()
	fake := newFakeControl()
	runs := fake.addJob("ZZZZ", tfH1, 60, 30*day)
	url := fake.serve(t)

	stdout, stderr, stop, exited := startStatus(t, nil, "ZZZZ", "--watch", "--url", url, "--interval", "50ms")
	<-fake.watching
	stdout.waitMatch(t, `(?m)^ZZZZ\s+h1\s+\[-+\]   0%.*\n`)
	var lines []string
	for i, r := range runs {
		fake.move(t, r, runRunning, 0)
		fake.move(t, r, runSuccess, 720)
		out := stdout.wait(t, fmt.Sprintf("success %d", i+1), func(s string) bool { return strings.Count(s, "->success") == i+1 })
		lines = strings.Split(strings.TrimSpace(out), "\n")
		require.Regexp(t, `^\S+Z ZZZZ h1 \d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d running->success bars=720 coverage=\d+%$`, lines[len(lines)-1], "run %d", i)
	}
	require.Len(t, lines, 2+2*len(runs), "header, row, then one line per event:\n%s", stdout.String())
	require.Regexp(t, `queued->running attempt=0 coverage=0%$`, lines[2])
	require.True(t, strings.HasSuffix(lines[len(lines)-1], "coverage=100%"), lines[len(lines)-1])
	require.NotContains(t, stdout.String(), "\x1b")

	// The server ends the stream (a restart): the command says so and watches again, and
	// what happens next shows; Ctrl-C then ends it cleanly.
	fake.endStream()
	stderr.waitMatch(t, `^backfill status: the server ended the watch stream; watching again in \d+ms\n$`)
	<-fake.watching
	fake.move(t, runs[0], runFailed, 0)
	stdout.wait(t, "the event after the new watch", func(s string) bool { return strings.Contains(s, "success->failed") })
	select {
	case <-exited:
		t.Fatal("status stopped although the server came back")
	default:
	}
	require.Equal(t, 0, stop(), stderr.String())
}

// TestStatusWatchStopsOnCancel also watches a server that sends no headers before the first
// event: the command does not wait for it forever.
func TestStatusWatchStopsOnCancel(t *testing.T) {
	t.Parallel()
	fake := newFakeControl()
	fake.holdHeaders = true
	fake.addJob("ZZZZ", tfM15, 30, 7*day)
	url := fake.serve(t)
	stdout, stderr, stop, _ := startStatus(t, nil, "--watch", "--url", url)
	<-fake.watching
	stdout.waitMatch(t, `ZZZZ\s+m15`)
	require.Equal(t, 0, stop(), "Ctrl-C is no failure: %s", stderr.String())
	require.Empty(t, stderr.String())
}

// tmuxPane is a command running in a pane of a private tmux server: a real terminal whose screen
// the test reads.
type tmuxPane struct {
	t    *testing.T
	sock string
}

func startTmux(t *testing.T, cols, rows int, argv ...string) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the terminal test runs `backfill status --watch` in a tmux pane (Debian: apt-get install tmux)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	// The pane stays after the shell exits, so that the screen can still be read; no status
	// line, so the pane is the whole screen.
	require.NoError(t, os.WriteFile(conf, []byte("set-option -g status off\nset-option -wg remain-on-exit on\n"), 0o600))
	p := &tmuxPane{t: t, sock: filepath.Join(dir, "tmux.sock")}
	// A shell runs the command and prints its exit status on the screen: tmux's own record of
	// it (pane_dead_status) sometimes never comes when the command exits on Ctrl-C. The shell
	// traps SIGINT, so it outlives the command (which gets the default disposition back).
	args := append([]string{"new-session", "-d", "-s", "status", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows),
		"sh", "-c", `trap : INT; "$@"; echo "[exit $?]"`, "sh"}, argv...)
	cmd := exec.Command("tmux", append([]string{"-S", p.sock, "-f", conf}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "TMUX=") && !strings.HasPrefix(kv, "BACKFILL_") &&
			!strings.HasPrefix(kv, "SUPABASE_SERVICE_ROLE_KEY=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "tmux new-session: %s", out)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	return p
}

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	require.NoError(p.t, err, "tmux %s: %s", args, out)
	return string(out)
}

// screen is what the terminal shows now, as text.
func (p *tmuxPane) screen() string { return p.tmux("capture-pane", "-p", "-t", "status") }

// waitScreen polls the screen until ok says yes and returns it; every screen seen goes to seen.
func (p *tmuxPane) waitScreen(what string, ok func(string) bool, seen func(string)) string {
	p.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := p.screen()
		if seen != nil {
			seen(s)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the screen never showed %s:\n%s", what, s)
		}
		<-tick.C
	}
}

// exitStatus waits for the command to exit and returns its status, as the wrapping shell
// printed it.
func (p *tmuxPane) exitStatus() int {
	p.t.Helper()
	re := regexp.MustCompile(`\[exit (\d+)\]`)
	m := re.FindStringSubmatch(p.waitScreen("the command exit", re.MatchString, nil))
	code, err := strconv.Atoi(m[1])
	require.NoError(p.t, err)
	return code
}

// rowPercent finds the percentage on the screen's row of symbol and timeframe, -1 when the row
// is not there.
func rowPercent(screen, symbol, tf string) int {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(symbol) + `\s+` + tf + `\s+[█▏▎▍▌▋▊▉░]+\s+(\d+)%`).FindStringSubmatch(screen)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestStatusWatchTerminal(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	fake := newFakeControl()
	m15 := fake.addJob("ZZZZ", tfM15, 28, 7*day)
	h1 := fake.addJob("ZZZZ", tfH1, 90, 30*day)
	url := fake.serve(t)

	pane := startTmux(t, 120, 30, bin, "status", "ZZZZ", "--watch", "--url", url, "--interval", "50ms")
	<-fake.watching
	screen := pane.waitScreen("both rows at 0%", func(s string) bool { return rowPercent(s, "ZZZZ", "m15") == 0 && rowPercent(s, "ZZZZ", "h1") == 0 }, nil)
	require.Contains(t, screen, "backfill status · ZZZZ · "+url)
	require.Regexp(t, `(?m)^ZZZZ\s+m15\s+░{20}\s+0%\s+0\s+`+strconv.Itoa(len(m15))+`\s+0\s+0`, screen)

	// Half the m15 slices: the bar moves in place, part way.
	half := len(m15) / 2
	for _, r := range m15[:half] {
		fake.move(t, r, runRunning, 0)
		fake.move(t, r, runSuccess, 672)
	}
	screen = pane.waitScreen("m15 part way", func(s string) bool {
		p := rowPercent(s, "ZZZZ", "m15")
		return p > 0 && p < 100 && strings.Contains(s, strconv.Itoa(672*half))
	}, nil)
	require.Len(t, regexp.MustCompile(`(?m)^ZZZZ\s+m15\s`).FindAllString(screen, -1), 1, "redrawn in place, not appended:\n%s", screen)
	require.Contains(t, screen, "running→success bars=672", "recent events listed")

	// A retry: the event has the error's code, the screen gets its message from ListJobRuns.
	fake.move(t, h1[0], runRunning, 0)
	fake.retry(t, h1[0], "retryable", "synthetic: injected failure")
	pane.waitScreen("the retried error", func(s string) bool {
		return regexp.MustCompile(`(?m)^ZZZZ\s+h1\s+░{20}\s+0%\s+0\s+` + strconv.Itoa(len(h1)) + `\s+0\s+0\s+retryable: synthetic: injected failure$`).MatchString(s)
	}, nil)

	for _, r := range append(m15[half:], h1...) {
		fake.move(t, r, runRunning, 0)
		fake.move(t, r, runSuccess, 672)
	}
	screen = pane.waitScreen("both rows at 100%", func(s string) bool {
		return rowPercent(s, "ZZZZ", "m15") == 100 && rowPercent(s, "ZZZZ", "h1") == 100
	}, nil)
	require.Regexp(t, `(?m)^ZZZZ\s+m15\s+█{20}\s+100%\s+`+strconv.Itoa(672*len(m15))+`\s+0\s+0\s+0\s*$`, screen)
	require.Contains(t, screen, "2/2 jobs complete, 0 queued, 0 running, 0 failed")

	pane.tmux("send-keys", "-t", "status", "C-c")
	require.Equal(t, 0, pane.exitStatus(), "Ctrl-C ends the watch cleanly:\n%s", pane.screen())
}

// controlPlaneMissing names what of the server side of backfill.v1.ControlService is not there
// yet, "" when it is: the end-to-end tests need a `backfill serve` that serves it.
func controlPlaneMissing() string {
	contains := func(glob, what string) bool {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(what)) {
				return true
			}
		}
		return false
	}
	if !contains("../../control/*.go", "func New(") {
		return "package control/ with control.New (the ControlService implementation) does not exist yet"
	}
	if !contains("*.go", "control.New(") {
		return "control.New is not wired into `backfill serve`/`backfill dev` (cmd/backfill) yet"
	}
	return ""
}

// startBackfillServe runs `backfill serve` as a process with the synthetic provider, slowed down
// so that a backfill takes long enough to watch it move.
func startBackfillServe(t *testing.T, bin string) (api, dbURL string) {
	t.Helper()
	dbURL = pgtest.URL(t)
	slot := fmt.Sprintf("status_test_%d", slotSeq.Add(1))
	cmd := exec.Command(bin, "serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--replication-slot", slot,
		"--provider", "synthetic", "--synthetic-latency", "300ms", "--concurrency", "1", "--log-level", "warn")
	out := newOutputWaiter()
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return out.waitMatch(t, `api: (http://\S+)\n`)[1], dbURL
}

func TestStatusDevEndToEnd(t *testing.T) {
	t.Parallel()
	if missing := controlPlaneMissing(); missing != "" {
		t.Skip("end-to-end `backfill status` against a real server needs the server side of backfill.v1.ControlService: " + missing)
	}
	bin := buildBinary(t)
	api, dbURL := startBackfillServe(t, bin)
	ctx := t.Context()
	// Slices are a provider page long, so a default window is one or two slices and its bar
	// would jump from 0 to 100%. A two-year m15 window takes several slices: the bar moves.
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE timeframe_settings SET default_window_days = 730 WHERE timeframe = 'm15'`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	// The anon key is refused with a message naming the key to use.
	r := runCmd(ctx, map[string]string{"BACKFILL_SERVICE_ROLE_KEY": server.LocalAnonKey}, "status", "--url", api)
	requireOneLineError(t, r, "permission_denied")

	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		pane := startTmux(t, 120, 30, bin, "status", "STATTERM", "--watch", "--url", api, "--interval", "100ms")
		pane.waitScreen("the empty view", func(s string) bool { return strings.Contains(s, "no job definitions for STATTERM yet") }, nil)
		r := runCmd(ctx, nil, "sync", "STATTERM", "--url", api, "--timeframes", "m15")
		require.Equal(t, 0, r.code, r.stderr)
		partial := false
		screen := pane.waitScreen("m15 at 100%", func(s string) bool {
			return rowPercent(s, "STATTERM", "m15") == 100
		}, func(s string) {
			if p := rowPercent(s, "STATTERM", "m15"); p > 0 && p < 100 {
				partial = true
			}
		})
		require.True(t, partial, "a bar was seen part way before 100%")
		require.Regexp(t, `(?m)^STATTERM\s+m15\s+█{20}\s+100%\s+[1-9]\d*\s+0\s+0\s+0\s*$`, screen)
		pane.tmux("send-keys", "-t", "status", "C-c")
		require.Equal(t, 0, pane.exitStatus(), pane.screen())
	})
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, stop, _ := startStatus(t, nil, "STATPLAIN", "--watch", "--url", api, "--interval", "100ms")
		stdout.waitMatch(t, "no job definitions for STATPLAIN yet")
		r := runCmd(ctx, nil, "sync", "STATPLAIN", "--url", api, "--timeframes", "m15")
		require.Equal(t, 0, r.code, r.stderr)
		stdout.waitMatch(t, `(?m)^\S+ STATPLAIN m15 \S+ running->success bars=\d+ coverage=100%$`)
		require.Equal(t, 0, stop(), stderr.String())
		require.NotContains(t, stdout.String(), "\x1b")
		for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n")[1:] {
			require.Regexp(t, `^\S+Z STATPLAIN m15 \S+ \w+->\w+`, l, "one line per event")
		}
		// The window takes several slices: coverage rises in steps.
		require.Regexp(t, `(?m)^\S+ STATPLAIN m15 \S+ running->success bars=\d+ coverage=[1-9]\d?%$`, stdout.String())

		// A snapshot afterwards agrees.
		r = runCmd(ctx, nil, "status", "STATPLAIN", "--url", api)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `(?m)^STATPLAIN\s+m15\s+\[#{20}\] 100%\s+[1-9]\d*\s+0\s+0\s+0$`, r.stdout)
	})
}
