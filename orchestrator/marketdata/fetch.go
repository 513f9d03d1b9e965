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

	"golang.org/x/time/rate"
)

// fetcher is the HTTP plumbing Alpaca and Massive share: the client-side limiter (with its
// waits counted), one GET, and the classification of what came back.
type fetcher struct {
	provider string
	client   *http.Client
	limiter  *rate.Limiter
	metrics  *metrics
	logger   *slog.Logger
	now      func() time.Time
	authHint string // appended to 401/403 messages: which keys to check
	maxBody  int64
}

// newLimiter allows perMinute requests a minute with the given burst.
func newLimiter(perMinute float64, burst int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perMinute/60), burst)
}

// wait blocks until the limiter allows one request, counting the wait in the metrics.
func (f *fetcher) wait(ctx context.Context) error {
	r := f.limiter.Reserve()
	if !r.OK() {
		return &Error{Provider: f.provider, Kind: Permanent, Code: CodeInvalidRequest, Message: "rate limiter refuses every request (burst 0)"}
	}
	d := r.Delay()
	if d <= 0 {
		return nil
	}
	f.metrics.wait(d)
	f.logger.Debug("waiting for provider rate limiter", "provider", f.provider, "wait_ms", d.Milliseconds())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return interrupted(f.provider, "the wait for the rate limiter", ctx.Err())
	}
}

// get performs one rate-limited GET and returns the body of a 2xx answer, or a classified
// *Error (or the context's error when ctx ended).
func (f *fetcher) get(ctx context.Context, u *url.URL, header http.Header) ([]byte, error) {
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

	start := time.Now()
	body, status, hdr, err := f.roundTrip(req)
	elapsed := time.Since(start)
	f.metrics.observe(elapsed)
	f.logger.Debug("provider request", "provider", f.provider, "path", u.Path, "status", status, "duration_ms", elapsed.Milliseconds())
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
