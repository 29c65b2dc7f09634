package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/atis-edu/atis-scheduler/internal/admin"
)

// actor is who performs an action from this request: the name given at
// sign-in, with the address and browser.
func (d *Dashboard) actor(r *http.Request, s *session) admin.Actor {
	return admin.Actor{Name: s.Name, Via: admin.ViaDashboard, Address: d.clientAddress(r), UserAgent: r.UserAgent()}
}

// setActive pauses or resumes a schedule (is_active), with its audit row,
// in one transaction.
func (d *Dashboard) setActive(active bool) func(http.ResponseWriter, *http.Request, *session) {
	verb := map[bool]string{true: "resume", false: "pause"}[active]
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id, ok := d.pathID(w, r)
		if !ok {
			return
		}
		ctx := r.Context()
		name, err := admin.SetActive(ctx, d.cfg.Pool, id, active, d.actor(r, s))
		if errors.Is(err, admin.ErrNotFound) {
			d.notFound(w, r, problem{})
			return
		}
		if err != nil {
			d.fail(w, r, err)
			return
		}
		d.wake()
		d.cfg.Logger.InfoContext(ctx, "dashboard: schedule "+verb+"d", slog.Int64("scheduled_job_id", id), slog.String("by", s.Name))
		d.flash(w, r, fmt.Sprintf("Schedule %q %sd.", name, verb))
		http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
	}
}

// runNow enqueues a run of a schedule now, then writes its audit row.
func (d *Dashboard) runNow(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := d.pathID(w, r)
	if !ok {
		return
	}
	back := localPath(r.PostFormValue("back"))
	if d.cfg.Runner == nil {
		d.flash(w, r, "Run now is not available in this process.")
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	runID, name, err := admin.RunNow(ctx, d.cfg.Pool, d.cfg.Runner, id, nil, d.actor(r, s))
	switch {
	case errors.Is(err, admin.ErrNotFound):
		d.notFound(w, r, problem{})
		return
	case err != nil && name != "" && runID == 0:
		// A schedule that cannot run (bad parameters, unknown class) says why.
		d.flash(w, r, fmt.Sprintf("Schedule %q was not run: %v", name, err))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	case err != nil:
		d.fail(w, r, err)
		return
	}
	d.cfg.Logger.InfoContext(ctx, "dashboard: run now", slog.Int64("scheduled_job_id", id), slog.Int64("run_id", runID), slog.String("by", s.Name))
	d.flash(w, r, fmt.Sprintf("Schedule %q enqueued as run %d.", name, runID))
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// setSwitch turns a pause switch (platform.feature_flags) on or off: class
// "*" is every class (scheduler.paused), otherwise scheduler.paused.<class>
// for a class the registry knows.
func (d *Dashboard) setSwitch(w http.ResponseWriter, r *http.Request, s *session) {
	class, on := r.PostFormValue("class"), r.PostFormValue("paused") == "true"
	ctx := r.Context()
	key, err := admin.SetPauseSwitch(ctx, d.cfg.Pool, class, d.cfg.Registry.Names(), on, d.actor(r, s))
	if errors.Is(err, admin.ErrUnknownClass) {
		http.Error(w, "unknown job class", http.StatusBadRequest)
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.wake()
	d.cfg.Logger.InfoContext(ctx, "dashboard: pause switch", slog.String("key", key), slog.Bool("paused", on), slog.String("by", s.Name))
	d.flash(w, r, fmt.Sprintf("Pause switch %s is %s.", key, map[bool]string{true: "on", false: "off"}[on]))
	http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
}

func (d *Dashboard) wake() {
	if d.cfg.Runner != nil {
		d.cfg.Runner.Wake()
	}
}
