// Package origin compares URLs by origin (scheme, host and port), the unit
// to which credentials belong, and keeps credentials from following a
// redirect to another origin.
package origin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxRedirects is the limit of net/http's own redirect policy, kept here.
const maxRedirects = 10

// defaultPorts are the ports an origin leaves out.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// Portable are the request headers that carry no credentials: the only ones
// CheckRedirect sends on once a redirect has left the trusted origins.
var Portable = []string{
	"Accept", "Accept-Encoding", "Accept-Language",
	"Content-Encoding", "Content-Language", "Content-Type",
	"User-Agent",
}

// Of returns u's origin, "scheme://host[:port]": scheme and host in lower
// case, the scheme's default port left out, no user, path or query.
func Of(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	switch {
	case port != "" && port != defaultPorts[scheme]:
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"): // IPv6
		host = "[" + host + "]"
	}
	return scheme + "://" + host
}

// Parse reads an origin written by a person, like "https://cdn.example.org"
// (a trailing slash is allowed), and returns it as Of would. Its errors do
// not quote s, which may hold a password.
func Parse(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", errors.New("origin: not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("origin: the scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("origin: no host")
	case u.User != nil:
		return "", errors.New("origin: has a user or password")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", errors.New("origin: has a path, query or fragment")
	}
	return Of(u), nil
}

// CheckRedirect returns an http.Client CheckRedirect that follows at most 10
// redirects, as Go's default does, and, once the chain has passed through an
// origin that is neither the first request's nor one of trusted (as Of or
// Parse write them), sends on only the Portable headers, less those named in
// strip: no Authorization, api key, cookie, configured header or Referer
// (Go sets Referer to the previous URL, query included, where some APIs
// keep a key).
//
// Go itself drops only Authorization and cookies, and only when the host
// is neither the same nor a subdomain, ports ignored; custom headers it
// always copies. Stripping rather than refusing keeps Go's behaviour for
// the common case of a download handed off to a CDN or object store, which
// needs none of the headers.
func CheckRedirect(trusted []string, strip ...string) func(req *http.Request, via []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return errors.New("stopped after 10 redirects")
		}
		allowed := append([]string{Of(via[0].URL)}, trusted...)
		elsewhere := func(r *http.Request) bool { return !slices.Contains(allowed, Of(r.URL)) }
		// Go copies the first request's headers onto every hop, so once
		// the chain has left, it stays left (a.example -> b.example -> a.example).
		if elsewhere(req) || slices.ContainsFunc(via[1:], elsewhere) {
			for name := range req.Header {
				canonical := http.CanonicalHeaderKey(name)
				if !slices.Contains(Portable, canonical) || slices.ContainsFunc(strip, func(s string) bool { return http.CanonicalHeaderKey(s) == canonical }) {
					delete(req.Header, name) // as set, even if not canonical
				}
			}
		}
		return nil
	}
}

// RedirectError is CheckBodyRedirect's refusal of a redirect.
type RedirectError struct {
	Status   int
	Location string // where it pointed, credentials hidden by the caller's choice
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("answered %d %s pointing to %s: a request with a body follows only 307 or 308 to the same origin "+
		"(any other redirect would change the method or drop the body): update the URL", e.Status, http.StatusText(e.Status), e.Location)
}

// CheckBodyRedirect returns an http.Client CheckRedirect for requests whose
// body is what matters (a delivery, a POST with data): it follows only 307
// and 308, which keep the method and the body, and only to the first
// request's origin, with every header (a signature included), at most 10
// times. Any other redirect stops the request with a *RedirectError naming
// the status and where it pointed (shown by show, which should hide what a
// URL may carry): net/http would turn a 301, 302 or 303 into a GET without
// the body, and the final 200 would look like a delivery.
func CheckBodyRedirect(show func(*url.URL) string) func(req *http.Request, via []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return errors.New("stopped after 10 redirects")
		}
		status := 0
		if req.Response != nil {
			status = req.Response.StatusCode
		}
		keeps := status == http.StatusTemporaryRedirect || status == http.StatusPermanentRedirect
		if !keeps || Of(req.URL) != Of(via[0].URL) {
			return &RedirectError{Status: status, Location: show(req.URL)}
		}
		return nil
	}
}
