package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Cookie names.
const (
	sessionCookie = "atis_session"
	loginCookie   = "atis_login"
	flashCookie   = "atis_flash"
)

// session is who signed in, until when. It lives in a cookie signed with a
// key derived from the token: no server state, valid on every replica that
// shares the token, and void once the token changes.
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

func (d *Dashboard) newSession(w http.ResponseWriter, r *http.Request, name string) {
	s := session{Name: name, Expires: d.cfg.Now().Add(d.cfg.SessionTTL).Unix(), Nonce: rand.Text()}
	b, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(b)
	setCookie(w, r, sessionCookie, payload+"."+d.sign("session", payload), int(d.cfg.SessionTTL.Seconds()))
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// loginForm shows the sign-in form, with a login CSRF token (double submit:
// the same random value in a cookie and in the form).
func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	nonce := rand.Text()
	setCookie(w, r, loginCookie, nonce, 600)
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
	if !d.logins.Allow() {
		http.Error(w, "too many sign-in attempts: wait a moment", http.StatusTooManyRequests)
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
		d.cfg.Logger.WarnContext(r.Context(), "dashboard: sign-in with a wrong token", slog.String("remote_addr", r.RemoteAddr))
		page.Error = "That token is not the one configured in ATIS_UI_TOKEN."
	}
	if page.Error != "" {
		d.renderStatus(w, r, http.StatusUnauthorized, "login", "Sign in", page)
		return
	}
	setCookie(w, r, loginCookie, "", -1)
	d.newSession(w, r, name)
	d.cfg.Logger.InfoContext(r.Context(), "dashboard: signed in", slog.String("name", name), slog.String("remote_addr", r.RemoteAddr))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	setCookie(w, r, sessionCookie, "", -1)
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

// localPath returns p when it is a path on this site, else "/".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/"
	}
	return p
}

// flash leaves a message for the next page this browser loads. A cookie,
// not a query parameter: no link from elsewhere can plant one.
func flash(w http.ResponseWriter, r *http.Request, msg string) {
	setCookie(w, r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), 60)
}

func takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	setCookie(w, r, flashCookie, "", -1)
	b, _ := base64.RawURLEncoding.DecodeString(c.Value)
	return string(b)
}
