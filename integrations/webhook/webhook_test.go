package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/integrations/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type capture struct {
	path   string
	header http.Header
	body   map[string]any
}

func server(t *testing.T, status int) (*httptest.Server, chan capture) {
	t.Helper()
	got := make(chan capture, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		got <- capture{path: r.URL.Path, header: r.Header.Clone(), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func request(t *testing.T, config, credentials any, digest bool) delivery.Request {
	t.Helper()
	cfg, _ := json.Marshal(config)
	cred, _ := json.Marshal(credentials)
	notes := []delivery.Notification{{ID: 7, Type: "license_expiring", Title: "License lms expires in 7 days", Message: "Renew it.", Level: "warning"}}
	if digest {
		notes = append(notes, delivery.Notification{ID: 8, Type: "alert", Title: "Second", Message: "More.", Level: "danger"})
	}
	return delivery.Request{IntegrationID: 1, Config: cfg, Credentials: cred, Notifications: notes, Digest: digest,
		IdempotencyKey: "atis-i1-n7", Client: &http.Client{}}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format string
		digest bool
		check  func(t *testing.T, c capture)
	}{
		{"json", false, func(t *testing.T, c capture) { require.Equal(t, "License lms expires in 7 days", c.body["title"]) }},
		{"json", true, func(t *testing.T, c capture) { require.EqualValues(t, 2, c.body["count"]) }},
		{"slack", false, func(t *testing.T, c capture) {
			require.Contains(t, c.body["text"], "*[WARNING] License lms expires in 7 days*")
			require.Len(t, c.body["blocks"], 2)
		}},
		{"mattermost", true, func(t *testing.T, c capture) { require.Contains(t, c.body["text"], "ATİS: 2 notifications") }},
		{"teams", false, func(t *testing.T, c capture) {
			require.Equal(t, "MessageCard", c.body["@type"])
			require.Equal(t, "F2994A", c.body["themeColor"])
		}},
		{"teams_adaptive", true, func(t *testing.T, c capture) {
			att := c.body["attachments"].([]any)[0].(map[string]any)
			require.Equal(t, "application/vnd.microsoft.card.adaptive", att["contentType"])
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			srv, got := server(t, http.StatusOK)
			require.NoError(t, webhook.Provider{}.Deliver(context.Background(), request(t, map[string]any{"url": srv.URL, "format": tc.format}, map[string]any{}, tc.digest)))
			c := <-got
			require.Equal(t, "atis-i1-n7", c.header.Get("Idempotency-Key"))
			require.Empty(t, c.header.Get(webhook.SignatureHeader), "no secret, no signature")
			tc.check(t, c)
		})
	}
}

func TestTelegramTokenInPathNotInErrors(t *testing.T) {
	t.Parallel()
	srv, got := server(t, http.StatusBadGateway)
	const token = "123:SECRET-token"
	err := webhook.Provider{}.Deliver(context.Background(), request(t, map[string]any{"url": srv.URL, "format": "telegram", "chat_id": "@atis_ops"},
		map[string]string{"bot_token": token}, false))
	c := <-got
	require.Equal(t, "/bot"+token+"/sendMessage", c.path)
	require.Equal(t, "@atis_ops", c.body["chat_id"])
	require.Error(t, err)
	require.False(t, errors.Is(err, delivery.ErrPermanent), "502 is retried")
	require.NotContains(t, err.Error(), "SECRET")
	require.Contains(t, err.Error(), "POST "+srv.URL+": answered 502")
}

func TestSignature(t *testing.T) {
	t.Parallel()
	srv, got := server(t, http.StatusOK)
	at := time.Unix(1_790_000_000, 0)
	p := webhook.Provider{Now: func() time.Time { return at }}
	require.NoError(t, p.Deliver(context.Background(), request(t, map[string]any{"url": srv.URL}, map[string]string{"signing_secret": "s3cret"}, false)))
	c := <-got
	h := c.header.Get(webhook.SignatureHeader)
	require.True(t, strings.HasPrefix(h, "t=1790000000,v1="), h)
	require.NoError(t, webhook.Verify("s3cret", webhook.Sign("s3cret", at, []byte(`{"a":1}`)), []byte(`{"a":1}`), at, time.Minute))
	require.Error(t, webhook.Verify("other", webhook.Sign("s3cret", at, []byte(`{"a":1}`)), []byte(`{"a":1}`), at, time.Minute))
	require.Error(t, webhook.Verify("s3cret", webhook.Sign("s3cret", at, []byte(`{"a":1}`)), []byte(`{"a":2}`), at, time.Minute))
	require.Error(t, webhook.Verify("s3cret", webhook.Sign("s3cret", at, []byte(`{"a":1}`)), []byte(`{"a":1}`), at.Add(time.Hour), time.Minute))
}

// TestSignatureStaysWithTheOrigin: a receiver that redirects elsewhere
// gets nothing sent on, neither the message nor its signature (or
// idempotency key): the attempt fails saying where the redirect pointed
// (it used to follow, signature stripped; TestRedirects has every status).
func TestSignatureStaysWithTheOrigin(t *testing.T) {
	t.Parallel()
	other, got := server(t, http.StatusOK)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/moved", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(first.Close)
	err := webhook.Provider{}.Deliver(context.Background(), request(t, map[string]any{"url": first.URL}, map[string]string{"signing_secret": "s3cret"}, false))
	require.ErrorContains(t, err, "pointing to "+other.URL+"/…")
	require.Empty(t, got, "nothing reached the other origin")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, config, credentials, want string
	}{
		{"NoURL", `{}`, `{}`, "config.url is missing"},
		{"BadFormat", `{"url": "https://x.example", "format": "fax"}`, `{}`, `config.format "fax"`},
		{"UserInURL", `{"url": "https://u:p@x.example"}`, `{}`, "must not hold a user"},
		{"TelegramNoToken", `{"format": "telegram", "chat_id": 1}`, `{}`, "credentials.bot_token"},
		{"TelegramNoChat", `{"format": "telegram"}`, `{"bot_token": "1:a"}`, "config.chat_id"},
		{"SecretURL", `{"format": "slack"}`, `{"url": "https://hooks.slack.com/services/T/B/X"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.Provider{}.Validate(json.RawMessage(tc.config), json.RawMessage(tc.credentials))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
