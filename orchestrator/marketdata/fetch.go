package marketdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// fetcher is the HTTP plumbing Alpaca and Massive share: the limiter (with its waits counted),
// one GET, the pauses the provider asks for, and the classification of what came back.
type fetcher struct {
	provider string
	client   *http.Client
	limiter  Limiter
	metrics  *metrics
	logger   *slog.Logger
	now      func() time.Time
	authHint string // appended to 401/403 messages: which keys to check
	maxBody  int64
}

// minWait is the shortest Wait counted as a wait in the metrics: below it a token was at hand,
// and the time is the limiter's own overhead (a mutex, a round trip to a shared budget).
const minWait = time.Millisecond

// wait blocks until the limiter allows one request, counting the time spent in the metrics.
func (f *fetcher) wait(ctx context.Context) error {
	start := time.Now()
	err := f.limiter.Wait(ctx)
	d := time.Since(start)
	if d >= minWait {
		f.metrics.wait(d)
		f.logger.Debug("waited for provider rate limiter", "provider", f.provider, "wait_ms", d.Milliseconds())
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return interrupted(f.provider, "the wait for the rate limiter", ctx.Err())
	}
	var pe *Error
	if errors.As(err, &pe) {
		return err
	}
	// An injected limiter (a budget shared through the database) may fail on its own.
	return &Error{Provider: f.provider, Kind: Retryable, Code: CodeLimiter, Message: "rate limiter: " + safeText(err.Error()), Err: err}
}

// get performs one rate-limited GET, counted under purpose (a Purpose… constant), and returns
// the body of a 2xx answer, or a classified *Error (or the context's error when ctx ended).
// A 429's Retry-After and an exhausted window (X-RateLimit-Remaining 0 until X-RateLimit-Reset)
// pause the limiter when it is a Pauser, so the next request waits for the provider.
func (f *fetcher) get(ctx context.Context, u *url.URL, header http.Header, purpose string) ([]byte, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &Error{Provider: f.provider, Kind: Permanent, Code: CodeInvalidRequest, Message: "build request: " + safeText(redactErr(err).Error()), Err: redactErr(err)}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")

	f.metrics.request(purpose)
	start := time.Now()
	body, status, hdr, err := f.roundTrip(req)
	elapsed := time.Since(start)
	f.metrics.observe(elapsed)
	f.logger.Debug("provider request", "provider", f.provider, "path", u.Path, "status", status, "duration_ms", elapsed.Milliseconds())
	if hdr != nil {
		f.pause(ctx, status, hdr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(f.provider, "the request", ctx.Err())
		}
		return nil, err
	}
	if status >= 200 && status < 300 {
		return body, nil
	}
	return nil, f.statusError(status, hdr, body)
}

// pause tells a pausing limiter to hold requests back until the provider allows them again:
// after a 429, for Retry-After (else until X-RateLimit-Reset); after any answer whose
// X-RateLimit-Remaining is 0, until X-RateLimit-Reset (Alpaca's window end, Unix seconds).
func (f *fetcher) pause(ctx context.Context, status int, hdr http.Header) {
	p, ok := f.limiter.(Pauser)
	if !ok {
		return
	}
	now := f.now()
	var until time.Time
	if status == http.StatusTooManyRequests {
		d := parseRetryAfter(hdr.Get("Retry-After"), now)
		if d == 0 {
			d = parseRateLimitReset(hdr.Get("X-RateLimit-Reset"), now)
		}
		if d > 0 {
			until = now.Add(d)
		}
	}
	if strings.TrimSpace(hdr.Get("X-RateLimit-Remaining")) == "0" {
		if d := parseRateLimitReset(hdr.Get("X-RateLimit-Reset"), now); d > 0 && now.Add(d).After(until) {
			until = now.Add(d)
		}
	}
	if until.IsZero() {
		return
	}
	f.logger.Debug("pausing provider requests", "provider", f.provider, "status", status, "until", until.UTC().Format(time.RFC3339))
	p.Pause(ctx, until)
}

func (f *fetcher) roundTrip(req *http.Request) (body []byte, status int, hdr http.Header, err error) {
	resp, err := f.client.Do(req)
	if err != nil {
		err = redactErr(err)
		code, what := CodeNetwork, "request failed"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			code, what = CodeTimeout, "request timed out"
		}
		return nil, 0, nil, &Error{Provider: f.provider, Kind: Retryable, Code: code, Message: what + ": " + safeText(err.Error()), Err: err}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		err = redactErr(err)
		code := CodeNetwork
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			code = CodeTimeout
		}
		return nil, resp.StatusCode, resp.Header, &Error{Provider: f.provider, Kind: Retryable, Status: resp.StatusCode, Code: code,
			Message: "read response body: " + safeText(err.Error()), Err: err}
	}
	if int64(len(body)) > f.maxBody {
		return nil, resp.StatusCode, resp.Header, &Error{Provider: f.provider, Kind: Permanent, Status: resp.StatusCode, Code: CodeMalformed,
			Message: fmt.Sprintf("response body larger than %d bytes", f.maxBody)}
	}
	return body, resp.StatusCode, resp.Header, nil
}

// errorBody covers both providers' error shapes: Alpaca {"code": 42210000, "message": …};
// Massive {"status": "ERROR", "error": …} or {"status": "NOT_AUTHORIZED", "message": …}.
type errorBody struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Error   string          `json:"error"`
	Status  string          `json:"status"`
}

// statusError classifies a non-2xx answer by its status code (never by the body's "status"),
// taking the text from whichever field the body has. Bodies may be empty or HTML.
func (f *fetcher) statusError(status int, hdr http.Header, body []byte) *Error {
	e := &Error{Provider: f.provider, Status: status, Code: httpCode(status)}
	var eb errorBody
	text := ""
	if json.Unmarshal(body, &eb) == nil {
		text = eb.Message
		if text == "" {
			text = eb.Error
		}
		if c := strings.Trim(string(eb.Code), `"`); c != "" && c != "null" {
			e.Code = safeText(c)
		}
	}
	text = safeText(text)
	if text == "" {
		text = strings.ToLower(http.StatusText(status))
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = RateLimited
		e.RetryAfter = parseRetryAfter(hdr.Get("Retry-After"), f.now())
		if e.RetryAfter == 0 {
			// Alpaca announces its window's end as X-RateLimit-Reset, in Unix seconds.
			e.RetryAfter = parseRateLimitReset(hdr.Get("X-RateLimit-Reset"), f.now())
		}
		e.Message = "rate limited: " + text
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = Permanent
		e.Message = text + " — " + f.authHint
	case status == http.StatusRequestTimeout || status >= 500:
		e.Kind = Retryable
		e.Message = "server error: " + text
	default:
		e.Kind = Permanent
		e.Message = text
	}
	return e
}

// redactErr removes credentials from the URL inside a *url.Error.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		c := *ue
		c.URL = redactURL(c.URL)
		return &c
	}
	return err
}

// redactURL replaces the value of any apiKey query parameter.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "apiKey") {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// malformed is the error for a 2xx body that does not decode. A truncated body is the usual
// cause (a connection cut mid-transfer, a proxy), so it is retryable.
func malformed(provider string, status int, err error) *Error {
	return &Error{Provider: provider, Kind: Retryable, Status: status, Code: CodeMalformed,
		Message: "malformed response body: " + safeText(err.Error()), Err: err}
}

// defaultHTTPClient is used when a Config leaves HTTPClient nil.
func defaultHTTPClient() *http.Client { return &http.Client{Timeout: 30 * time.Second} }

// discard is the logger used when a Config leaves Logger nil.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
