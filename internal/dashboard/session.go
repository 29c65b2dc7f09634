package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atis-edu/atis-scheduler/internal/admin"
)

// Cookie names.
const (
	sessionCookie = "atis_session"
	loginCookie   = "atis_login"
	flashCookie   = "atis_flash"
)

// session is who signed in, until when. Its cookie is signed with a key
// derived from the token (void once the token changes) and names a row of
// scheduler_dashboard_sessions (Nonce): every replica reads the same rows,
// so signing out, here or everywhere, ends the session on all of them.
type session struct {
	Name    string `json:"n"`
	Expires int64  `json:"e"`
	Nonce   string `json:"r"`

	raw string // the signed payload, which the CSRF token is bound to
}

type sessionKey struct{}

func deriveKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("atis-scheduler dashboard session v1"))
	return m.Sum(nil)
}

func (d *Dashboard) sign(parts ...string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenMatches compares a presented token with the configured one in
// constant time (hashing first hides the length too).
func (d *Dashboard) tokenMatches(given string) bool {
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(d.cfg.Token))
	return d.cfg.Token != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// session returns the request's valid session, or nil.
func (d *Dashboard) session(r *http.Request) *session {
	if d.key == nil {
		return nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	payload, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(d.sign("session", payload))) {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(b, &s) != nil || d.cfg.Now().Unix() >= s.Expires {
		return nil
	}
	var live bool
	if err := d.cfg.Pool.QueryRow(r.Context(), `SELECT EXISTS (SELECT 1 FROM scheduler_dashboard_sessions
		WHERE id = $1 AND expires_at > now())`, s.Nonce).Scan(&live); err != nil || !live {
		return nil // signed out (here, elsewhere, everywhere), or the database cannot say
	}
	s.raw = payload
	return &s
}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// csrf is the token every POST of this session must carry.
func (d *Dashboard) csrf(s *session) string {
	if s == nil {
		return ""
	}
	return d.sign("csrf", s.raw)
}

func (d *Dashboard) newSession(w http.ResponseWriter, r *http.Request, name string) error {
	expires := d.cfg.Now().Add(d.cfg.SessionTTL)
	s := session{Name: name, Expires: expires.Unix(), Nonce: rand.Text()}
	if _, err := d.cfg.Pool.Exec(r.Context(), `WITH gone AS (DELETE FROM scheduler_dashboard_sessions WHERE expires_at <= now())
		INSERT INTO scheduler_dashboard_sessions (id, name, address, user_agent, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		s.Nonce, name, d.clientAddress(r), r.UserAgent(), expires); err != nil {
		return fmt.Errorf("record session: %w", err)
	}
	b, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(b)
	d.setCookie(w, r, sessionCookie, payload+"."+d.sign("session", payload), int(d.cfg.SessionTTL.Seconds()))
	return nil
}

// setCookie sets a cookie of the dashboard's: HttpOnly, SameSite=Strict,
// and Secure whenever the browser reached us over HTTPS (see secure).
func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: d.secure(r),
	})
}

// secure says whether the browser reached the dashboard over HTTPS: TLS on
// this listener, the HTTPS setting (a TLS proxy in front), or a trusted
// proxy's X-Forwarded-Proto.
func (d *Dashboard) secure(r *http.Request) bool {
	return r.TLS != nil || d.cfg.HTTPS || (d.fromTrustedProxy(r) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))
}

// fromTrustedProxy says whether the request's peer is one of
// TrustedProxies, whose forwarding headers are believed.
func (d *Dashboard) fromTrustedProxy(r *http.Request) bool {
	ip, ok := peerIP(r.RemoteAddr)
	return ok && slices.ContainsFunc(d.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(ip) })
}

func peerIP(remoteAddr string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		a, err := netip.ParseAddr(remoteAddr)
		return a.Unmap(), err == nil
	}
	return ap.Addr().Unmap(), true
}

// clientAddress is the browser's address: the peer, or, behind a trusted
// proxy, the last X-Forwarded-For entry that is not one of them (the one
// the nearest trusted proxy saw).
func (d *Dashboard) clientAddress(r *http.Request) string {
	ip, ok := peerIP(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !d.fromTrustedProxy(r) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		hop = hop.Unmap()
		if !slices.ContainsFunc(d.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(hop) }) {
			return hop.String()
		}
	}
	return ip.String()
}

// loginForm shows the sign-in form, with a login CSRF token (double submit:
// the same random value in a cookie and in the form).
func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	nonce := rand.Text()
	d.setCookie(w, r, loginCookie, nonce, 600)
	d.render(w, r, "login", "Sign in", loginPage{Next: localPath(r.URL.Query().Get("next")), Nonce: nonce})
}

type loginPage struct {
	Next, Nonce, Error string
}

// login exchanges the token for a session cookie.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("login_csrf"))) != 1 {
		http.Error(w, "the sign-in form expired: load /login again", http.StatusForbidden)
		return
	}
	address := d.clientAddress(r)
	if why, err := d.loginsExhausted(r.Context(), address); err != nil {
		d.fail(w, r, err)
		return
	} else if why != "" {
		http.Error(w, why, http.StatusTooManyRequests)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	page := loginPage{Next: next, Nonce: c.Value}
	switch {
	case d.key == nil:
		page.Error = "No token is configured: set ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) and restart the daemon."
	case name == "" || utf8.RuneCountInString(name) > 100:
		page.Error = "Give your name (up to 100 characters): it goes into the audit log of every action."
	case !d.tokenMatches(r.PostFormValue("token")):
		d.cfg.Logger.WarnContext(r.Context(), "dashboard: sign-in with a wrong token", slog.String("client", address))
		page.Error = "That token is not the one configured in ATIS_UI_TOKEN."
		if err := d.loginFailed(r.Context(), address); err != nil {
			d.fail(w, r, err)
			return
		}
	}
	if page.Error != "" {
		d.renderStatus(w, r, http.StatusUnauthorized, "login", "Sign in", page)
		return
	}
	d.setCookie(w, r, loginCookie, "", -1)
	if err := d.newSession(w, r, name); err != nil {
		d.fail(w, r, err)
		return
	}
	d.cfg.Logger.InfoContext(r.Context(), "dashboard: signed in", slog.String("name", name), slog.String("client", address))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// Sign-in limits, over loginWindow, on every replica together: failed
// attempts from one client address are refused past loginsPerClient; only
// failures count, and only for the window, so a correct token waits at
// most a window, and only from an address that has been guessing. Failures
// from all addresses past loginsInAll are logged at WARN (a distributed
// guess), not refused: a refusal for everyone would let anyone lock every
// operator out.
const (
	loginWindow     = time.Minute
	loginsPerClient = 10
	loginsInAll     = 100
)

// loginsExhausted says why a sign-in from address must wait, or "".
func (d *Dashboard) loginsExhausted(ctx context.Context, address string) (string, error) {
	var mine, all int
	if err := d.cfg.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE address = $1), count(*) FROM scheduler_dashboard_logins
		WHERE attempted_at > now() - make_interval(secs => $2)`, address, loginWindow.Seconds()).Scan(&mine, &all); err != nil {
		return "", fmt.Errorf("count sign-in attempts: %w", err)
	}
	if all >= loginsInAll {
		d.mu.Lock()
		warn := time.Since(d.lastManyLogins) > loginWindow
		if warn {
			d.lastManyLogins = time.Now()
		}
		d.mu.Unlock()
		if warn {
			d.cfg.Logger.WarnContext(ctx, "dashboard: many failed sign-ins from many addresses: someone may be guessing the token",
				slog.Int("failed_last_minute", all))
		}
	}
	if mine >= loginsPerClient {
		return fmt.Sprintf("too many failed sign-ins from your address: wait up to %s", loginWindow), nil
	}
	return "", nil
}

// loginFailed counts a failed sign-in from address, and forgets those
// older than the window.
func (d *Dashboard) loginFailed(ctx context.Context, address string) error {
	_, err := d.cfg.Pool.Exec(ctx, `WITH old AS (DELETE FROM scheduler_dashboard_logins WHERE attempted_at <= now() - make_interval(secs => $2))
		INSERT INTO scheduler_dashboard_logins (address) VALUES ($1)`, address, loginWindow.Seconds())
	if err != nil {
		return fmt.Errorf("count a failed sign-in: %w", err)
	}
	return nil
}

// logout ends this session on every replica.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := d.cfg.Pool.Exec(r.Context(), `DELETE FROM scheduler_dashboard_sessions WHERE id = $1`, s.Nonce); err != nil {
		d.fail(w, r, fmt.Errorf("sign out: %w", err))
		return
	}
	d.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logoutEverywhere ends every session of the dashboard, on every replica,
// this one included, with an audit row.
func (d *Dashboard) logoutEverywhere(w http.ResponseWriter, r *http.Request, s *session) {
	n, err := admin.EndSessions(r.Context(), d.cfg.Pool, d.actor(r, s))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.cfg.Logger.InfoContext(r.Context(), "dashboard: signed out everywhere", slog.Int("sessions", n), slog.String("by", s.Name))
	d.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// action wraps a POST handler: it needs a session and the session's CSRF
// token.
func (d *Dashboard) action(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sessionOf(r)
		switch {
		case d.key == nil:
			http.Error(w, "actions are off: set ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) and restart the daemon", http.StatusForbidden)
		case s == nil:
			http.Error(w, "sign in first: /login", http.StatusUnauthorized)
		case !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(d.csrf(s))):
			http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
		default:
			h(w, r, s)
		}
	}
}

// localPath returns p when it is a path on this site, else "/". It must
// stay one after a browser has read it as a Location: browsers drop tabs
// and newlines anywhere, trim spaces and other control characters at the
// ends and read a backslash as a slash, so "/\t/evil.example" would go to
// //evil.example. A path holding any of those, or one that does not parse as
// a relative reference to a path on this origin, is refused.
func localPath(p string) string {
	bad := func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r == ' ' }
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsFunc(p, bad) || !utf8.ValidString(p) {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") ||
		strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return p
}

// flash leaves a message for the next page this browser loads. A cookie,
// not a query parameter: no link from elsewhere can plant one.
func (d *Dashboard) flash(w http.ResponseWriter, r *http.Request, msg string) {
	d.setCookie(w, r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), 60)
}

func (d *Dashboard) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	d.setCookie(w, r, flashCookie, "", -1)
	b, _ := base64.RawURLEncoding.DecodeString(c.Value)
	return string(b)
}
