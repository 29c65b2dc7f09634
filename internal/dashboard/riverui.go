package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// RiverUIPrefix is where River's own web UI is served on the dashboard's
// listener.
const RiverUIPrefix = "/river"

// riverUICSP is River UI's Content-Security-Policy: scripts only its own
// files (no inline script, no eval), its API, its icons (its style sheet
// draws some as data: SVGs); never framed. Its bundle adds <style>
// elements at run time (goober, behind its toasts, and its theme switch,
// with no nonce to give), hence 'unsafe-inline' for styles only. The
// dashboard's own pages keep their policy without script.
const riverUICSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// RiverUI is River's own web UI (riverqueue.com/riverui) for client, to be
// served by the dashboard at RiverUIPrefix (Config.RiverUI). Its background
// services run until ctx ends.
func RiverUI(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    RiverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("create River UI: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("start River UI: %w", err)
	}
	return h, nil
}

// isRiverUI says whether the request is for River UI.
func isRiverUI(r *http.Request) bool {
	return r.URL.Path == RiverUIPrefix || strings.HasPrefix(r.URL.Path, RiverUIPrefix+"/")
}

// serveRiverUI serves River UI to signed-in operators only: its API
// cancels, retries and deletes jobs and pauses queues, and it has no
// read-only mode. Requests that change something must come from this site
// (SameSite=Strict cookies, and the browser's Sec-Fetch-Site or Origin);
// each is logged with who made it.
func (d *Dashboard) serveRiverUI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", riverUICSP)
	s := d.session(r)
	switch {
	case d.key == nil:
		http.Error(w, "River UI needs a signed-in operator: set ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) and restart the daemon", http.StatusForbidden)
		return
	case s == nil && strings.HasPrefix(r.URL.Path, RiverUIPrefix+"/api/"):
		http.Error(w, "sign in first: /login", http.StatusUnauthorized)
		return
	case s == nil:
		http.Redirect(w, r, "/login?next="+url.QueryEscape(localPath(r.URL.RequestURI())), http.StatusSeeOther)
		return
	}
	if err := d.crossOrigin.Check(r); err != nil {
		http.Error(w, "River UI: "+err.Error(), http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	change := r.Method != http.MethodGet && r.Method != http.MethodHead
	if change {
		d.cfg.Logger.InfoContext(ctx, "dashboard: River UI action", slog.String("by", s.Name),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("client", d.clientAddress(r)))
	}
	d.cfg.RiverUI.ServeHTTP(w, r.WithContext(context.WithValue(ctx, sessionKey{}, s)))
	if change && d.cfg.Reconcile != nil && strings.HasPrefix(r.URL.Path, RiverUIPrefix+"/api/jobs/") {
		// A cancel or retry outside our workers: job_logs follows at once.
		if err := d.cfg.Reconcile(ctx); err != nil {
			d.cfg.Logger.WarnContext(ctx, "dashboard: job_logs not yet updated after a River UI action; the next reconciliation will",
				slog.String("error", err.Error()))
		}
	}
}
