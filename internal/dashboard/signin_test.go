package dashboard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/testkit/syncbuf"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dashboard"
	"github.com/atis-edu/atis-scheduler/internal/httpserver"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// replicas serves two dashboards (two replicas of the daemon) on one
// database, with the same token, on a non-loopback address (every page
// behind a session).
func replicas(t *testing.T, cfg dashboard.Config) (*pgxpool.Pool, [2]*httptest.Server) {
	t.Helper()
	pool := dbtest.NewPool(t)
	cfg.Pool, cfg.Token, cfg.Addr = pool, testToken, "0.0.0.0:9464"
	var srvs [2]*httptest.Server
	for i := range srvs {
		srvs[i] = serve(t, cfg)
	}
	return pool, srvs
}

// moveCookies gives c, for server to, the cookies c holds for from: one
// browser reaching another replica behind a load balancer.
func moveCookies(t *testing.T, c *http.Client, from, to string) {
	t.Helper()
	f, _ := url.Parse(from)
	tt, _ := url.Parse(to)
	c.Jar.SetCookies(tt, c.Jar.Cookies(f))
}

// TestSessionsEndEverywhere: a session signed in on one replica works on
// the other; signing out on one ends it on both (the old signed cookie alone
// stayed valid for 12 hours on every replica); "sign out everywhere" ends
// every session, others' too, with an audit row.
func TestSessionsEndEverywhere(t *testing.T) {
	t.Parallel()

	pool, srv := replicas(t, dashboard.Config{})
	alice, bob := client(t), client(t)
	_, csrfAlice := login(t, alice, srv[0].URL, testToken, "Alice")
	_, csrfBob := login(t, bob, srv[1].URL, testToken, "Bob")
	moveCookies(t, alice, srv[0].URL, srv[1].URL)
	moveCookies(t, bob, srv[1].URL, srv[0].URL)
	for _, s := range srv {
		code, _, _ := get(t, alice, s.URL+"/schedules")
		require.Equal(t, http.StatusOK, code, "Alice's session on %s", s.URL)
	}
	stolen := alice.Jar.Cookies(mustURL(srv[0].URL)) // a copy of the cookie, kept by someone else

	code, _, _ := post(t, alice, srv[0].URL+"/logout", url.Values{"csrf": {csrfAlice}})
	require.Equal(t, http.StatusSeeOther, code)
	thief := client(t)
	for _, s := range srv {
		thief.Jar.SetCookies(mustURL(s.URL), stolen)
		code, _, h := get(t, thief, s.URL+"/schedules")
		require.Equal(t, http.StatusSeeOther, code, "a signed-out session is dead on %s", s.URL)
		require.True(t, strings.HasPrefix(h.Get("Location"), "/login"))
	}
	code, _, _ = get(t, bob, srv[0].URL+"/schedules")
	require.Equal(t, http.StatusOK, code, "Bob's session lives on")

	_, _ = login(t, alice, srv[0].URL, testToken, "Alice")
	code, _, _ = post(t, bob, srv[1].URL+"/logout/everywhere", url.Values{"csrf": {csrfBob}})
	require.Equal(t, http.StatusSeeOther, code)
	for _, c := range []*http.Client{alice, bob} {
		for _, s := range srv {
			moveCookies(t, c, srv[0].URL, s.URL)
			code, _, _ := get(t, c, s.URL+"/schedules")
			require.Equal(t, http.StatusSeeOther, code)
		}
	}
	require.Equal(t, 1, dbtest.Scalar[int](t, pool, `SELECT count(*) FROM platform.audit_logs WHERE action = 'sign_out_everywhere'
		AND new_state->>'performed_by_name' = 'Bob'`))
	require.Zero(t, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduler_dashboard_sessions"))
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// from returns a transport whose requests come from address ip: the
// dashboard sees them so through a trusted proxy's X-Forwarded-For.
type fromAddress struct {
	ip string
}

func (f fromAddress) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return http.DefaultTransport.RoundTrip(r)
}

// clientFrom is client(t) whose requests come from ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	c := client(t)
	c.Transport = fromAddress{ip: ip}
	return c
}

// TestSignInLimits: failed sign-ins are limited per client address over a
// minute, on every replica together (the old limiter was one bucket per
// process shared by every client: one client locked everyone out, and N
// replicas allowed N times the rate); many failures in all are logged.
// Another address still signs in; the limit ends with its window.
func TestSignInLimits(t *testing.T) {
	t.Parallel()

	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	var logs syncbuf.Buffer
	pool, srv := replicas(t, dashboard.Config{TrustedProxies: loopback, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	attacker := clientFrom(t, "203.0.113.9")
	for i := range 10 {
		code, _ := login(t, attacker, srv[i%2].URL, "wrong-token-0123456789", "Mallory")
		require.Equal(t, http.StatusUnauthorized, code, "attempt %d", i+1)
	}
	code, _ := login(t, attacker, srv[0].URL, testToken, "Mallory")
	require.Equal(t, http.StatusTooManyRequests, code, "the 11th from that address, across both replicas, even with the right token")
	code, _ = login(t, clientFrom(t, "198.51.100.4"), srv[1].URL, testToken, "Operator")
	require.Equal(t, http.StatusSeeOther, code, "another address is not locked out")

	// In all: 100 failures a minute from many addresses are logged, but
	// lock no one out (anyone could lock every operator out otherwise).
	_, err := pool.Exec(context.Background(), `INSERT INTO scheduler_dashboard_logins (address)
		SELECT '192.0.2.' || g FROM generate_series(1, 95) g`)
	require.NoError(t, err)
	code, _ = login(t, clientFrom(t, "198.51.100.5"), srv[0].URL, testToken, "Operator")
	require.Equal(t, http.StatusSeeOther, code)
	require.Contains(t, logs.String(), "many failed sign-ins from many addresses")

	// The window passes: the right token signs in again, even from the attacker's address.
	_, err = pool.Exec(context.Background(), `UPDATE scheduler_dashboard_logins SET attempted_at = attempted_at - interval '61 seconds'`)
	require.NoError(t, err)
	code, _ = login(t, clientFrom(t, "203.0.113.9"), srv[1].URL, testToken, "Operator")
	require.Equal(t, http.StatusSeeOther, code)
}

// TestSecureCookie: behind the TLS proxy the README recommends, the session
// cookie is Secure: with the HTTPS setting, or when a trusted proxy says
// the browser came over https; an untrusted peer's header counts for
// nothing.
func TestSecureCookie(t *testing.T) {
	t.Parallel()

	secure := func(cfg dashboard.Config, proto string) bool {
		_, srv := replicas(t, cfg)
		c := client(t)
		if proto != "" {
			c.Transport = headerTransport{"X-Forwarded-Proto", proto}
		}
		_, body, _ := get(t, c, srv[0].URL+"/login")
		m := loginNonce.FindStringSubmatch(body)
		require.NotNil(t, m)
		_, _, h := post(t, c, srv[0].URL+"/login", url.Values{"login_csrf": {m[1]}, "token": {testToken}, "name": {"Op"}, "next": {"/"}})
		for _, sc := range h.Values("Set-Cookie") {
			if strings.HasPrefix(sc, "atis_session=") {
				return strings.Contains(sc, "; Secure")
			}
		}
		t.Fatal("no session cookie")
		return false
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	require.False(t, secure(dashboard.Config{}, ""), "plain HTTP, no setting")
	require.True(t, secure(dashboard.Config{HTTPS: true}, ""), "ATIS_HTTPS")
	require.True(t, secure(dashboard.Config{TrustedProxies: loopback}, "https"), "a trusted proxy says https")
	require.False(t, secure(dashboard.Config{}, "https"), "an untrusted peer's header")
}

type headerTransport struct{ name, value string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

// TestBadQueryInputIs400: input a page cannot use answers 400 with a
// message, and no ERROR is logged (these answered 500 with an ERROR line).
func TestBadQueryInputIs400(t *testing.T) {
	t.Parallel()

	var logs syncbuf.Buffer
	pool := dbtest.NewPool(t)
	srv := serve(t, dashboard.Config{Pool: pool, Addr: "127.0.0.1:9464", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	c := client(t)
	for _, p := range []string{"/schedules?after=abc&after_id=1", "/schedules?q=%00", "/runs?schedule=%C0%AF",
		"/schedules?sort=id&after=x&after_id=2", "/runs?class=%00", "/schedules?q=" + strings.Repeat("a", 600)} {
		code, body, _ := get(t, c, srv.URL+p)
		require.Equal(t, http.StatusBadRequest, code, p)
		require.Contains(t, body, "This address cannot be shown", p)
	}
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
}

// FuzzQuery: whatever query a request carries, no page answers 500 (the
// class of the named cases above). The fuzzer searches in make fuzz; the
// seeds run in make test.
func FuzzQuery(f *testing.F) {
	pool := dbtest.NewPool(f)
	srv := serve(f, dashboard.Config{Pool: pool, Addr: "127.0.0.1:9464"})
	for _, seed := range []string{"after=abc&after_id=1", "q=%00", "schedule=%C0%AF", "sort=next&after=infinity&after_id=3",
		"from=2026-13-01T00:00", "status=borked", "before=-1", "after=2026-01-01T00:00:00&after_id=99999999999999999999"} {
		for _, page := range []string{"/schedules", "/runs", "/"} {
			f.Add(page, seed)
		}
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.Fuzz(func(t *testing.T, page, query string) {
		if !strings.HasPrefix(page, "/") || strings.ContainsAny(page, "?# \t\r\n") {
			return
		}
		u, err := url.Parse(srv.URL + page)
		if err != nil {
			return
		}
		u.RawQuery = query
		resp, err := c.Get(u.String())
		if err != nil {
			return // not a request net/http sends
		}
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 500, "%s?%s", page, query)
	})
}

// TestListenerLimits: a client trickling its request body is cut off
// within the read timeout (100 such connections used to stay open for 30 s
// and more), and a body larger than any form is refused.
func TestListenerLimits(t *testing.T) {
	t.Parallel()

	s, err := httpserver.Listen("127.0.0.1:0", func(context.Context) error { return nil }, nil, slog.New(slog.DiscardHandler),
		httpserver.WithUI(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { cancel(); s.Stop() })

	conn, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
	require.NoError(t, err)
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := conn.Write([]byte("a")); err != nil {
				break
			}
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := conn.Read(buf); err != nil && !isTimeout(err) {
				break
			}
		}
		closed <- time.Since(start)
	}()
	select {
	case took := <-closed:
		require.Less(t, took, httpserver.ReadTimeout+5*time.Second)
	case <-time.After(httpserver.ReadTimeout + 10*time.Second):
		t.Fatal("a trickling client kept its connection past the read timeout")
	}

	resp, err := http.Post("http://"+s.Addr()+"/login", "application/x-www-form-urlencoded", strings.NewReader(strings.Repeat("a", httpserver.MaxBodyBytes+1)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestNotFoundPages: a deleted schedule's page says it was deleted and
// links to its runs, which stay listed by name; an unknown id or address
// gets the dashboard's own 404 page (they were bare and unstyled).
func TestNotFoundPages(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	c := client(t)
	_, err := b.pool.Exec(context.Background(), "DELETE FROM scheduled_jobs WHERE id = $1", b.ids.smoke)
	require.NoError(t, err)
	code, body, _ := get(t, c, fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.smoke))
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body, "Schedule deleted")
	require.Contains(t, body, fmt.Sprintf("Schedule %d (smoke) was deleted on", b.ids.smoke))
	require.Contains(t, body, fmt.Sprintf(`href="/runs?schedule=%d"`, b.ids.smoke))
	require.Contains(t, body, `<link rel="stylesheet"`, "the dashboard's page, styled")

	code, body, _ = get(t, c, b.srv.URL+"/runs?schedule=smoke")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, ">smoke<", "its runs, by name")

	for _, p := range []string{"/schedules/999999", "/no-such-page", "/runs/abc"} {
		code, body, h := get(t, c, b.srv.URL+p)
		require.Equal(t, http.StatusNotFound, code, p)
		require.Contains(t, body, `<link rel="stylesheet"`, p)
		require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'none'", p)
	}
}

// TestScheduleWords: a schedule's page says every expression in words,
// warns when a 6-field expression's reading differs from the 5-field
// reading of its first fields, and says "no retries" for one attempt
// (it said "1, 5 min apart").
func TestScheduleWords(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO scheduled_jobs (name, job_class, cron_expression, max_attempts)
		VALUES ('six', 'noop', '30 2 * * * *', 1) RETURNING id`).Scan(&id))
	_, body, _ := get(t, client(t), fmt.Sprintf("%s/schedules/%d", b.srv.URL, id))
	require.Contains(t, body, "at :02:30 past every hour")
	require.Contains(t, body, `id="schedule-warning"`)
	require.Contains(t, body, `if you meant at 02:30 every day, write &#34;30 2 * * *&#34;`)
	require.Contains(t, body, "<td>no retries</td>")
}
