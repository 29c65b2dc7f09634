package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// pageNames are the templates under templates/, each with layout.html.
var pageNames = []string{"overview", "schedules", "schedule", "runs", "run", "integrations", "sync", "deliveries",
	"licenses", "retention", "login", "error"}

func parsePages(funcs template.FuncMap) map[string]*template.Template {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return pages
}

// view is what every template gets: the page's data and the frame around it.
type view struct {
	Title    string
	Path     string
	Section  string // the first segment of the path: which tab is on
	Session  *session
	CSRF     string
	TokenSet bool
	RiverUI  bool // River UI is served at /river/
	Flash    string
	Now      time.Time
	// Zone names the zone times are shown in: "UTC", or ATIS_DB_TIMEZONE's
	// name and offset ("Asia/Baku, +04").
	Zone string
	Data any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, page, title string, data any) {
	d.renderStatus(w, r, http.StatusOK, page, title, data)
}

// renderStatus renders page with status: the headers are set before it is
// written, whatever the status.
func (d *Dashboard) renderStatus(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	s := sessionOf(r)
	section, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	v := view{Title: title, Path: localPath(r.URL.RequestURI()), Section: section, Session: s, CSRF: d.csrf(s), TokenSet: d.key != nil,
		RiverUI: d.cfg.RiverUI != nil,
		Flash:   d.takeFlash(w, r), Now: d.cfg.Now().UTC(), Zone: zoneLabel(d.cfg.Location, d.cfg.Now()), Data: data}
	var buf bytes.Buffer
	if err := d.pages[page].Execute(&buf, v); err != nil {
		d.cfg.Logger.ErrorContext(r.Context(), "dashboard: render page", slog.String("page", page), slog.String("error", err.Error()))
		http.Error(w, "the page could not be rendered; the daemon's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail logs err and shows a page that says what could not be read, without
// the driver's text (it may name the database's host and user).
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusServiceUnavailable
	}
	d.cfg.Logger.ErrorContext(r.Context(), "dashboard: page failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	d.renderStatus(w, r, status, "error", "Error", problem{Heading: "Something went wrong", Message: "The page could not be read from the database; the daemon's log says why."})
}

// problem is what the error page says.
type problem struct {
	Heading, Message string
	Link, LinkText   string // optional: where to go instead
}

// notFound answers 404 with the dashboard's own page.
func (d *Dashboard) notFound(w http.ResponseWriter, r *http.Request, p problem) {
	if p.Heading == "" {
		p.Heading = "Not found"
	}
	if p.Message == "" {
		p.Message = "Nothing here: the address names no page of this dashboard."
	}
	if p.Link == "" {
		p.Link, p.LinkText = "/", "Back to the overview"
	}
	d.renderStatus(w, r, http.StatusNotFound, "error", p.Heading, p)
}

// badRequest answers 400 with what is wrong with the request's address (a
// link mistyped or cut): the user's mistake, not the daemon's, logged at
// DEBUG only.
func (d *Dashboard) badRequest(w http.ResponseWriter, r *http.Request, why string) {
	d.cfg.Logger.DebugContext(r.Context(), "dashboard: bad request", slog.String("path", r.URL.Path), slog.String("why", why))
	d.renderStatus(w, r, http.StatusBadRequest, "error", "Bad request", problem{Heading: "Bad request", Message: "This address cannot be shown: " + why + "."})
}

// checkQuery refuses query values the pages cannot use: text that is not
// UTF-8 or holds NUL (PostgreSQL stores neither), or longer than a filter
// needs. It says what is wrong, or "".
func checkQuery(q url.Values) string {
	for key, values := range q {
		for _, v := range values {
			switch {
			case !utf8.ValidString(key) || !utf8.ValidString(v):
				return fmt.Sprintf("%q is not UTF-8 text", strings.ToValidUTF8(key, "?"))
			case strings.ContainsRune(key+v, 0):
				return fmt.Sprintf("%q holds a NUL character", key)
			case len(v) > 500:
				return fmt.Sprintf("%q is longer than 500 bytes", key)
			}
		}
	}
	return ""
}

// funcs are the templates' functions; times are shown in loc.
func funcs(loc *time.Location) template.FuncMap {
	return template.FuncMap{
		"ts":     func(v any) string { return formatTime(v, loc) },
		"tsz":    formatLocal,
		"ago":    ago,
		"dur":    duration,
		"ms":     milliseconds,
		"deref":  deref,
		"scrub":  scrub,
		"alive":  func(t time.Time, now time.Time) bool { return now.Sub(t) < aliveAfter },
		"since":  func(t time.Time, now time.Time) string { return duration(int32(now.Sub(t).Seconds())) },
		"pair":   func(v, x any) pair { return pair{V: v, X: x} },
		"inZone": func(t time.Time) time.Time { return t.In(loc) },
	}
}

// pair hands a partial template two values: V (usually the view) and X.
type pair struct{ V, X any }

// zoneLabel names loc for the pages: "UTC", or "Asia/Baku (+04)" with the
// offset in effect at now.
func zoneLabel(loc *time.Location, now time.Time) string {
	abbr, _ := now.In(loc).Zone()
	if name := loc.String(); name != abbr {
		return name + " (" + abbr + ")"
	}
	return abbr
}

// formatTime shows an instant in loc, with its zone's abbreviation or
// offset: "2026-11-23 15:04:05 UTC", "2026-11-23 19:04:05 +04".
func formatTime(v any, loc *time.Location) string {
	switch t := v.(type) {
	case time.Time:
		if t.IsZero() {
			return "—"
		}
		return t.In(loc).Format("2006-01-02 15:04:05 MST")
	case *time.Time:
		if t == nil {
			return "—"
		}
		return formatTime(*t, loc)
	}
	return fmt.Sprint(v)
}

// formatLocal shows a time in its own zone (a schedule's fire times).
func formatLocal(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") }

// ago says how long before now t was, or how long after now it is.
func ago(t any, now time.Time) string {
	var v time.Time
	switch x := t.(type) {
	case time.Time:
		v = x
	case *time.Time:
		if x == nil {
			return ""
		}
		v = *x
	default:
		return ""
	}
	d := now.Sub(v)
	if d < 0 {
		return "in " + duration(int32(-d.Seconds()))
	}
	return duration(int32(d.Seconds())) + " ago"
}

// duration shows whole seconds as "1h 02m", "3m 05s" or "12s"; 0 as "<1s"
// (the column holds whole seconds: a run of 300 ms is 0).
func duration(v any) string {
	var s int64
	switch x := v.(type) {
	case int32:
		s = int64(x)
	case *int32:
		if x == nil {
			return "—"
		}
		s = int64(*x)
	case int:
		s = int64(x)
	case int64:
		s = x
	default:
		return fmt.Sprint(v)
	}
	switch {
	case s >= 86400:
		return fmt.Sprintf("%dd %02dh", s/86400, s%86400/3600)
	case s >= 3600:
		return fmt.Sprintf("%dh %02dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	case s <= 0:
		return "<1s"
	}
	return fmt.Sprintf("%ds", s)
}

// milliseconds shows a duration in milliseconds as "850 ms", "4.2s", or as
// duration does from a minute on; nil (still running) as a dash.
func milliseconds(v *int64) string {
	switch {
	case v == nil:
		return "—"
	case *v < 1000:
		return fmt.Sprintf("%d ms", max(*v, 0))
	case *v < 60000:
		return fmt.Sprintf("%.1fs", float64(*v)/1000)
	}
	return duration(*v / 1000)
}

// scrub shows a message (an error, a trace) with any URL's credentials
// hidden: a class should never have written them, but a page must not show
// them if one did.
func scrub(v any) string {
	return redact.Text(fmt.Sprint(deref(v)))
}

// deref shows a nullable column, or a dash.
func deref(v any) any {
	switch x := v.(type) {
	case *string:
		if x == nil {
			return "—"
		}
		return *x
	case *int32:
		if x == nil {
			return "—"
		}
		return *x
	case *int64:
		if x == nil {
			return "—"
		}
		return *x
	}
	return v
}
