// Package dashboard is the operations dashboard the daemon serves on its
// HTTP listener: what runs, what failed and why, what runs next, and the few
// actions an operator needs (pause, resume, run now, class pause switches).
//
// Pages are rendered on the server with html/template and need no script;
// the style sheet is embedded. Who may see and do what:
//
//   - On a loopback listener (the default 127.0.0.1:9464) the read-only
//     pages are open, to requests whose Host names the loopback (a guard
//     against DNS rebinding).
//   - On any other address every page needs a session; without a configured
//     token the dashboard is off (New returns nil and logs why).
//   - Actions need a session, obtained by presenting the token at /login
//     (compared in constant time), and a CSRF token in every POST. Each action
//     writes a platform.audit_logs row naming who did it.
//   - River's own UI, when the daemon gives it (Config.RiverUI), is served
//     at /river/ to signed-in operators only, under a CSP of its own: it
//     needs script, and it can cancel, retry and delete jobs.
package dashboard

import (
	"cmp"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/workers"
)

// DefaultSessionTTL is how long a session lasts after signing in.
const DefaultSessionTTL = 12 * time.Hour

// requestTimeout bounds one request's queries: a page the database cannot
// answer in time fails rather than holding a connection of the daemon's
// pool.
const requestTimeout = 10 * time.Second

// Runner is what the dashboard needs of the daemon's scheduler.
type Runner interface {
	// RunNow enqueues a run of the schedule now; it returns the run's id.
	RunNow(ctx context.Context, id int64, executedBy *int64) (int64, error)
	// Wake makes the scheduling loop look at the schedules at once.
	Wake()
}

// Config is what New needs.
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool

	// Registry holds the job classes: it redacts parameters and names the
	// classes that can be paused. Required.
	Registry *workers.Registry

	// Runner runs schedules now. Defaults to none: "run now" is then off.
	Runner Runner

	// Token is ATIS_UI_TOKEN. Defaults to none: actions are off, and the
	// whole dashboard is off unless Addr is a loopback address.
	Token string

	// Addr is the listener's address (ATIS_HTTP_ADDR): on a loopback
	// address the read-only pages need no token. Defaults to 127.0.0.1:9464.
	Addr string

	// Logger receives the dashboard's log lines. Defaults to discarding them.
	Logger *slog.Logger

	// Now is the clock. Defaults to time.Now.
	Now func() time.Time

	// Location is the zone pages show times in, and read the runs page's
	// date filters in: the web app's (ATIS_DB_TIMEZONE), the zone its
	// people think in. Defaults to UTC.
	Location *time.Location

	// SessionTTL is how long a session lasts. Defaults to 12 hours.
	SessionTTL time.Duration

	// HTTPS says that browsers reach the dashboard over HTTPS (a TLS proxy
	// in front, ATIS_HTTPS): cookies are then Secure. Defaults to false:
	// Secure only for a request over TLS, or forwarded as https by a
	// trusted proxy.
	HTTPS bool

	// RiverUI is River's own web UI (see RiverUI), served at /river/ to
	// signed-in operators, with a CSP of its own. Defaults to none: /river/
	// is not found and the navigation does not link it.
	RiverUI http.Handler

	// Reconcile makes job_logs and the schedules' bookkeeping agree with
	// River's queue (scheduler.Reconciler.FollowQueue); it runs after each
	// River UI request that changes jobs. Defaults to none: the next periodic pass
	// does it.
	Reconcile func(context.Context) error

	// TrustedProxies are the addresses whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (ATIS_TRUSTED_PROXIES). Defaults to
	// none: the peer is the client.
	TrustedProxies []netip.Prefix
}

func (c Config) withDefaults() Config {
	c.Addr = cmp.Or(c.Addr, config.DefaultHTTPAddr)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	c.SessionTTL = cmp.Or(c.SessionTTL, DefaultSessionTTL)
	return c
}

// Dashboard is the dashboard's HTTP handler.
type Dashboard struct {
	cfg         Config
	crossOrigin *http.CrossOriginProtection // River UI's changes come from this site
	loopback    bool
	key         []byte // signs sessions and CSRF tokens; nil without a token
	mux         *http.ServeMux
	pages       map[string]*template.Template

	mu             sync.Mutex
	lastManyLogins time.Time // when many failed sign-ins were last logged
}

//go:embed templates static
var assets embed.FS

// New returns the dashboard, or nil when it must be off: the listener is not
// on loopback and no token is configured. It logs why it is off, or how
// actions are turned on.
func New(cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	d := &Dashboard{cfg: cfg, crossOrigin: http.NewCrossOriginProtection(), loopback: IsLoopback(cfg.Addr)}
	switch {
	case cfg.Token == "" && !d.loopback:
		cfg.Logger.Warn("dashboard off: ATIS_HTTP_ADDR is not a loopback address and ATIS_UI_TOKEN is not set; "+
			"set ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) to serve it, with every page behind the token",
			slog.String("http_addr", cfg.Addr))
		return nil
	case cfg.Token == "":
		cfg.Logger.Info("dashboard read-only: set ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) to pause, resume and run schedules from it")
	}
	if cfg.Token != "" {
		d.key = deriveKey(cfg.Token)
	}
	if cfg.RiverUI != nil && cfg.Token == "" {
		cfg.Logger.Info("River UI off: it needs a signed-in operator; set ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) to serve it at /river/")
		d.cfg.RiverUI = nil
	}
	d.pages = parsePages(funcs(cfg.Location))
	d.routes()
	return d
}

// IsLoopback reports whether a listen address only accepts connections from
// this machine: an IP on the loopback, or localhost. ":9464" and
// "0.0.0.0:9464" are not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static))))
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { d.notFound(w, r, problem{}) })
	m.HandleFunc("GET /{$}", d.overview)
	m.HandleFunc("GET /schedules", d.schedules)
	m.HandleFunc("GET /schedules/{id}", d.scheduleDetail)
	m.HandleFunc("GET /runs", d.runs)
	m.HandleFunc("GET /runs/{id}", d.runDetail)
	m.HandleFunc("GET /integrations", d.integrations)
	m.HandleFunc("GET /integrations/syncs/{id}", d.syncDetail)
	m.HandleFunc("GET /deliveries", d.deliveries)
	m.HandleFunc("GET /licenses", d.licenses)
	m.HandleFunc("GET /retention", d.retention)
	m.HandleFunc("GET /login", d.loginForm)
	m.HandleFunc("POST /login", d.login)
	m.HandleFunc("POST /logout", d.action(d.logout))
	m.HandleFunc("POST /logout/everywhere", d.action(d.logoutEverywhere))
	m.HandleFunc("POST /schedules/{id}/pause", d.action(d.setActive(false)))
	m.HandleFunc("POST /schedules/{id}/resume", d.action(d.setActive(true)))
	m.HandleFunc("POST /schedules/{id}/run", d.action(d.runNow))
	m.HandleFunc("POST /switches", d.action(d.setSwitch))
	d.mux = m
}

// ServeHTTP sets the security headers, keeps DNS-rebinding and anonymous
// requests out where they must be, and serves the page.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	if d.loopback && !loopbackHost(r.Host) {
		http.Error(w, "this dashboard answers only to 127.0.0.1, [::1] or localhost", http.StatusMisdirectedRequest)
		return
	}
	if d.cfg.RiverUI != nil && isRiverUI(r) {
		d.serveRiverUI(w, r)
		return
	}
	s := d.session(r)
	if s == nil && !d.loopback && !isPublic(r) {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(localPath(r.URL.RequestURI())), http.StatusSeeOther)
		return
	}
	if why := checkQuery(r.URL.Query()); why != "" {
		d.badRequest(w, r, why)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	if s != nil {
		ctx = context.WithValue(ctx, sessionKey{}, s)
	}
	d.mux.ServeHTTP(w, r.WithContext(ctx))
}

// isPublic: the sign-in page and the style sheet are served to anyone.
func isPublic(r *http.Request) bool {
	p := r.URL.Path
	return p == "/login" || p == "/favicon.ico" || strings.HasPrefix(p, "/static/")
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pathID reads the {id} of the path: one that is not a number names no
// page.
func (d *Dashboard) pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		d.notFound(w, r, problem{})
		return 0, false
	}
	return id, true
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}
