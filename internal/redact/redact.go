// Package redact hides secrets from everything the daemon shows or stores
// outside their own column: log lines, job_logs, sync and delivery logs,
// River's args, the CLI and the dashboard. It is the one place that decides
// what a secret looks like, and Marker is the one thing it is replaced by.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"unicode"
)

// Marker replaces every hidden value.
const Marker = "[redacted]"

// URL returns raw without its credentials, for messages: the user info,
// the value of every query and fragment parameter (access_token=… in an
// OAuth fragment), and every path segment that looks like a credential
// (see Segment) become Marker. An unparseable URL is not shown at all:
// it is Marker.
func URL(raw string) string {
	// What a URL shows already (the Marker in place of a user or a value)
	// reads again as it was: URL is idempotent.
	raw = strings.ReplaceAll(raw, Marker, markerStandIn)
	u, err := url.Parse(raw)
	if err != nil {
		return Marker
	}
	return strings.ReplaceAll(urlShown(u), markerStandIn, Marker)
}

// markerStandIn holds Marker's place while a URL is parsed (brackets are
// no part of a user name or a path).
const markerStandIn = "REDACTEDxMARKER"

func urlShown(u *url.URL) string {
	hadUser := u.User != nil
	u.User = nil
	query, fragment := u.RawQuery, u.EscapedFragment()
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	u.ForceQuery = false
	path := u.EscapedPath()
	segments := strings.Split(path, "/")
	changed := false
	for i, seg := range segments {
		if plain, err := url.PathUnescape(seg); err == nil && Segment(plain) {
			segments[i], changed = Marker, true
		}
	}
	out := u.String()
	if changed {
		out = strings.TrimSuffix(out, path) + strings.Join(segments, "/")
	}
	if hadUser {
		out = strings.Replace(out, "//", "//"+Marker+"@", 1)
	}
	if query != "" {
		out += "?" + hideQueryValues(query)
	}
	if fragment != "" {
		out += "#" + hideQueryValues(fragment)
	}
	return out
}

// hideQueryValues keeps each key of a raw query (or fragment) and replaces
// its value; a part without a value (a fragment's anchor, a flag) stays,
// unless it looks like a token itself.
func hideQueryValues(query string) string {
	parts := strings.Split(query, "&")
	for i, p := range parts {
		key, _, hasValue := strings.Cut(p, "=")
		switch {
		case hasValue:
			parts[i] = key + "=" + Marker
		case Segment(p):
			parts[i] = Marker
		}
	}
	return strings.Join(parts, "&")
}

// Error renders a request error without the raw URL (which may carry a
// token), and without net/url's repetition of it.
func Error(err error, rawURL string) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return strings.ReplaceAll(err.Error(), rawURL, URL(rawURL))
}

// urls matches the URLs inside free text.
var urls = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>\\]+`)

// Text hides the credentials of every URL inside free text (an error, a
// trace, a message a provider sent back, a JSON string): as URL does.
func Text(s string) string {
	s = strings.ReplaceAll(s, Marker, markerStandIn) // shown already: read as it was
	s = urls.ReplaceAllStringFunc(s, func(u string) string {
		trail := strings.TrimRight(u, ".,;:)]}")
		return URL(trail) + u[len(trail):]
	})
	for _, p := range current().patterns { // ATIS_REDACT_PATTERNS: values too
		s = p.ReplaceAllString(s, markerStandIn)
	}
	return strings.ReplaceAll(s, markerStandIn, Marker)
}

// tokenShapes are what a credential in a URL's path looks like: a
// Telegram-style bot token (bot123456:AA…), a JWT, or a long opaque run of
// letters and digits (an API key, a webhook secret, a UUID).
var tokenShapes = []*regexp.Regexp{
	regexp.MustCompile(`^(?i:bot)?\d{3,}:[\w-]+$`),
	regexp.MustCompile(`^eyJ[\w-]*\.[\w-]+\.[\w-]*$`),
	regexp.MustCompile(`^[A-Za-z0-9_\-.~+=]{16,}$`),
}

// Segment reports whether one path segment looks like a credential: one of
// the token shapes (with at least one digit and one letter, so that a word
// such as "notifications" is no token), or a configured pattern.
func Segment(seg string) bool {
	if seg == "" || seg == Marker || seg == markerStandIn {
		return false
	}
	for _, p := range current().patterns {
		if p.MatchString(seg) {
			return true
		}
	}
	for i, shape := range tokenShapes {
		if shape.MatchString(seg) && (i < 2 || (strings.ContainsAny(seg, "0123456789") && strings.IndexFunc(seg, isLetter) >= 0 &&
			!fileName.MatchString(seg))) {
			return true
		}
	}
	return false
}

// fileName matches a name with an extension (report_2024_01_15.csv): a
// file, not a token.
var fileName = regexp.MustCompile(`^[\w-]+\.[A-Za-z][A-Za-z0-9]{0,4}$`)

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// Secrets are known secret values (an integration's credentials, its
// configured header values) to cut from messages, whatever surrounds them.
type Secrets []string

// minSecretLen is the shortest value cut from messages: shorter ones
// ("none", a username like "bot") would cut ordinary words.
const minSecretLen = 6

// Cut replaces every occurrence of each secret in s with Marker.
func (secrets Secrets) Cut(s string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, Marker)
	}
	return s
}

// credentialKinds are the credentials' "type" values, which are no secret:
// anything else under "type" is cut like any other value.
var credentialKinds = map[string]bool{"bearer": true, "basic": true, "api_key": true, "none": true}

// Credentials lists the strings an integration's credentials hold, and the
// forms a request carries them in (URL-escaped in a path or query; basic
// auth's base64 of user:password), so that whatever a provider echoes back
// of them can be cut from messages before they are stored or logged.
func Credentials(credentials json.RawMessage) Secrets {
	var v any
	if json.Unmarshal(credentials, &v) != nil {
		return nil
	}
	var out Secrets
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if len(v) >= minSecretLen {
				out = append(out, v)
				for _, form := range []string{url.PathEscape(v), url.QueryEscape(v)} {
					if form != v {
						out = append(out, form)
					}
				}
			}
		case map[string]any:
			for k, x := range v {
				if kind, _ := x.(string); k == "type" && credentialKinds[kind] {
					continue // what kind of credential is no secret, and cut it made messages unreadable
				}
				walk(x)
			}
			user, _ := v["username"].(string)
			pass, _ := v["password"].(string)
			if pass != "" {
				out = append(out, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

// HeaderValues lists the values of the headers a config sends with every
// request ("headers": {"X-Api-Key": "…"}): secrets as much as credentials.
func HeaderValues(config json.RawMessage) Secrets {
	var c struct {
		Headers map[string]string `json:"headers"`
	}
	if json.Unmarshal(config, &c) != nil {
		return nil
	}
	var out Secrets
	for _, v := range c.Headers {
		if len(v) >= minSecretLen {
			out = append(out, v)
		}
	}
	return out
}

// ConfigRef returns the key of a {"from_config": "<system_configs key>"}
// reference, a header value read at run time: it names a key, holds no
// secret, and is shown as is.
func ConfigRef(v any) (string, bool) {
	ref, ok := v.(map[string]any)
	if !ok || len(ref) != 1 {
		return "", false
	}
	key, ok := ref["from_config"].(string)
	return key, ok && strings.TrimSpace(key) != ""
}

// IsConfigRef reports whether a decoded value is a from_config reference.
func IsConfigRef(v any) bool {
	_, ok := ConfigRef(v)
	return ok
}

// secretWords are the words of a name that say its value is a secret
// (password, client_secret, refreshToken, X-Api-Key, Authorization); "key"
// counts alone or after one of keyKinds.
var (
	secretWords = map[string]bool{"password": true, "passwd": true, "passphrase": true, "pass": true, "pwd": true,
		"secret": true, "token": true, "auth": true, "authorization": true, "credential": true, "credentials": true,
		"cookie": true, "cookies": true, "signature": true, "apikey": true, "sessionid": true, "session": true,
		"privatekey": true, "accesskey": true, "secretkey": true, "bearer": true, "otp": true}
	keyKinds = map[string]bool{"api": true, "private": true, "access": true, "secret": true, "signing": true,
		"encryption": true, "client": true, "app": true, "master": true}
)

// words splits a name into its lower-case words: on anything not a letter
// or digit, and where camelCase turns upper (refreshToken: refresh token).
func words(name string) []string {
	var out []string
	var cur []rune
	runes := []rune(name)
	for i, r := range runes {
		upper := unicode.IsUpper(r)
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			if len(cur) > 0 {
				out = append(out, strings.ToLower(string(cur)))
			}
			cur = cur[:0]
			continue
		}
		if upper && len(cur) > 0 && (!unicode.IsUpper(cur[len(cur)-1]) || (i+1 < len(runes) && unicode.IsLower(runes[i+1]))) {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
		cur = append(cur, r)
	}
	if len(cur) > 0 {
		out = append(out, strings.ToLower(string(cur)))
	}
	return out
}

// SecretKey reports whether a JSON key or a header name says its value is
// a secret: one of its words does (max_tokens, author, is_private and
// sessions do not), or a configured pattern matches it (ATIS_REDACT_KEYS).
func SecretKey(name string) bool {
	ws := words(name)
	for i, w := range ws {
		if secretWords[w] || (w == "key" && (len(ws) == 1 || (i > 0 && keyKinds[ws[i-1]]))) {
			return true
		}
	}
	for _, p := range current().keys {
		if p.MatchString(name) {
			return true
		}
	}
	return false
}

// Settings add to what redaction hides, for secrets of shapes it cannot
// guess. The zero value adds nothing.
type Settings struct {
	// Keys are patterns of JSON keys (body fields, config entries) whose
	// values are secrets (ATIS_REDACT_KEYS).
	Keys []*regexp.Regexp
	// Patterns are patterns of URL path segments and of values that are
	// secrets (ATIS_REDACT_PATTERNS).
	Patterns []*regexp.Regexp
}

type settings struct{ keys, patterns []*regexp.Regexp }

var configured atomic.Pointer[settings]

// Configure sets what the daemon's configuration adds, for the whole
// process: every later redaction uses it.
func Configure(s Settings) { configured.Store(&settings{keys: s.Keys, patterns: s.Patterns}) }

func current() *settings {
	if s := configured.Load(); s != nil {
		return s
	}
	return &settings{}
}

// JSON returns raw with the value of every secret-looking key replaced, and
// every value of a "headers" object too (a from_config reference names a
// key, not a value, and stays), and the credentials of every URL in a
// string hidden. Numbers keep their text. Unreadable JSON is returned as
// is: it came from a column that holds it so.
func JSON(raw json.RawMessage) json.RawMessage {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) == 0 || dec.Decode(&v) != nil {
		return raw
	}
	b, err := json.Marshal(value(v, false))
	if err != nil {
		return json.RawMessage(`"[unreadable]"`)
	}
	return b
}

func value(v any, inHeaders bool) any {
	switch t := v.(type) {
	case map[string]any:
		if IsConfigRef(t) {
			return t
		}
		for k, val := range t {
			if (inHeaders || SecretKey(k)) && !IsConfigRef(val) && hidable(val) {
				t[k] = Marker
				continue
			}
			t[k] = value(val, k == "headers")
		}
		return t
	case []any:
		for i := range t {
			t[i] = value(t[i], false)
		}
		return t
	case string:
		if Value(t) {
			return Marker
		}
		return Text(t)
	}
	return v
}

// hidable says whether a value under a secret's name is hidden: text and
// structures are; a number, true or false, or null tells nothing (and
// max_tokens: 4096 stays readable).
func hidable(v any) bool {
	switch v.(type) {
	case string, map[string]any, []any:
		return true
	}
	return false
}

// Value reports whether a whole value matches a configured pattern.
func Value(s string) bool {
	for _, p := range current().patterns {
		if p.MatchString(s) {
			return true
		}
	}
	return false
}
