package delivery_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/testkit/syncbuf"

	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/integrations/smtp"
	"github.com/atis-edu/atis-scheduler/integrations/webhook"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type testBundle struct {
	pool    *pgxpool.Pool
	logs    *syncbuf.Buffer
	roots   *x509.CertPool
	tlsCert *httptest.Server // its certificate serves the SMTP server too
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	return &testBundle{pool: dbtest.NewPool(t), logs: &syncbuf.Buffer{}, roots: roots, tlsCert: tlsSrv}
}

// dispatcher returns a dispatcher as a replica of the daemon would have
// one: its own rate limiters and providers.
func (b *testBundle) dispatcher() *delivery.Dispatcher {
	return &delivery.Dispatcher{
		Pool:      b.pool,
		Limits:    &ratelimit.Limiters{},
		Logger:    slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Providers: delivery.Providers{"webhook": webhook.Provider{}, "smtp": smtp.Provider{RootCAs: b.roots}},
	}
}

func (b *testBundle) run(t *testing.T, d *delivery.Dispatcher) delivery.Result {
	t.Helper()
	res, err := d.Run(context.Background())
	require.NoError(t, err)
	return res
}

// integration inserts an integration and returns its id.
func (b *testBundle) integration(t *testing.T, typ, provider string, config, credentials any) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO integrations (name, integration_type, provider, config, credentials)
		VALUES ($1 || '-' || gen_random_uuid(), $1, $2, $3, $4) RETURNING id`, typ, provider, config, credentials).Scan(&id))
	return id
}

// notify inserts a notification and returns its id.
func (b *testBundle) notify(t *testing.T, typ, level, title string, institutions ...int64) int64 {
	t.Helper()
	if institutions == nil {
		institutions = []int64{}
	}
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO system_notifications (type, title, message, level, start_at, target_institutions)
		VALUES ($1, $3::text, 'Message of ' || $3::text, $2, localtimestamp, $4) RETURNING id`, typ, level, title, institutions).Scan(&id))
	return id
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return dbtest.Scalar[int](t, b.pool, sql, args...)
}

// receiver is a webhook endpoint that records what it received and checks
// the signature when it has a secret.
type receiver struct {
	*httptest.Server
	secret string
	status atomic.Int32
	delay  atomic.Int64 // nanoseconds before answering
	mu     sync.Mutex
	got    []received
	badSig int
}

type received struct {
	Path    string
	Headers http.Header
	Body    map[string]any
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	r := &receiver{secret: secret}
	r.status.Store(http.StatusOK)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body) // first: then a client that gives up cancels req.Context()
		if d := time.Duration(r.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-req.Context().Done():
				return
			}
		}
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		r.mu.Lock()
		if r.secret != "" && webhook.Verify(r.secret, req.Header.Get(webhook.SignatureHeader), raw, time.Now(), 5*time.Minute) != nil {
			r.badSig++
		}
		status := int(r.status.Load())
		if status < 300 {
			r.got = append(r.got, received{Path: req.URL.Path, Headers: req.Header.Clone(), Body: body})
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		// A careless receiver echoes the request path, where Telegram keeps the token.
		_, _ = io.WriteString(w, `{"ok":false,"path":"`+req.URL.Path+`"}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// mailServer is an SMTP server (STARTTLS, AUTH PLAIN) that records the
// messages it accepted.
type mailServer struct {
	addr     string
	user     string
	password string
	mu       sync.Mutex
	msgs     []mailMessage
}

type mailMessage struct {
	From string
	To   []string
	Data string
}

func newMailServer(t *testing.T, b *testBundle, user, password string) *mailServer {
	t.Helper()
	m := &mailServer{user: user, password: password}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &mailSession{srv: m}, nil }))
	s.Domain = "localhost"
	s.TLSConfig = b.tlsCert.TLS
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return m
}

func (m *mailServer) port(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(m.addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

func (m *mailServer) messages() []mailMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mailMessage(nil), m.msgs...)
}

type mailSession struct {
	srv    *mailServer
	authed bool
	cur    mailMessage
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.srv.user || password != s.srv.password {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *gosmtp.MailOptions) error {
	if !s.authed {
		return gosmtp.ErrAuthRequired
	}
	s.cur = mailMessage{From: from}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(raw)
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.cur = mailMessage{} }
func (s *mailSession) Logout() error { return nil }

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
