package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/jackc/pgx/v5"
)

// auditNote says where every action of the dashboard comes from.
const auditNote = "atis-scheduler dashboard"

// audit is one platform.audit_logs row: who (the name given at sign-in,
// with the address and browser) did what to which resource.
type audit struct {
	Action   string
	Resource string
	Before   map[string]any
	After    map[string]any
	Note     string
}

func (d *Dashboard) writeAudit(ctx context.Context, tx pgx.Tx, r *http.Request, s *session, a audit) error {
	a.After["performed_by_name"] = s.Name
	a.After["via"] = auditNote
	before, _ := json.Marshal(a.Before)
	after, _ := json.Marshal(a.After)
	var ip *string
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && net.ParseIP(host) != nil {
		ip = &host
	}
	_, err := tx.Exec(ctx, `INSERT INTO platform.audit_logs (action, resource, previous_state, new_state, ip_address, user_agent, notes)
		VALUES ($1, $2, $3, $4, $5::inet, $6, $7)`,
		a.Action, a.Resource, before, after, ip, r.UserAgent(), fmt.Sprintf("%s by %s (%s)", a.Note, s.Name, auditNote))
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// setActive pauses or resumes a schedule (is_active), with its audit row,
// in one transaction.
func (d *Dashboard) setActive(active bool) func(http.ResponseWriter, *http.Request, *session) {
	verb := map[bool]string{true: "resume", false: "pause"}[active]
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		ctx := r.Context()
		var name string
		var was bool
		err := pgx.BeginFunc(ctx, d.cfg.Pool, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `SELECT name, coalesce(is_active, false) FROM scheduled_jobs WHERE id = $1 FOR UPDATE`, id).Scan(&name, &was)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE scheduled_jobs SET is_active = $2 WHERE id = $1`, id, active); err != nil {
				return err
			}
			return d.writeAudit(ctx, tx, r, s, audit{Action: verb, Resource: "scheduled_jobs",
				Before: map[string]any{"id": id, "name": name, "is_active": was},
				After:  map[string]any{"id": id, "name": name, "is_active": active},
				Note:   fmt.Sprintf("schedule %d (%s) %sd", id, name, verb)})
		})
		if errors.Is(err, pgx.ErrNoRows) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			d.fail(w, r, fmt.Errorf("%s schedule %d: %w", verb, id, err))
			return
		}
		d.wake()
		d.cfg.Logger.InfoContext(ctx, "dashboard: schedule "+verb+"d", slog.Int64("scheduled_job_id", id), slog.String("by", s.Name))
		flash(w, r, fmt.Sprintf("Schedule %q %sd.", name, verb))
		http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
	}
}

// runNow enqueues a run of a schedule now, then writes its audit row.
func (d *Dashboard) runNow(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	back := localPath(r.PostFormValue("back"))
	if d.cfg.Runner == nil {
		flash(w, r, "Run now is not available in this process.")
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	var name string
	if err := d.cfg.Pool.QueryRow(ctx, `SELECT name FROM scheduled_jobs WHERE id = $1`, id).Scan(&name); errors.Is(err, pgx.ErrNoRows) {
		http.NotFound(w, r)
		return
	} else if err != nil {
		d.fail(w, r, fmt.Errorf("read schedule %d: %w", id, err))
		return
	}
	runID, err := d.cfg.Runner.RunNow(ctx, id, nil)
	if err != nil {
		// A schedule that cannot run (bad parameters, unknown class) says why.
		flash(w, r, fmt.Sprintf("Schedule %q was not run: %v", name, err))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	err = pgx.BeginFunc(ctx, d.cfg.Pool, func(tx pgx.Tx) error {
		return d.writeAudit(ctx, tx, r, s, audit{Action: "run_now", Resource: "scheduled_jobs",
			Before: map[string]any{"id": id, "name": name},
			After:  map[string]any{"id": id, "name": name, "run_id": runID},
			Note:   fmt.Sprintf("schedule %d (%s) run now as run %d", id, name, runID)})
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.cfg.Logger.InfoContext(ctx, "dashboard: run now", slog.Int64("scheduled_job_id", id), slog.Int64("run_id", runID), slog.String("by", s.Name))
	flash(w, r, fmt.Sprintf("Schedule %q enqueued as run %d.", name, runID))
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// setSwitch turns a pause switch (platform.feature_flags) on or off: class
// "*" is every class (scheduler.paused), otherwise scheduler.paused.<class>
// for a class the registry knows.
func (d *Dashboard) setSwitch(w http.ResponseWriter, r *http.Request, s *session) {
	class, on := r.PostFormValue("class"), r.PostFormValue("paused") == "true"
	key := scheduler.PauseAll
	if class != "*" {
		if !slices.Contains(d.cfg.Registry.Names(), class) {
			http.Error(w, "unknown job class", http.StatusBadRequest)
			return
		}
		key = scheduler.PausePrefix + class
	}
	ctx := r.Context()
	err := pgx.BeginFunc(ctx, d.cfg.Pool, func(tx pgx.Tx) error {
		var was bool
		err := tx.QueryRow(ctx, `SELECT coalesce(is_enabled, false) AND deleted_at IS NULL FROM platform.feature_flags WHERE key = $1 FOR UPDATE`, key).Scan(&was)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO platform.feature_flags (key, description, is_enabled)
			VALUES ($1, 'ATİS Scheduler pause switch', $2)
			ON CONFLICT (key) DO UPDATE SET is_enabled = $2, deleted_at = NULL, updated_at = now()`, key, on); err != nil {
			return err
		}
		verb := map[bool]string{true: "pause_class", false: "resume_class"}[on]
		return d.writeAudit(ctx, tx, r, s, audit{Action: verb, Resource: "platform.feature_flags",
			Before: map[string]any{"key": key, "is_enabled": was}, After: map[string]any{"key": key, "is_enabled": on},
			Note: fmt.Sprintf("pause switch %s turned %s", key, map[bool]string{true: "on", false: "off"}[on])})
	})
	if err != nil {
		d.fail(w, r, fmt.Errorf("set pause switch %s: %w", key, err))
		return
	}
	d.wake()
	d.cfg.Logger.InfoContext(ctx, "dashboard: pause switch", slog.String("key", key), slog.Bool("paused", on), slog.String("by", s.Name))
	flash(w, r, fmt.Sprintf("Pause switch %s is %s.", key, map[bool]string{true: "on", false: "off"}[on]))
	http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
}

func (d *Dashboard) wake() {
	if d.cfg.Runner != nil {
		d.cfg.Runner.Wake()
	}
}
