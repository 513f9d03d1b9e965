package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	connectrpc "connectrpc.com/connect"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/symbolsync/backfill/client"
	backfillv1 "github.com/symbolsync/backfill/gen/backfill/v1"
	"github.com/symbolsync/backfill/gen/backfill/v1/backfillv1connect"
	"github.com/symbolsync/backfill/server"
)

const (
	// statusResync is how often --watch reloads everything: it catches what no run event
	// carries (a definition disabled or changed, events sent before the stream was open) and
	// moves the windows along with the clock.
	statusResync = 30 * time.Second
	// statusRecent is how many events the terminal view lists under the table.
	statusRecent = 5
	// statusPageSize is the page size of the list calls (the most the API allows).
	statusPageSize = 1000
)

func runStatus(ctx context.Context, e *env, args []string) error {
	var (
		url, key          string
		watch, plain      bool
		interval, timeout time.Duration
	)
	f := newFlags(e, "status", "[SYMBOL] [--watch]",
		"Show the backfill through the control plane (backfill.v1.ControlService): per symbol and timeframe\n"+
			"the share of the job's window fetched as a progress bar, the bars stored, queued, running and\n"+
			"failed runs, and the last error. Without SYMBOL, every symbol with a job definition.\n"+
			"--watch redraws live from the WatchBackfill stream until Ctrl-C. When stdout is not a terminal\n"+
			"(or with --plain) the output is plain text: one line per row and, with --watch, one per event.\n"+
			"NO_COLOR turns colours off.")
	f.String(&url, "url", "BACKFILL_URL", client.DefaultURL, "the API URL")
	f.String(&key, "key", "BACKFILL_SERVICE_ROLE_KEY", "",
		"a service_role key or an sb_secret_ key; prefer the environment, flags show in process listings (default: SUPABASE_SERVICE_ROLE_KEY, else the local development service_role key)")
	f.Bool(&watch, "watch", "BACKFILL_STATUS_WATCH", false, "keep redrawing from the live WatchBackfill stream until Ctrl-C")
	f.Bool(&plain, "plain", "BACKFILL_STATUS_PLAIN", false, "plain text even on a terminal: no colours, no redraws")
	f.Duration(&interval, "interval", "BACKFILL_STATUS_INTERVAL", time.Second, "with --watch: how often the screen is redrawn and bar counts are refreshed")
	f.Duration(&timeout, "timeout", "BACKFILL_STATUS_TIMEOUT", 30*time.Second, "bound on each request (not on the --watch stream)")
	positional, rest := splitArgs(f.fs, args)
	if err := f.Parse(rest); err != nil {
		return err
	}
	if len(positional) > 1 {
		return fmt.Errorf("%w: at most one symbol, got %q", errUsage, positional)
	}
	if interval <= 0 || timeout <= 0 {
		return fmt.Errorf("%w: --interval and --timeout must be positive", errUsage)
	}
	url = strings.TrimRight(url, "/")
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("%w: --url %q must start with http:// or https://", errUsage, url)
	}
	key, keyFrom := controlKey(f, e, key)

	// One transport of our own, so that its connections go with the command (tests run it
	// in-process).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	s := &statusCmd{
		client:   backfillv1connect.NewControlServiceClient(&http.Client{Transport: &keyTransport{key: key, base: transport}}, url),
		url:      url,
		keyFrom:  keyFrom,
		timeout:  timeout,
		interval: interval,
		out:      e.stdout,
		errOut:   e.stderr,
		now:      time.Now,
		ttyFD:    -1,
	}
	if len(positional) == 1 {
		s.symbol = strings.ToUpper(strings.TrimSpace(positional[0]))
	}
	s.style = statusStyle{plain: true}
	if fd, ok := terminalFD(e.stdout); ok && !plain && e.getenv("TERM") != "dumb" {
		s.ttyFD = fd
		// no-color.org: present and not empty.
		s.style = statusStyle{color: e.getenv("NO_COLOR") == ""}
		s.columns, s.lines = e.getenv("COLUMNS"), e.getenv("LINES")
		s.style.width, _ = s.size()
	}
	if watch {
		return s.watchAgain(ctx)
	}
	return s.once(ctx)
}

// Backoff of watchAgain: doubling from statusRetryBase up to statusRetryMax, jittered.
const (
	statusRetryBase = 500 * time.Millisecond
	statusRetryMax  = 10 * time.Second
)

// watchEnded is a watch that ended because the server closed the stream or went away (a
// restart, a deploy): watching again may well work. err is nil when the server closed it.
type watchEnded struct{ err error }

func (w watchEnded) Error() string {
	if w.err == nil {
		return "the server ended the watch stream"
	}
	return w.err.Error()
}

func (w watchEnded) Unwrap() error { return w.err }

// watchAgain runs watch and, once a watch has been open, watches again with a backoff when the
// server ends it or goes away, until ctx ends: an operator's view survives a server restart.
// A first watch that cannot start is an error at once (wrong URL, key, or no server).
func (s *statusCmd) watchAgain(ctx context.Context) error {
	everOpened, failures := false, 0
	for {
		opened, err := s.watch(ctx)
		everOpened = everOpened || opened
		var ended watchEnded
		if ctx.Err() != nil {
			return nil
		}
		if !errors.As(err, &ended) || !everOpened {
			return err
		}
		if opened {
			failures = 0
		}
		failures++
		wait := min(statusRetryBase<<min(failures-1, 10), statusRetryMax)
		wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		fmt.Fprintf(s.errOut, "backfill status: %v; watching again in %s\n", ended, wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// splitArgs separates positional arguments (the symbol) from flags, wherever they stand, using
// fs's own definitions to know which flags take a value.
func splitArgs(fs *flag.FlagSet, args []string) (positional, flagArgs []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(positional, args[i+1:]...), flagArgs
		case len(a) < 2 || a[0] != '-':
			positional = append(positional, a)
			continue
		}
		flagArgs = append(flagArgs, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		fl := fs.Lookup(name)
		if fl == nil {
			continue // Parse reports it (or prints the help)
		}
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flagArgs = append(flagArgs, args[i])
		}
	}
	return positional, flagArgs
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// terminalFD returns w's file descriptor when w is a terminal. x/term is not a dependency; a
// character device is what a terminal is to Stat (so is /dev/null, which takes the escapes
// without harm).
func terminalFD(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return -1, false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return -1, false
	}
	return int(f.Fd()), true
}

// keyTransport sends the key the way supabase-js does, which is what server/auth.go reads: in
// apikey, and as the bearer unless it is an sb_ key (never sent as a bearer).
type keyTransport struct {
	key  string
	base http.RoundTripper
}

func (t *keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("apikey", t.key)
	if !strings.HasPrefix(t.key, "sb_") {
		r.Header.Set("Authorization", "Bearer "+t.key)
	}
	return t.base.RoundTrip(r)
}

// statusCmd is one run of `backfill status`.
type statusCmd struct {
	client   backfillv1connect.ControlServiceClient
	url      string
	keyFrom  string // where the key came from, for the error that refuses it
	symbol   string // "" for all
	timeout  time.Duration
	interval time.Duration
	style    statusStyle
	out      io.Writer
	errOut   io.Writer
	now      func() time.Time
	ttyFD    int    // stdout's descriptor when it is a terminal, else -1
	columns  string // $COLUMNS and $LINES, the size when the terminal does not tell
	lines    string
	recent   []string
}

// size is the terminal's size: asked of the terminal on every frame (it may have been resized),
// else $COLUMNS and $LINES, else 80×24.
func (s *statusCmd) size() (width, height int) {
	if ws, err := unix.IoctlGetWinsize(s.ttyFD, unix.TIOCGWINSZ); err == nil && ws.Col > 0 && ws.Row > 0 {
		return int(ws.Col), int(ws.Row)
	}
	width, height = 80, 24
	if n, err := strconv.Atoi(s.columns); err == nil && n > 0 {
		width = n
	}
	if n, err := strconv.Atoi(s.lines); err == nil && n > 0 {
		height = n
	}
	return width, height
}

// once prints the status and returns.
func (s *statusCmd) once(ctx context.Context) error {
	v, err := s.load(ctx)
	if err != nil {
		return err
	}
	rows := v.rows(s.now())
	if len(rows) == 0 {
		fmt.Fprintln(s.out, renderEmpty(s.symbol))
		return nil
	}
	lines := renderTable(rows, s.style)
	if !s.style.plain {
		lines = append(lines, "", renderSummary(rows))
	}
	_, err = io.WriteString(s.out, strings.Join(lines, "\n")+"\n")
	return err
}

// watch shows the status and keeps it current from the WatchBackfill stream until ctx ends or
// the server ends the stream. On a terminal it redraws the screen at most every interval; in
// plain mode it prints the table once, then one line per event.
//
// opened reports whether the stream opened (the server listened) before it ended.
func (s *statusCmd) watch(ctx context.Context) (opened bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan *backfillv1.WatchBackfillResponse)
	openedc := make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		defer close(ended)
		// The call returns once the server sent its response headers, which our server does
		// as soon as it listens for changes.
		stream, err := s.client.WatchBackfill(streamCtx, &backfillv1.WatchBackfillRequest{Symbol: s.symbol})
		if err != nil {
			ended <- err
			return
		}
		defer stream.Close()
		close(openedc)
		for stream.Receive() {
			select {
			case events <- stream.Msg():
			case <-streamCtx.Done():
				return
			}
		}
		ended <- stream.Err()
	}()
	defer func() {
		cancel()
		for range ended { // wait for the receiver to close the stream
		}
		if !s.style.plain {
			fmt.Fprintln(s.out) // the shell's prompt goes under the last frame
		}
	}()

	// Load only once the stream listens, so that no change falls between the two. A server that
	// holds its headers back until the first event gets statusOpenWait; the periodic reload
	// makes up for what falls in between then.
	select {
	case <-openedc:
		opened = true
	case err := <-ended:
		return false, s.streamEnded(ctx, err)
	case <-ctx.Done():
		return false, nil
	case <-time.After(statusOpenWait):
		opened = true // as far as we can tell: the load below shows whether the server answers
	}
	v, err := s.load(ctx)
	if err != nil {
		return opened, s.stopped(ctx, err)
	}
	if s.style.plain {
		rows := v.rows(s.now())
		if len(rows) == 0 {
			fmt.Fprintln(s.out, renderEmpty(s.symbol))
		} else {
			fmt.Fprintln(s.out, strings.Join(renderTable(rows, s.style), "\n"))
		}
	} else {
		s.draw(v)
	}

	redraw := time.NewTicker(s.interval)
	defer redraw.Stop()
	resync := time.NewTicker(statusResync)
	defer resync.Stop()
	need := newStatusNeeds()
	for {
		select {
		case <-ctx.Done():
			return opened, nil
		case err := <-ended:
			s.draw(v)
			return opened, s.streamEnded(ctx, err)
		case ev := <-events:
			if ev.GetRun() == nil {
				continue
			}
			run := v.applyEvent(ev)
			if run == nil {
				continue // the view has a later state already
			}
			if _, known := v.defs[run.GetJobDefId()]; !known {
				need.defs[run.GetSymbol()] = true
			}
			if run.GetStatus() == backfillv1.RunStatus_RUN_STATUS_SUCCESS {
				need.bars[run.GetSymbol()] = true
			}
			if run.GetErrorCode() != "" && run.GetErrorMessage() == "" {
				need.runs[run.GetJobDefId()] = true // the event has the error's code, not its message
			}
			shown := proto.CloneOf(ev)
			shown.Run = run
			line := renderEvent(shown, v.row(run.GetJobDefId(), s.now()), s.now(), s.style)
			if s.style.plain {
				fmt.Fprintln(s.out, line)
				continue
			}
			s.recent = append(s.recent, line)
			s.recent = s.recent[max(0, len(s.recent)-statusRecent):]
		case <-redraw.C:
			if s.style.plain {
				clear(need.bars) // event lines show no bar counts
			}
			if err := s.refresh(ctx, v, need); err != nil {
				return opened, s.stopped(ctx, err)
			}
			need = newStatusNeeds()
			s.draw(v)
		case <-resync.C:
			fresh, err := s.load(ctx)
			if err != nil {
				return opened, s.stopped(ctx, err)
			}
			v = fresh
			s.draw(v)
		}
	}
}

// statusOpenWait is how long watch waits for the stream to open before it loads anyway.
const statusOpenWait = 2 * time.Second

// streamEnded is the end of the watch when the stream ended with err (nil: the server closed
// it): a watchEnded when the server closed it or went away (unavailable), so that watchAgain
// watches again.
func (s *statusCmd) streamEnded(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case err == nil:
		return watchEnded{}
	case connectrpc.CodeOf(err) == connectrpc.CodeUnavailable:
		return watchEnded{s.rpcError("watch the backfill", err)}
	}
	return s.rpcError("watch the backfill", err)
}

// statusNeeds is what the events said the view should re-read at the next redraw.
type statusNeeds struct {
	defs map[string]bool // symbols with runs of definitions the view does not know
	bars map[string]bool // symbols whose bar counts changed
	runs map[string]bool // definitions whose runs' error messages the events did not carry
}

func newStatusNeeds() statusNeeds {
	return statusNeeds{defs: map[string]bool{}, bars: map[string]bool{}, runs: map[string]bool{}}
}

// stopped is err, unless ctx ended (Ctrl-C while a request was out), which is no failure.
func (s *statusCmd) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// draw redraws the terminal view; plain output has no screen to redraw.
func (s *statusCmd) draw(v *statusView) {
	if s.style.plain {
		return
	}
	s.style.width, s.style.height = s.size()
	now := s.now()
	scope := "all symbols"
	if s.symbol != "" {
		scope = s.symbol
	}
	title := fmt.Sprintf("backfill status · %s · %s · %s", scope, s.url, now.Format(time.TimeOnly))
	// A terminal that went away shows nothing either way; Ctrl-C ends the command.
	_, _ = io.WriteString(s.out, renderScreen(title, s.symbol, v.rows(now), s.recent, s.style))
}

// load reads the definitions, runs and bar counts of the command's scope.
func (s *statusCmd) load(ctx context.Context) (*statusView, error) {
	v := newStatusView()
	defs, err := s.definitions(ctx, s.symbol)
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		v.putDefinition(d)
	}
	if err := s.loadRuns(ctx, v, &backfillv1.ListJobRunsRequest{Symbol: s.symbol}); err != nil {
		return nil, err
	}
	symbols := v.symbols()
	if s.symbol != "" && len(symbols) == 0 {
		symbols = []string{s.symbol}
	}
	for _, sym := range symbols {
		if err := s.loadBars(ctx, v, sym); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// refresh re-reads what the stream said changed.
func (s *statusCmd) refresh(ctx context.Context, v *statusView, need statusNeeds) error {
	for sym := range need.defs {
		defs, err := s.definitions(ctx, sym)
		if err != nil {
			return err
		}
		for _, d := range defs {
			v.putDefinition(d)
		}
	}
	for defID := range need.runs {
		if err := s.loadRuns(ctx, v, &backfillv1.ListJobRunsRequest{JobDefId: defID}); err != nil {
			return err
		}
	}
	for sym := range need.bars {
		if err := s.loadBars(ctx, v, sym); err != nil {
			return err
		}
	}
	return nil
}

// loadRuns reads every page of the runs req selects into v.
func (s *statusCmd) loadRuns(ctx context.Context, v *statusView, req *backfillv1.ListJobRunsRequest) error {
	req.PageSize = statusPageSize
	for {
		res, err := call(ctx, s.timeout, s.client.ListJobRuns, req)
		if err != nil {
			return s.rpcError("list job runs", err)
		}
		for _, r := range res.GetRuns() {
			v.putRun(r)
		}
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			return nil
		}
	}
}

func (s *statusCmd) definitions(ctx context.Context, symbol string) ([]*backfillv1.JobDefinition, error) {
	var (
		out   []*backfillv1.JobDefinition
		token string
	)
	for {
		res, err := call(ctx, s.timeout, s.client.ListJobDefinitions, &backfillv1.ListJobDefinitionsRequest{Symbol: symbol, PageSize: statusPageSize, PageToken: token})
		if err != nil {
			return nil, s.rpcError("list job definitions", err)
		}
		out = append(out, res.GetDefinitions()...)
		if token = res.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

func (s *statusCmd) loadBars(ctx context.Context, v *statusView, symbol string) error {
	res, err := call(ctx, s.timeout, s.client.GetSymbolCoverage, &backfillv1.GetSymbolCoverageRequest{Symbol: symbol})
	if err != nil {
		return s.rpcError("get the coverage of "+symbol, err)
	}
	v.putCoverage(symbol, res.GetCoverage())
	return nil
}

// call makes one unary call bounded by timeout.
func call[Req, Res any](ctx context.Context, timeout time.Duration, fn func(context.Context, *Req) (*Res, error), req *Req) (*Res, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx, req)
}

// controlKey is the control plane's key and where it came from: --key, BACKFILL_SERVICE_ROLE_KEY
// (the flag's environment variable), SUPABASE_SERVICE_ROLE_KEY, else the local development key.
func controlKey(f *flags, e *env, key string) (string, string) {
	switch {
	case flagSet(f.fs, "key"):
		return key, "--key"
	case e.getenv("BACKFILL_SERVICE_ROLE_KEY") != "":
		return key, "BACKFILL_SERVICE_ROLE_KEY"
	case e.getenv("SUPABASE_SERVICE_ROLE_KEY") != "":
		return e.getenv("SUPABASE_SERVICE_ROLE_KEY"), "SUPABASE_SERVICE_ROLE_KEY"
	}
	return server.LocalServiceRoleKey, "the local development service_role key"
}

// rpcError turns a failed call into a message that says what to do.
func (s *statusCmd) rpcError(what string, err error) error {
	return controlRPCError(what, s.url, s.keyFrom, err)
}

// controlRPCError turns a failed control-plane call to url, made with the key from keyFrom,
// into a message that says what to do.
func controlRPCError(what, url, keyFrom string, err error) error {
	var netErr *net.OpError
	switch code := connectrpc.CodeOf(err); {
	case code == connectrpc.CodeUnauthenticated:
		return fmt.Errorf("%s: %s refused the key from %s (unauthenticated): pass the project's service_role key or an sb_secret_ key "+
			"with --key or BACKFILL_SERVICE_ROLE_KEY (or SUPABASE_SERVICE_ROLE_KEY): %w", what, url, keyFrom, err)
	case code == connectrpc.CodePermissionDenied:
		return fmt.Errorf("%s: the key from %s may not use the control plane (permission_denied): anon, publishable and user keys "+
			"are not enough; pass the project's service_role key or an sb_secret_ key with --key or BACKFILL_SERVICE_ROLE_KEY: %w", what, keyFrom, err)
	case code == connectrpc.CodeUnimplemented:
		return fmt.Errorf("%s: %s does not serve backfill.v1.ControlService (an older backfill, or not a backfill server): %w", what, url, err)
	case code == connectrpc.CodeUnavailable && errors.As(err, &netErr):
		return fmt.Errorf("%s: cannot reach %s (is `backfill dev` or `backfill serve` running there?): %w", what, url, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
