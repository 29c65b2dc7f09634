// Package admin is what people see of the scheduler and do to it, whatever
// they use: the read model of schedules and runs, and the actions (pause,
// resume, run now, the pause switches), each with its platform.audit_logs
// row. The CLI and the dashboard both go through it.
package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

// DB is what the read model queries: a pool, a connection or a transaction.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Errors of lookups; the CLI maps them to its exit codes.
var (
	ErrNotFound    = scheduler.ErrNotFound
	ErrAmbiguous   = errors.New("admin: several scheduled jobs have this name")
	ErrRunNotFound = errors.New("admin: no such run")
)

// Schedule is one scheduled_jobs row as admins see it.
type Schedule struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	Class       string     `json:"job_class"`
	Cron        *string    `json:"-"`
	Interval    *int32     `json:"-"`
	Timezone    string     `json:"timezone"`
	Active      bool       `json:"is_active"`
	Running     bool       `json:"is_running"`
	NextRunAt   *time.Time `json:"next_run_at"`
	LastRunAt   *time.Time `json:"last_run_at"`
	LastStatus  *string    `json:"last_run_status"`
	LastMessage *string    `json:"last_run_message"`
	LastDur     *int32     `json:"last_run_duration"`
	Runs        int32      `json:"run_count"`
	Failures    int32      `json:"failure_count"`
	Skips       int32      `json:"skipped_count"`
	Consecutive int32      `json:"consecutive_failures"`
	Error       *string    `json:"schedule_error"`
	Misfire     string     `json:"misfire_policy"`
	Overlap     string     `json:"overlap_policy"`
	// Schedule is the expression the scheduler uses (a blank cron means the
	// interval): "*/5 * * * *", or "every 15 min".
	Schedule string `json:"schedule"`
}

// Words is the schedule in words.
func (s Schedule) Words() string { return describe(s.Cron, s.Interval) }

// Written is the schedule as written in the row.
func (s Schedule) Written() string {
	if s.Cron != nil && strings.TrimSpace(*s.Cron) != "" {
		return *s.Cron
	}
	if s.Interval != nil {
		return fmt.Sprintf("interval_minutes = %d", *s.Interval)
	}
	return ""
}

const scheduleColumns = `id, name, job_class, cron_expression, interval_minutes, coalesce(timezone, 'UTC'),
	coalesce(is_active, false), coalesce(is_running, false), CASE WHEN isfinite(next_run_at) THEN next_run_at END,
	last_run_at, last_run_status, last_run_message, last_run_duration, coalesce(run_count, 0), coalesce(failure_count, 0),
	skipped_count, consecutive_failures, schedule_error, misfire_policy, overlap_policy`

func scanSchedule(row pgx.CollectableRow) (Schedule, error) {
	var s Schedule
	err := row.Scan(&s.ID, &s.Name, &s.Class, &s.Cron, &s.Interval, &s.Timezone, &s.Active, &s.Running, &s.NextRunAt,
		&s.LastRunAt, &s.LastStatus, &s.LastMessage, &s.LastDur, &s.Runs, &s.Failures, &s.Skips, &s.Consecutive, &s.Error,
		&s.Misfire, &s.Overlap)
	switch {
	case schedule.CronOf(s.Cron) != "":
		s.Schedule = schedule.CronOf(s.Cron)
	case s.Interval != nil:
		s.Schedule = fmt.Sprintf("every %d min", *s.Interval)
	}
	return s, err
}

// Sorts are the orders of ScheduleQuery: the SQL key, and how a cursor's
// key is cast.
var Sorts = map[string][2]string{
	"next": {"coalesce(next_run_at, 'infinity'::timestamp)", "::timestamp"},
	"name": {"name", "::text"},
	"id":   {"id", "::bigint"},
}

// ScheduleQuery narrows Schedules. Zero fields do not filter.
type ScheduleQuery struct {
	// Invalid, when set, keeps the rows that cannot run (true) or the
	// others (false).
	Invalid *bool
	// Class keeps one job class; Name keeps names holding it (any case).
	Class, Name string
	// Sort is next (the default), name or id.
	Sort string
	// After and AfterID are a keyset cursor: the sort key and id of the
	// last row of the previous page.
	After   string
	AfterID int64
	// Limit bounds the rows; 0 is no limit.
	Limit int
}

// Schedules lists schedules.
func Schedules(ctx context.Context, db DB, q ScheduleQuery) ([]Schedule, error) {
	key, ok := Sorts[q.Sort]
	if !ok {
		key = Sorts["next"]
	}
	var w filter
	if q.Invalid != nil {
		w.add(map[bool]string{true: "schedule_error IS NOT NULL", false: "schedule_error IS NULL"}[*q.Invalid])
	}
	if q.Class != "" {
		w.add("job_class = " + w.arg(q.Class))
	}
	if q.Name != "" {
		w.add("name ILIKE " + w.arg("%"+likeEscape(q.Name)+"%"))
	}
	if q.After != "" && q.AfterID > 0 {
		w.add(fmt.Sprintf("(%s, id) > (%s%s, %s)", key[0], w.arg(q.After), key[1], w.arg(q.AfterID)))
	}
	limit := ""
	if q.Limit > 0 {
		limit = " LIMIT " + strconv.Itoa(q.Limit)
	}
	rows, err := db.Query(ctx, `SELECT `+scheduleColumns+` FROM scheduled_jobs `+w.where()+
		` ORDER BY `+key[0]+`, id`+limit, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSchedule)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ScheduleDetail is one schedule with what only its own page shows.
type ScheduleDetail struct {
	Schedule
	MaxAttempts *int32
	RetryDelay  *int32
	// Parameters are the row's, as stored: redact before showing them.
	Parameters []byte
}

// GetSchedule reads one schedule.
func GetSchedule(ctx context.Context, db DB, id int64) (ScheduleDetail, error) {
	var d ScheduleDetail
	rows, err := db.Query(ctx, `SELECT `+scheduleColumns+`, max_attempts, retry_delay_minutes,
		coalesce(parameters, '{}'::jsonb) FROM scheduled_jobs WHERE id = $1`, id)
	if err != nil {
		return d, fmt.Errorf("read schedule %d: %w", id, err)
	}
	d, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (ScheduleDetail, error) {
		var d ScheduleDetail
		s := &d.Schedule
		err := row.Scan(&s.ID, &s.Name, &s.Class, &s.Cron, &s.Interval, &s.Timezone, &s.Active, &s.Running, &s.NextRunAt,
			&s.LastRunAt, &s.LastStatus, &s.LastMessage, &s.LastDur, &s.Runs, &s.Failures, &s.Skips, &s.Consecutive, &s.Error,
			&s.Misfire, &s.Overlap, &d.MaxAttempts, &d.RetryDelay, &d.Parameters)
		return d, err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return d, fmt.Errorf("%w: %d", ErrNotFound, id)
	case err != nil:
		return d, fmt.Errorf("read schedule %d: %w", id, err)
	}
	return d, nil
}

// ScheduleIDs returns the schedules an id or a name names (names need not
// be unique; at most 100), none when nothing matches.
func ScheduleIDs(ctx context.Context, db DB, idOrName string) ([]int64, error) {
	if id, err := strconv.ParseInt(idOrName, 10, 64); err == nil {
		var exists bool
		if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM scheduled_jobs WHERE id = $1)", id).Scan(&exists); err != nil {
			return nil, fmt.Errorf("find schedule %d: %w", id, err)
		}
		if exists {
			return []int64{id}, nil
		}
		return nil, nil
	}
	rows, err := db.Query(ctx, `SELECT id FROM scheduled_jobs WHERE name = $1 ORDER BY id LIMIT 100`, idOrName)
	if err != nil {
		return nil, fmt.Errorf("find schedule %q: %w", idOrName, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// HistoryIDs returns the schedules an id or a name names, deleted ones
// included (their runs stay in job_logs): for reading history.
func HistoryIDs(ctx context.Context, db DB, idOrName string) ([]int64, error) {
	if id, err := strconv.ParseInt(idOrName, 10, 64); err == nil {
		return []int64{id}, nil
	}
	rows, err := db.Query(ctx, `SELECT id FROM scheduled_jobs WHERE name = $1
		UNION SELECT id FROM scheduler_deleted_schedules WHERE name = $1 ORDER BY 1 LIMIT 100`, idOrName)
	if err != nil {
		return nil, fmt.Errorf("find schedule %q: %w", idOrName, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// Deleted is a schedule that was deleted, whose history remains.
type Deleted struct {
	ID        int64
	Name      string
	Class     *string
	DeletedAt time.Time
	Runs      int64
}

// GetDeleted reads what is left of deleted schedule id.
func GetDeleted(ctx context.Context, db DB, id int64) (Deleted, error) {
	var d Deleted
	err := db.QueryRow(ctx, `SELECT id, name, job_class, deleted_at,
			(SELECT count(DISTINCT river_job_id) FROM job_logs WHERE scheduled_job_id = $1)
		FROM scheduler_deleted_schedules WHERE id = $1`, id).Scan(&d.ID, &d.Name, &d.Class, &d.DeletedAt, &d.Runs)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return d, err
}

// Resolve turns an id or a name into one schedule's id and name.
func Resolve(ctx context.Context, db DB, idOrName string) (int64, string, error) {
	ids, err := ScheduleIDs(ctx, db, idOrName)
	switch {
	case err != nil:
		return 0, "", err
	case len(ids) == 0:
		if _, perr := strconv.ParseInt(idOrName, 10, 64); perr == nil {
			return 0, "", fmt.Errorf("%w: %s", ErrNotFound, idOrName)
		}
		return 0, "", fmt.Errorf("%w: %q", ErrNotFound, idOrName)
	case len(ids) > 1:
		return 0, "", fmt.Errorf("%w %q (ids %v): use an id", ErrAmbiguous, idOrName, ids)
	}
	var name string
	if err := db.QueryRow(ctx, "SELECT name FROM scheduled_jobs WHERE id = $1", ids[0]).Scan(&name); err != nil {
		return 0, "", fmt.Errorf("read schedule %d: %w", ids[0], err)
	}
	return ids[0], name, nil
}

// Problem is what is wrong, or doubtful, with one schedule.
type Problem = scheduler.Problem

// Validate checks every schedule as the daemon would, without changing
// anything: an error keeps a row from running; a warning does not.
func Validate(ctx context.Context, db scheduler.Querier, registry *workers.Registry) ([]Problem, error) {
	return scheduler.Validate(ctx, db, registry)
}
