// Package httprequest is the `http_request` job class: one HTTP request
// whose answer must carry an expected status.
//
// Parameters: url (required, http or https), method (GET), headers (object;
// each value a string, or {"from_config": "<system_configs key>"} read at run
// time from system_configs, scope global; values never appear in logs,
// job_logs or River's queue), body (a string sent as is, or any other JSON
// value sent as JSON), expect_status (a code or a list of codes; default any
// 2xx), timeout_seconds (30; at most 3600).
//
// A run whose parameters hold secrets is queued with them redacted; the
// worker reads the real ones from its scheduled_jobs row when it runs.
package httprequest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/origin"
	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "http_request"

// Defaults of the http_request class.
const (
	DefaultTimeout    = ratelimit.DefaultRequestTimeout
	maxTimeout        = time.Hour
	responseReadLimit = 1 << 20
)

// Config is what the class needs.
type Config struct {
	// Pool is the database, where a run reads its schedule's parameters
	// and its from_config headers. Without it such runs fail.
	Pool *pgxpool.Pool

	// AppKeys decrypt encrypted system_configs values (ATIS_APP_KEY).
	// Defaults to none: an encrypted from_config header fails its run.
	AppKeys laravelcrypt.Keys
}

// Params are an http_request run's parameters.
type Params struct {
	Body           json.RawMessage            `json:"body"`
	ExpectStatus   json.RawMessage            `json:"expect_status"`
	Headers        map[string]json.RawMessage `json:"headers"`
	Method         string                     `json:"method"`
	TimeoutSeconds int                        `json:"timeout_seconds"`
	URL            string                     `json:"url"`

	expect  []int
	headers []header
	timeout time.Duration
}

// New returns the http_request class.
func New(cfg Config) workers.Class {
	// Go drops only Authorization and cookies on a redirect to another host
	// (not to another port or a subdomain); the configured headers, which
	// may hold keys, must not follow either. A request with a body follows
	// only 307/308 to the same origin: net/http would turn a 301/302/303
	// into a GET without the body, and its 200 would look like success.
	client := newClient(origin.CheckRedirect(nil))
	bodyClient := newClient(origin.CheckBodyRedirect(func(u *url.URL) string { return redact.URL(u.String()) }))
	source := paramSource{settings: settings.Reader{Pool: cfg.Pool, Keys: cfg.AppKeys}}
	return workers.Define(workers.Definition[*Params]{
		Name:    Name,
		Parse:   parse,
		Resolve: source.params,
		Timeout: func(p *Params) time.Duration { return timeoutOf(p.TimeoutSeconds) + 5*time.Second },
		Run: func(ctx context.Context, job workers.Job[*Params]) (any, error) {
			if job.Params.hasBody() {
				return do(ctx, bodyClient, job.Params)
			}
			return do(ctx, client, job.Params)
		},
		Redact: Redact,
	})
}

// newClient is a client that makes one try (River retries the attempt, by
// max_attempts) under redirect policy checkRedirect.
func newClient(checkRedirect func(*http.Request, []*http.Request) error) *retryablehttp.Client {
	client := retryablehttp.NewClient()
	client.HTTPClient = cleanhttp.DefaultPooledClient()
	client.HTTPClient.CheckRedirect = checkRedirect
	client.RetryMax = 0
	client.Logger = nil
	// The default handler folds the URL into its error; ours reports what
	// matters without repeating it.
	client.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return client
}

// timeoutOf is a request's timeout for timeout_seconds (0: the default).
func timeoutOf(seconds int) time.Duration {
	if seconds <= 0 {
		return DefaultTimeout
	}
	return min(time.Duration(seconds)*time.Second, maxTimeout)
}

// hasBody says whether the request sends a body.
func (p *Params) hasBody() bool { return len(p.Body) > 0 && string(p.Body) != "null" }

// Redact hides header values (a from_config reference, which names a key,
// is shown), URL credentials (user info, query and fragment values, path
// segments shaped like tokens) and body fields whose names say secret.
func Redact(params json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(params, &m) != nil {
		return json.RawMessage(`{"unreadable_parameters":true}`)
	}
	if h, ok := m["headers"].(map[string]any); ok {
		for k, v := range h {
			if !redact.IsConfigRef(v) {
				h[k] = redact.Marker
			}
		}
	}
	if s, ok := m["url"].(string); ok {
		m["url"] = redact.URL(s)
	}
	out, _ := json.Marshal(m)
	return redact.JSON(out) // body fields named password, token, secret…; URLs anywhere
}

// do makes the request of one attempt; its result is the status, the time
// it took and how much of the body was read.
func do(ctx context.Context, client *retryablehttp.Client, p *Params) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var body io.Reader
	if p.hasBody() {
		var s string
		if json.Unmarshal(p.Body, &s) == nil {
			body = strings.NewReader(s)
		} else {
			body = strings.NewReader(string(p.Body))
		}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, p.Method, p.URL, body)
	if err != nil {
		return nil, workers.Permanent(fmt.Errorf("http_request: build request: %s", redact.Error(err, p.URL)))
	}
	if body != nil && !isJSONString(p.Body) {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range p.headers {
		req.Header.Set(h.name, h.value)
	}
	req.Header.Set("User-Agent", "atis-scheduler")
	start := time.Now()
	resp, err := client.Do(req)
	target := p.Method + " " + redact.URL(p.URL)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("http_request: %s: no answer within %s", target, p.timeout)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("http_request: %s: %s", target, redact.Error(err, p.URL))
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, responseReadLimit))
	res := map[string]any{"status": resp.StatusCode, "duration_ms": time.Since(start).Milliseconds(), "bytes_read": n}
	if !p.statusOK(resp.StatusCode) {
		return res, fmt.Errorf("http_request: %s answered %d %s, expected %s",
			target, resp.StatusCode, http.StatusText(resp.StatusCode), p.expected())
	}
	return res, nil
}

func parse(raw json.RawMessage) (*Params, error) {
	var p Params
	if err := workers.DecodeParameters(Name, raw, &p); err != nil {
		return nil, err
	}
	var err error
	if p.headers, err = parseHeaders(p.Headers); err != nil {
		return nil, err
	}
	u, err := url.Parse(p.URL)
	switch {
	case p.URL == "":
		return nil, errors.New(`http_request parameters: "url" is required`)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf(`http_request parameters: "url" %q is not an absolute http(s) URL`, redact.URL(p.URL))
	}
	p.Method = strings.ToUpper(cmp.Or(p.Method, http.MethodGet))
	if strings.ContainsAny(p.Method, " \t\r\n/") {
		return nil, fmt.Errorf(`http_request parameters: "method" %q is not an HTTP method`, p.Method)
	}
	if p.TimeoutSeconds < 0 || time.Duration(p.TimeoutSeconds)*time.Second > maxTimeout {
		return nil, fmt.Errorf(`http_request parameters: "timeout_seconds" %d is out of range (1 to %d)`, p.TimeoutSeconds, int(maxTimeout.Seconds()))
	}
	p.timeout = timeoutOf(p.TimeoutSeconds)
	if len(p.ExpectStatus) > 0 && string(p.ExpectStatus) != "null" {
		var one int
		if json.Unmarshal(p.ExpectStatus, &one) == nil {
			p.expect = []int{one}
		} else if err := json.Unmarshal(p.ExpectStatus, &p.expect); err != nil || len(p.expect) == 0 {
			return nil, fmt.Errorf(`http_request parameters: "expect_status" must be a status code or a list of them, got %s`, p.ExpectStatus)
		}
		for _, code := range p.expect {
			if code < 100 || code > 599 {
				return nil, fmt.Errorf(`http_request parameters: "expect_status" %d is not an HTTP status code`, code)
			}
		}
	}
	return &p, nil
}

func (p *Params) statusOK(code int) bool {
	if len(p.expect) == 0 {
		return code >= 200 && code < 300
	}
	for _, c := range p.expect {
		if c == code {
			return true
		}
	}
	return false
}

func (p *Params) expected() string {
	if len(p.expect) == 0 {
		return "2xx"
	}
	s := make([]string, len(p.expect))
	for i, c := range p.expect {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, " or ")
}

func isJSONString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil
}
