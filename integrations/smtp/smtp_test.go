package smtp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/integrations/smtp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is an SMTP server without auth that records message data.
type server struct {
	port int
	mu   sync.Mutex
	data []string
	rcpt [][]string
}

type session struct {
	s    *server
	rcpt []string
}

func (x *session) Mail(string, *gosmtp.MailOptions) error { return nil }
func (x *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	x.rcpt = append(x.rcpt, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.data = append(x.s.data, string(raw))
	x.s.rcpt = append(x.s.rcpt, x.rcpt)
	return err
}
func (x *session) Reset()        { x.rcpt = nil }
func (x *session) Logout() error { return nil }

// start serves SMTP in plain text, or behind implicit TLS with tlsConfig.
func start(t *testing.T, tlsConfig *tls.Config) *server {
	t.Helper()
	s := &server{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	s.port, _ = strconv.Atoi(p)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return s
}

func request(t *testing.T, cfg map[string]any, digest bool, notes ...delivery.Notification) delivery.Request {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	return delivery.Request{IntegrationID: 3, Config: raw, Credentials: json.RawMessage(`{}`), Notifications: notes, Digest: digest,
		IdempotencyKey: "atis-i3-n1"}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(certSrv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(certSrv.Certificate())
	s := start(t, certSrv.TLS)
	req := request(t, map[string]any{"host": "127.0.0.1", "port": s.port, "tls": "tls", "from": "noreply@atis.example", "to": []string{"a@x.example"}},
		false, delivery.Notification{ID: 1, Title: "Backup <failed>", Message: "Line one\nline two", Level: "danger", ActionURL: "https://atis.example/jobs/1"})
	require.NoError(t, smtp.Provider{RootCAs: roots}.Deliver(context.Background(), req))
	require.Len(t, s.data, 1)
	msg := s.data[0]
	parsed, err := mail.ReadMessage(strings.NewReader(msg))
	require.NoError(t, err)
	subject, err := new(mime.WordDecoder).DecodeHeader(parsed.Header.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "[ATİS] [DANGER] Backup <failed>", subject)
	for _, want := range []string{"Message-ID: <atis-i3-n1.0@atis.example>", "multipart/alternative",
		"text/plain", "text/html", "Backup &lt;failed&gt;", "https://atis.example/jobs/1"} {
		require.True(t, strings.Contains(msg, want) || strings.Contains(strings.ReplaceAll(msg, "=\r\n", ""), want), "%q in\n%s", want, msg)
	}
}

func TestPlainConnectionPerInstitution(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	cfg := map[string]any{"host": "127.0.0.1", "port": s.port, "tls": "none", "from": "noreply@atis.example",
		"to": []string{"all@x.example"}, "institution_to": map[string][]string{"5": {"five@x.example"}}}
	req := request(t, cfg, true,
		delivery.Notification{ID: 1, Title: "For five", Level: "info", TargetInstitutions: []int64{5}},
		delivery.Notification{ID: 2, Title: "For six", Level: "info", TargetInstitutions: []int64{6}})
	require.NoError(t, smtp.Provider{}.Deliver(context.Background(), req))
	require.Len(t, s.data, 2, "one message per set of recipients")
	require.ElementsMatch(t, [][]string{{"all@x.example", "five@x.example"}, {"all@x.example"}}, s.rcpt)
}

func TestDownIsRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	req := request(t, map[string]any{"host": "127.0.0.1", "port": port, "tls": "none", "from": "a@x.example", "to": []string{"b@x.example"}},
		false, delivery.Notification{ID: 1, Title: "t", Level: "info"})
	err = smtp.Provider{}.Deliver(context.Background(), req)
	require.Error(t, err)
	require.NotErrorIs(t, err, delivery.ErrPermanent)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, config, credentials, want string }{
		{"NoHost", `{"from": "a@x", "to": ["b@x"]}`, `{}`, "config.host is missing"},
		{"BadTLS", `{"host": "h", "tls": "ssl3", "from": "a@x", "to": ["b@x"]}`, `{}`, `config.tls "ssl3"`},
		{"ClearPassword", `{"host": "h", "tls": "none", "from": "a@x", "to": ["b@x"]}`, `{"username": "u", "password": "p"}`, "insecure_auth"},
		{"NoRecipients", `{"host": "h", "from": "a@x"}`, `{}`, "nobody to send to"},
		{"BadInstitution", `{"host": "h", "from": "a@x", "institution_to": {"abc": ["b@x"]}}`, `{}`, `"abc" is not an institution id`},
		{"AuthNoUser", `{"host": "h", "auth": "login", "from": "a@x", "to": ["b@x"]}`, `{}`, "credentials.username"},
		{"Fine", `{"host": "h", "from": "a@x", "to": ["b@x"]}`, `{"username": "u", "password": "p"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := smtp.Provider{}.Validate(json.RawMessage(tc.config), json.RawMessage(tc.credentials))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), `"p"`)
		})
	}
}
