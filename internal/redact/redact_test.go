package redact_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()

	tests := []struct{ in, want string }{
		{"https://example.test/x", "https://example.test/x"},
		{"https://user:pw@example.test/x?token=abc&page=2", "https://[redacted]@example.test/x?token=[redacted]&page=[redacted]"},
		{"https://example.test/x?flag", "https://example.test/x?flag=[redacted]"},
		{"http://%zz", "(unparseable URL)"},
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
			`{"endpoint":"https://[redacted]@host.example/x?y=1","list":["ftp://[redacted]@h/"]}`},
		{`not json`, `not json`},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, string(redact.JSON(json.RawMessage(tt.in))), tt.in)
	}
}
