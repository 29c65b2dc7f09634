// Package pull is the request path the pull providers (http_json, scim,
// ics, csv) share: the credentials and configured headers, which go only
// to the integration's origin and to those it allows, retries with backoff
// and Retry-After, bounded reads, and errors that name the page and never
// a secret.
package pull

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/atis-edu/atis-scheduler/internal/origin"
	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// DefaultMaxRetries is how often a failed request is retried (connection
// errors, 429 and 5xx) unless the config says otherwise.
const DefaultMaxRetries = 4

const maxRetryAfter = 5 * time.Minute

// Credential types.
const (
	Bearer = "bearer"
	Basic  = "basic"
	APIKey = "api_key" // a header of one's choosing
)

// Credentials is an integration's credentials column.
type Credentials struct {
	Type     string `json:"type"`
	Token    string `json:"token"`
	Username string `json:"username"`
	Password string `json:"password"`
	Header   string `json:"header"`
	Value    string `json:"value"`
}

// ParseCredentials reads the credentials column, whose type is none or one
// of types, the provider's. Its errors never quote a value: they name
// provider and the missing key.
func ParseCredentials(provider string, raw json.RawMessage, types ...string) (Credentials, error) {
	var c Credentials
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("%s credentials: not a JSON object of the expected shape", provider)
		}
	}
	switch {
	case c.Type == "" || c.Type == "none":
	case !slices.Contains(types, c.Type):
		return c, fmt.Errorf("%s credentials: type %q is not one of %s, none", provider, c.Type, strings.Join(types, ", "))
	case c.Type == Bearer && c.Token == "":
		return c, fmt.Errorf(`%s credentials: bearer needs "token"`, provider)
	case c.Type == Basic && c.Username == "":
		return c, fmt.Errorf(`%s credentials: basic needs "username" and "password"`, provider)
	case c.Type == APIKey && (c.Header == "" || c.Value == ""):
		return c, fmt.Errorf(`%s credentials: api_key needs "header" and "value"`, provider)
	}
	return c, nil
}

func (c Credentials) apply(h http.Header) {
	switch c.Type {
	case Bearer:
		h.Set("Authorization", "Bearer "+c.Token)
	case Basic:
		req := http.Request{Header: h}
		req.SetBasicAuth(c.Username, c.Password)
	case APIKey:
		h.Set(c.Header, c.Value)
	}
}

// ParseURL checks that raw, the config's key, is an absolute http(s) URL.
func ParseURL(provider, key, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, fmt.Errorf("%s config: %q is required", provider, key)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("%s config: %q %q is not an absolute http(s) URL", provider, key, redact.URL(raw))
	case u.User != nil:
		return nil, fmt.Errorf("%s config: %q has a user or password: put them in credentials", provider, key)
	}
	return u, nil
}

// ParseOrigins reads allowed_origins as origin.Parse writes them.
func ParseOrigins(provider string, list []string) ([]string, error) {
	out := make([]string, len(list))
	for i, o := range list {
		var err error
		if out[i], err = origin.Parse(o); err != nil {
			return nil, fmt.Errorf(`%s config: "allowed_origins" entry %d (%q) is not an origin like "https://cdn.example.org": %w`,
				provider, i+1, redact.URL(o), err)
		}
	}
	return out, nil
}

// Settings are the config keys every pull provider reads alike: each
// provider's Config embeds them.
type Settings struct {
	// AllowedOrigins are origins ("https://cdn.example.org") besides the
	// integration URL's that may receive the credentials and configured
	// headers: on a redirect there, or (http_json) for a next page there.
	// Defaults to none.
	AllowedOrigins []string `json:"allowed_origins"`
	// TimeoutSeconds bounds each request, body included, from when it has
	// its turn under api_rate_limit. Defaults to the provider's
	// DefaultTimeout: 30 seconds, csv's 600.
	TimeoutSeconds int `json:"timeout_seconds"`
	// MaxRetries of a request (connection errors, 429, 5xx). Defaults to 4.
	MaxRetries *int `json:"max_retries"`
}

// Timeout is timeout_seconds, or def when it is not set.
func (s Settings) Timeout(def time.Duration) time.Duration {
	if s.TimeoutSeconds == 0 {
		return def
	}
	return time.Duration(s.TimeoutSeconds) * time.Second
}

// Options configure a Client.
type Options struct {
	// Base is the integration's URL: its origin may receive the
	// credentials and Headers.
	Base *url.URL
	// Settings are the config's; their AllowedOrigins (as ParseOrigins
	// returns them) may receive the credentials and Headers too.
	Settings
	// DefaultTimeout is the provider's, for a config without
	// timeout_seconds.
	DefaultTimeout time.Duration
	Credentials    Credentials
	// Headers are sent with every request (http_json's config.headers):
	// secrets as much as the credentials.
	Headers map[string]string
	// Accept is the Accept header.
	Accept string
}

// Client makes a provider's requests.
type Client struct {
	opts    Options
	timeout time.Duration // of each attempt
	origin  string
	retry   *retryablehttp.Client
	trusted []string
}

// NewClient wraps the engine's client (its transport counts requests and
// honours the rate limit). Requests must be made under the context it
// returns, which carries the timeout.
func NewClient(ctx context.Context, engine *http.Client, o Options) (*Client, context.Context) {
	c := &Client{opts: o, origin: origin.Of(o.Base), timeout: o.Timeout(o.DefaultTimeout)}
	c.trusted = append([]string{c.origin}, o.AllowedOrigins...)
	perAttempt := *engine
	perAttempt.CheckRedirect = origin.CheckRedirect(c.trusted, c.secretHeaders()...)
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &perAttempt
	rc.Logger = nil
	rc.RetryMax = *cmp.Or(o.MaxRetries, new(DefaultMaxRetries))
	rc.RetryWaitMin, rc.RetryWaitMax = 200*time.Millisecond, 10*time.Second
	rc.Backoff = backoff
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.CheckRetry = checkRetry
	c.retry = rc
	return c, ratelimit.WithRequestTimeout(ctx, c.timeout)
}

// secretHeaders names every header that carries a credential or was
// configured: none may follow a redirect to another origin.
func (c *Client) secretHeaders() []string {
	names := []string{"Authorization"}
	if c.opts.Credentials.Type == APIKey {
		names = append(names, c.opts.Credentials.Header)
	}
	for k := range c.opts.Headers {
		names = append(names, k)
	}
	return names
}

// Get requests target (page n of the sync) and returns the response of a
// 2xx answer; the caller closes its body. A 401 or 403 is an
// *provider.AuthError. A target on an origin that may not receive the
// credentials is refused before any request goes there: only a next page
// can be one (http_json's), the first is at Base.
func (c *Client) Get(ctx context.Context, target string, page int) (*http.Response, error) {
	shown := redact.URL(target)
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("page %d: %s is not a URL", page, shown)
	}
	if o := origin.Of(u); !slices.Contains(c.trusted, o) {
		return nil, fmt.Errorf("%w: page %d: the next page is on %s, not on the integration's origin %s; add it to config.allowed_origins to allow it",
			provider.ErrPermanent, page, o, c.origin)
	}
	r, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("page %d: %s: %w", page, shown, err)
	}
	r.Header.Set("Accept", c.opts.Accept)
	r.Header.Set("User-Agent", "atis-scheduler")
	for k, v := range c.opts.Headers {
		r.Header.Set(k, v)
	}
	c.opts.Credentials.apply(r.Header)
	resp, err := c.retry.Do(r)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("page %d: %s: %s", page, shown, describe(err, c.timeout, target))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		resp.Body.Close()
		return nil, &provider.AuthError{Status: resp.StatusCode, Page: page}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		resp.Body.Close()
		return nil, fmt.Errorf("page %d: %s answered %d %s", page, shown, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return resp, nil
}

// describe names a request or body-read failure without the raw URL (it
// may carry a key).
func describe(err error, timeout time.Duration, target string) string {
	var uerr *url.Error
	switch {
	case errors.As(err, &uerr) && uerr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", timeout)
	case strings.Contains(err.Error(), "stopped after") && strings.Contains(err.Error(), "redirects"):
		return "too many redirects (a redirect loop?)"
	default:
		return redact.Error(err, target)
	}
}

// ErrTooLarge is Client.Read's error for a body larger than its limit.
var ErrTooLarge = errors.New("pull: the body is larger than the limit")

// Read reads resp's body, at most limit bytes, into a buffer sized once
// when the length is announced (io.ReadAll's growth would hold about twice
// the body at its peak). A body larger than limit is ErrTooLarge, unread
// when Content-Length says so up front; a failed read is described as
// describe does, target being the URL asked for (the caller returns ctx's
// error instead when ctx has ended).
func (c *Client) Read(resp *http.Response, limit int64, target string) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, ErrTooLarge
	}
	body, err := readBody(resp, limit+1)
	switch {
	case err != nil:
		return nil, errors.New(describe(err, c.timeout, target))
	case int64(len(body)) > limit:
		return nil, ErrTooLarge
	}
	return body, nil
}

// readBody reads at most limit bytes of resp's body.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength < 0 {
		return io.ReadAll(io.LimitReader(resp.Body, limit))
	}
	buf := make([]byte, min(resp.ContentLength+1, limit))
	n, err := io.ReadFull(resp.Body, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) && int64(n) == resp.ContentLength {
		err = nil // the announced length, all of it
	}
	return buf[:n], err
}

// Preview quotes the start of b, trimmed, for a message about it.
func Preview(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 80 {
		return fmt.Sprintf("%q…", b[:80])
	}
	return fmt.Sprintf("%q", b)
}

// checkRetry is retryablehttp's default policy, except that a wait for the
// rate limit that would pass the run's deadline is final.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if _, late := errors.AsType[*ratelimit.WaitError](err); late {
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// backoff waits as a 429 or 503's Retry-After asks (up to 5 minutes),
// else exponentially.
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s := resp.Header.Get("Retry-After"); s != "" {
			if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
				return min(time.Duration(secs)*time.Second, maxRetryAfter)
			}
			if at, err := http.ParseTime(s); err == nil {
				return min(max(time.Until(at), 0), maxRetryAfter)
			}
		}
	}
	return retryablehttp.DefaultBackoff(minWait, maxWait, attempt, resp)
}
