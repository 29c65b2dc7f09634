package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/scheduler"
)

// Ways an action reaches the scheduler, as audit rows name them.
const (
	ViaDashboard = "atis-scheduler dashboard"
	ViaCLI       = "atis-scheduler CLI"
)

// Actor is who performs an action, as its audit row records them.
type Actor struct {
	// Name is the person: the name given at sign-in, or the operating
	// system user of a CLI.
	Name string
	// Via is ViaDashboard or ViaCLI.
	Via string
	// Address and UserAgent are the client's, when it has them.
	Address, UserAgent string
}

// audit is one platform.audit_logs row: who did what to which resource.
type audit struct {
	Action   string
	Resource string
	Before   map[string]any
	After    map[string]any
	Note     string
}

func writeAudit(ctx context.Context, tx pgx.Tx, who Actor, a audit) error {
	a.After["performed_by_name"] = who.Name
	a.After["via"] = who.Via
	before, _ := json.Marshal(a.Before)
	after, _ := json.Marshal(a.After)
	var ip, agent *string
	if host, _, err := net.SplitHostPort(who.Address); err == nil && net.ParseIP(host) != nil {
		ip = &host
	} else if net.ParseIP(who.Address) != nil {
		ip = &who.Address
	}
	if who.UserAgent != "" {
		agent = &who.UserAgent
	}
	_, err := tx.Exec(ctx, `INSERT INTO platform.audit_logs (action, resource, previous_state, new_state, ip_address, user_agent, notes)
		VALUES ($1, $2, $3, $4, $5::inet, $6, $7)`,
		a.Action, a.Resource, before, after, ip, agent, fmt.Sprintf("%s by %s (%s)", a.Note, who.Name, who.Via))
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// SetActive pauses (false) or resumes (true) schedule id, with its audit
// row, in one transaction, and returns its name. Running daemons pick the
// change up at once.
func SetActive(ctx context.Context, pool *pgxpool.Pool, id int64, active bool, who Actor) (string, error) {
	verb := map[bool]string{true: "resume", false: "pause"}[active]
	var name string
	var was bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT name, coalesce(is_active, false) FROM scheduled_jobs WHERE id = $1 FOR UPDATE`, id).Scan(&name, &was)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE scheduled_jobs SET is_active = $2 WHERE id = $1`, id, active); err != nil {
			return err
		}
		return writeAudit(ctx, tx, who, audit{Action: verb, Resource: "scheduled_jobs",
			Before: map[string]any{"id": id, "name": name, "is_active": was},
			After:  map[string]any{"id": id, "name": name, "is_active": active},
			Note:   fmt.Sprintf("schedule %d (%s) %sd", id, name, verb)})
	})
	if err != nil {
		return "", fmt.Errorf("%s schedule %d: %w", verb, id, err)
	}
	return name, nil
}

// Runner enqueues a run of a schedule now: the scheduler (RunNow).
type Runner interface {
	RunNow(ctx context.Context, id int64, executedBy *int64) (int64, error)
}

// RunNow enqueues a run of schedule id now as user executedBy (nil: none
// recorded), then writes its audit row, and returns the run's id and the
// schedule's name. A schedule that cannot run says why (the error).
func RunNow(ctx context.Context, pool *pgxpool.Pool, runner Runner, id int64, executedBy *int64, who Actor) (int64, string, error) {
	var name string
	err := pool.QueryRow(ctx, `SELECT name FROM scheduled_jobs WHERE id = $1`, id).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return 0, "", fmt.Errorf("read schedule %d: %w", id, err)
	}
	runID, err := runner.RunNow(ctx, id, executedBy)
	if err != nil {
		return 0, name, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return writeAudit(ctx, tx, who, audit{Action: "run_now", Resource: "scheduled_jobs",
			Before: map[string]any{"id": id, "name": name},
			After:  map[string]any{"id": id, "name": name, "run_id": runID},
			Note:   fmt.Sprintf("schedule %d (%s) run now as run %d", id, name, runID)})
	})
	return runID, name, err
}

// ErrUnknownClass is SetPauseSwitch's error for a class no daemon knows.
var ErrUnknownClass = errors.New("admin: unknown job class")

// SetPauseSwitch turns a pause switch (platform.feature_flags) on or off,
// with its audit row: class "*" is every class (scheduler.PauseAll),
// otherwise scheduler.PausePrefix + a class among known. It returns the
// switch's key.
func SetPauseSwitch(ctx context.Context, pool *pgxpool.Pool, class string, known []string, on bool, who Actor) (string, error) {
	key := scheduler.PauseAll
	if class != "*" {
		if !slices.Contains(known, class) {
			return "", fmt.Errorf("%w %q", ErrUnknownClass, class)
		}
		key = scheduler.PausePrefix + class
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
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
		return writeAudit(ctx, tx, who, audit{Action: verb, Resource: "platform.feature_flags",
			Before: map[string]any{"key": key, "is_enabled": was}, After: map[string]any{"key": key, "is_enabled": on},
			Note: fmt.Sprintf("pause switch %s turned %s", key, map[bool]string{true: "on", false: "off"}[on])})
	})
	if err != nil {
		return key, fmt.Errorf("set pause switch %s: %w", key, err)
	}
	return key, nil
}

// EndSessions signs every dashboard session out, on every replica, with an
// audit row, and returns how many there were.
func EndSessions(ctx context.Context, pool *pgxpool.Pool, who Actor) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM scheduler_dashboard_sessions`)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return writeAudit(ctx, tx, who, audit{Action: "sign_out_everywhere", Resource: "scheduler_dashboard_sessions",
			Before: map[string]any{"sessions": n}, After: map[string]any{"sessions": 0},
			Note: fmt.Sprintf("%d dashboard session(s) signed out", n)})
	})
	if err != nil {
		return 0, fmt.Errorf("sign out everywhere: %w", err)
	}
	return n, nil
}

// DeleteSchedule deletes schedule id, with its audit row, and returns its
// name and how many runs of history it leaves (job_logs keeps them; they
// stay readable by its name). A run in progress finishes and is recorded.
func DeleteSchedule(ctx context.Context, pool *pgxpool.Pool, id int64, who Actor) (string, int64, error) {
	var name, class string
	var runs int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT name, job_class FROM scheduled_jobs WHERE id = $1 FOR UPDATE`, id).Scan(&name, &class)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT river_job_id) FROM job_logs WHERE scheduled_job_id = $1`, id).Scan(&runs); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM scheduled_jobs WHERE id = $1`, id); err != nil {
			return err
		}
		return writeAudit(ctx, tx, who, audit{Action: "delete", Resource: "scheduled_jobs",
			Before: map[string]any{"id": id, "name": name, "job_class": class}, After: map[string]any{"id": id, "deleted": true, "runs_kept": runs},
			Note: fmt.Sprintf("schedule %d (%s) deleted; %d runs of history kept", id, name, runs)})
	})
	if err != nil {
		return "", 0, fmt.Errorf("delete schedule %d: %w", id, err)
	}
	return name, runs, nil
}
