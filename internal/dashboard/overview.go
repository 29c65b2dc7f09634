package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// queueCap bounds the rows counted per queue state: the page says "at
// least" beyond it rather than counting a runaway queue on every load.
const queueCap = 100000

// aliveAfter: an instance whose heartbeat is older is shown as stale.
const aliveAfter = 2 * time.Minute

type instance struct {
	ID          string
	Hostname    string
	PID         int32
	Version     *string
	StartedAt   time.Time
	HeartbeatAt time.Time
}

type queueState struct {
	State string
	Count int64
}

type nextFire struct {
	ID    int64
	Name  string
	Class string
	At    time.Time
}

type longRun struct {
	RunID       int64
	ScheduleID  *int64
	Name        *string
	Class       string
	Start       time.Time
	Usual       *int32
	Integration *string
}

// overviewShown bounds each list of the overview: the full lists are a
// click away.
const overviewShown = 20

type overviewPage struct {
	Instances []instance
	Queue     []queueState
	QueueCap  int64
	Chart     chart
	CannotRun []admin.Schedule
	// CannotRunMore: more schedules cannot run than are shown.
	CannotRunMore bool
	Failing       []admin.FailingSchedule
	Integrations  []admin.FailingIntegration
	Deliveries    []admin.FailingDeliveries
	Long          []longRun
	Next          []nextFire
	Switches      []string
	Classes       []string
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := d.cfg.Now().UTC()
	var p overviewPage
	p.QueueCap, p.Classes = queueCap, d.cfg.Registry.Names()
	err := collect(
		func() (err error) { p.Instances, err = d.instances(ctx); return },
		func() (err error) { p.Queue, err = d.queueDepth(ctx); return },
		func() (err error) { p.Chart, err = d.lastDay(ctx, now); return },
		func() (err error) { p.CannotRun, err = d.cannotRun(ctx); return },
		func() (err error) { p.Failing, err = admin.FailingSchedules(ctx, d.cfg.Pool, 50); return },
		func() (err error) {
			p.Integrations, err = admin.FailingIntegrations(ctx, d.cfg.Pool, overviewShown)
			return
		},
		func() (err error) {
			p.Deliveries, err = admin.FailingDeliveriesByIntegration(ctx, d.cfg.Pool, now, overviewShown)
			return
		},
		func() (err error) { p.Long, err = d.longRuns(ctx, now); return },
		func() (err error) { p.Next, err = d.nextFires(ctx, 20); return },
		func() (err error) { p.Switches, err = d.switches(ctx); return },
	)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if len(p.CannotRun) > overviewShown {
		p.CannotRun, p.CannotRunMore = p.CannotRun[:overviewShown], true
	}
	d.render(w, r, "overview", "Overview", p)
}

// collect runs the queries one after another (a page's queries are small;
// running them at once would only take more of the pool).
func collect(fns ...func() error) error {
	for _, f := range fns {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dashboard) instances(ctx context.Context) ([]instance, error) {
	return query(ctx, d.cfg.Pool, pgx.RowToStructByPos[instance], "read scheduler instances",
		`SELECT id, hostname, pid, version, started_at, heartbeat_at FROM scheduler_instances ORDER BY heartbeat_at DESC LIMIT 50`)
}

// queueDepth counts River's unfinished jobs by state, up to queueCap each
// (finished jobs are River's history, not depth).
func (d *Dashboard) queueDepth(ctx context.Context) ([]queueState, error) {
	return query(ctx, d.cfg.Pool, pgx.RowToStructByPos[queueState], "read queue depth", `SELECT s.state, (SELECT count(*) FROM (
			SELECT 1 FROM river_job j WHERE j.state = s.state::river_job_state LIMIT $1) c)
		FROM unnest(ARRAY['available', 'running', 'retryable', 'scheduled', 'pending']) s(state)`, queueCap)
}

// lastDay counts the attempts that started in the last 24 hours by hour and
// outcome.
func (d *Dashboard) lastDay(ctx context.Context, now time.Time) (chart, error) {
	from := now.Truncate(time.Hour).Add(-23 * time.Hour)
	rows, err := d.cfg.Pool.Query(ctx, `SELECT date_trunc('hour', start_time), status, count(*)
		FROM job_logs WHERE start_time >= $1 GROUP BY 1, 2`, from)
	if err != nil {
		return chart{}, fmt.Errorf("count last day's runs: %w", err)
	}
	// Keyed by instant: the pool may read TIMESTAMP columns in the web
	// app's zone (ATIS_DB_TIMEZONE), and time.Time keys compare zones too.
	counts := map[int64]map[string]int64{}
	var hour time.Time
	var status string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&hour, &status, &n}, func() error {
		k := hour.UTC().Truncate(time.Hour).Unix()
		if counts[k] == nil {
			counts[k] = map[string]int64{}
		}
		counts[k][status] += n
		return nil
	})
	if err != nil {
		return chart{}, fmt.Errorf("count last day's runs: %w", err)
	}
	return newChart(from, d.cfg.Location, counts), nil
}

// cannotRun lists the schedules that cannot run, whatever the reason
// (schedule_error: an invalid row, a cron expression that never fires, a
// row set aside after an internal error), by name.
func (d *Dashboard) cannotRun(ctx context.Context) ([]admin.Schedule, error) {
	invalid := true
	return admin.Schedules(ctx, d.cfg.Pool, admin.ScheduleQuery{Invalid: &invalid, Sort: "name", Limit: overviewShown + 1})
}

// longRuns lists attempts running for longer than twice their schedule's
// previous run (and at least a minute).
func (d *Dashboard) longRuns(ctx context.Context, now time.Time) ([]longRun, error) {
	return query(ctx, d.cfg.Pool, pgx.RowToStructByPos[longRun], "read long runs",
		`SELECT l.river_job_id, l.scheduled_job_id, s.name, l.job_class, l.start_time, s.last_run_duration, i.name
		FROM job_logs l LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		`+admin.RunIntegrationJoin+`
		WHERE l.status = 'processing' AND l.start_time IS NOT NULL
		  AND l.river_job_id IS NOT NULL
		  AND l.start_time < $1::timestamp - make_interval(secs => greatest(60, 2.0 * coalesce(s.last_run_duration, 0)))
		ORDER BY l.start_time LIMIT 20`, now)
}

func (d *Dashboard) nextFires(ctx context.Context, n int) ([]nextFire, error) {
	return query(ctx, d.cfg.Pool, pgx.RowToStructByPos[nextFire], "read next fire times", `SELECT id, name, job_class, next_run_at
		FROM scheduled_jobs WHERE next_run_at IS NOT NULL AND isfinite(next_run_at) AND is_active ORDER BY next_run_at, id LIMIT $1`, n)
}

// switches lists the pause switches in effect (platform.feature_flags).
func (d *Dashboard) switches(ctx context.Context) ([]string, error) {
	return scheduler.PauseSwitches(ctx, d.cfg.Pool)
}
