package redact_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()

	tests := []struct{ in, want string }{
		{"https://example.test/x", "https://example.test/x"},
		{"https://user:pw@example.test/x?token=abc&page=2", "https://[redacted]@example.test/x?token=[redacted]&page=[redacted]"},
		{"https://example.test/x?flag", "https://example.test/x?flag"},
		{"https://example.test/x?aGVsbG8gd29ybGQ0Mg", "https://example.test/x?[redacted]"},
		{"https://docs.example/guide#section-2", "https://docs.example/guide#section-2"},
		{"https://files.example/exports/report_2024_01_15.csv", "https://files.example/exports/report_2024_01_15.csv"},
		{"http://%zz", "[redacted]"},
		// Issue 16: a Telegram-style token in the path and an OAuth fragment.
		{"https://api.telegram.org/bot123456:PATHTOKEN/sendMessage#access_token=FRAG&state=x",
			"https://api.telegram.org/[redacted]/sendMessage#access_token=[redacted]&state=[redacted]"},
		{"https://hooks.slack.com/services/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", "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D4/[redacted]"},
		{"https://x.example/h/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl/y", "https://x.example/h/[redacted]/y"},
		{"https://lms.example.az/api/v2/students/notifications", "https://lms.example.az/api/v2/students/notifications"},
		{"https://x.example/hooks/550e8400-e29b-41d4-a716-446655440000", "https://x.example/hooks/[redacted]"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, redact.URL(tt.in), tt.in)
	}
}

func TestError(t *testing.T) {
	t.Parallel()

	raw := "https://example.test/x?key=s3cret"
	err := &url.Error{Op: "Get", URL: raw, Err: errors.New("dial " + raw + ": refused")}
	require.Equal(t, "dial https://example.test/x?key=[redacted]: refused", redact.Error(err, raw))
}

func TestText(t *testing.T) {
	t.Parallel()

	require.Equal(t, "POST https://api.telegram.org/[redacted]/send?chat=[redacted]: refused (see https://x.example/a#t=[redacted]).",
		redact.Text("POST https://api.telegram.org/bot123456:PATHTOKEN/send?chat=42: refused (see https://x.example/a#t=FRAG)."))

	require.Equal(t, "GET https://[redacted]@lms.example.az/x failed; see http://host/y and mail a@b",
		redact.Text("GET https://bob:hunter2@lms.example.az/x failed; see http://host/y and mail a@b"))
}

func TestCredentials(t *testing.T) {
	t.Parallel()

	secrets := redact.Credentials(json.RawMessage(`{"type": "basic", "username": "admin", "password": "p@ss word!", "extra": ["tok-123456"]}`))
	msg := secrets.Cut("auth p@ss word! as YWRtaW46cEBzcyB3b3JkIQ== with p%40ss+word%21 or p@ss%20word%21 and tok-123456; basic stays")
	require.Equal(t, "auth [redacted] as [redacted] with [redacted] or [redacted] and [redacted]; basic stays", msg)
	require.Empty(t, redact.Credentials(json.RawMessage(`not json`)))
	require.Equal(t, redact.Secrets{"abcdefgh"}, redact.HeaderValues(json.RawMessage(`{"headers": {"X-Key": "abcdefgh", "X-Short": "abc"}}`)))
}

func TestJSON(t *testing.T) {
	t.Parallel()

	tests := []struct{ in, want string }{
		{`{"headers": {"X-Any": "v", "Auth": {"from_config": "k"}}}`, `{"headers":{"Auth":{"from_config":"k"},"X-Any":"[redacted]"}}`},
		{`{"password": "x", "credentials": {"token": "t"}, "nested": [{"api_key": "k", "n": 1}]}`,
			`{"credentials":"[redacted]","nested":[{"api_key":"[redacted]","n":1}],"password":"[redacted]"}`},
		{`{"Authorization": "Bearer x", "big": 12345678901234567890}`, `{"Authorization":"[redacted]","big":12345678901234567890}`},
		{`{"endpoint": "https://u:p@host.example/x?y=1", "list": ["ftp://a@h/"]}`,
			`{"endpoint":"https://[redacted]@host.example/x?y=[redacted]","list":["ftp://[redacted]@h/"]}`},
		{`{"body": {"password": "p", "client_secret": "s", "refresh_token": "r", "user": "u", "session_id": "x", "apiKey": "k", "X-Api-Key": "h"}}`,
			`{"body":{"X-Api-Key":"[redacted]","apiKey":"[redacted]","client_secret":"[redacted]","password":"[redacted]","refresh_token":"[redacted]","session_id":"[redacted]","user":"u"}}`},
		// Names that only hold a secret's letters stay; numbers and flags stay.
		{`{"author": "a", "compass": "c", "bypass_cache": true, "is_private": false, "max_tokens": 4096, "sessions": 3, "keyboard": "k", "token": 5}`,
			`{"author":"a","bypass_cache":true,"compass":"c","is_private":false,"keyboard":"k","max_tokens":4096,"sessions":3,"token":5}`},
		{`not json`, `not json`},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, string(redact.JSON(json.RawMessage(tt.in))), tt.in)
	}
}

// TestConfigure: patterns an operator adds hide path segments and values
// of other shapes, and keys of other names.
func TestConfigure(t *testing.T) {
	redact.Configure(redact.Settings{Keys: []*regexp.Regexp{regexp.MustCompile(`(?i)^pin$`)},
		Patterns: []*regexp.Regexp{regexp.MustCompile(`^school-[a-z]+$`)}})
	defer redact.Configure(redact.Settings{})
	require.Equal(t, "https://x.example/[redacted]/feed", redact.URL("https://x.example/school-alpha/feed"))
	require.Equal(t, `{"pin":"[redacted]","pinned":true}`, string(redact.JSON(json.RawMessage(`{"pin": "1234", "pinned": true}`))))
	require.True(t, redact.Value("school-beta"))
	require.Equal(t, `{"tenant":"[redacted]"}`, string(redact.JSON(json.RawMessage(`{"tenant": "school-gamma"}`))), "a value, whatever its key")
	redact.Configure(redact.Settings{Patterns: []*regexp.Regexp{regexp.MustCompile(`sk_live_[A-Za-z0-9]+`)}})
	require.Equal(t, "refused key [redacted] by the provider", redact.Text("refused key sk_live_abc123 by the provider"))
}

// FuzzURL: whatever a URL holds, what URL shows never holds its user info,
// a query or fragment value, or a segment of a credential's shape.
func FuzzURL(f *testing.F) {
	for _, seed := range []string{"https://u:p@h/x?k=v#f=g", "https://api.telegram.org/bot1:T/x", "http://h/%2F%zz", "https://h/a b"} {
		f.Add(seed, "s3cretVALUE9abcd")
	}
	f.Fuzz(func(t *testing.T, base, secret string) {
		if len(secret) < 16 || !regexp.MustCompile(`^[A-Za-z0-9]+$`).MatchString(secret) ||
			!strings.ContainsAny(secret, "0123456789") || strings.IndexFunc(secret, func(r rune) bool { return r > '9' }) < 0 {
			return
		}
		for _, raw := range []string{
			"https://user:" + secret + "@h.example/x", "https://h.example/x?k=" + secret, "https://h.example/x#token=" + secret,
			"https://h.example/" + secret + "/x", "https://h.example/bot123:" + secret + "/x",
		} {
			if shown := redact.URL(raw); strings.Contains(shown, secret) {
				t.Fatalf("URL(%q) = %q", raw, shown)
			}
			if shown := redact.Text("at " + raw + "."); strings.Contains(shown, secret) {
				t.Fatalf("Text(%q) = %q", raw, shown)
			}
		}
		// Any input: no panic, and what is shown shows the same again
		// (job_logs rows are redacted when written and when read).
		if once := redact.URL(base); redact.URL(once) != once {
			t.Fatalf("URL(%q) = %q, then %q", base, once, redact.URL(once))
		}
		if once := redact.Text(base); redact.Text(once) != once {
			t.Fatalf("Text(%q) = %q, then %q", base, once, redact.Text(once))
		}
	})
}
