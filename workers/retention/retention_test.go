package retention_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/workers/retention"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func ago(days int) time.Time { return now.Add(-time.Duration(days) * 24 * time.Hour) }

type bundle struct {
	pool  *pgxpool.Pool
	class retention.Purger
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := dbtest.NewPool(t)
	return &bundle{pool: pool, class: retention.Purger{Pool: pool, Now: func() time.Time { return now }}}
}

func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return dbtest.Scalar[int](t, b.pool, sql, args...)
}

// labels lists the description/message/etc. labels left in a table, sorted.
func (b *bundle) labels(t *testing.T, sql string) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), sql+" ORDER BY 1")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

func all30() map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for _, tgt := range retention.Targets {
		m[tgt.Name] = json.RawMessage("30")
	}
	return m
}

// TestEachTableRule plants, in every table, rows that must go and rows that
// must stay (young ones, and old ones a rule protects), and purges with 30
// days everywhere.
func TestEachTableRule(t *testing.T) {
	t.Parallel()

	b := setup(t)
	old, young := ago(40), ago(10)
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', 'old', $1), ('x', 'young', $2)`, old, young)
	b.exec(t, `INSERT INTO audit_logs (event, url, created_at) VALUES ('x', 'old', $1), ('x', 'young', $2)`, old, young)
	b.exec(t, `INSERT INTO security_events (event_type, severity, description, resolution, created_at) VALUES
		('x', 'info', 'old resolved', 'resolved', $1), ('x', 'info', 'old open', NULL, $1), ('x', 'info', 'young resolved', 'resolved', $2)`, old, young)
	b.exec(t, `INSERT INTO system_errors (error_type, message, status, created_at) VALUES
		('x', 'old resolved', 'resolved', $1), ('x', 'old ignored', 'ignored', $1), ('x', 'old open', 'open', $1),
		('x', 'old investigating', 'investigating', $1), ('x', 'young resolved', 'resolved', $2)`, old, young)
	b.exec(t, `INSERT INTO performance_metrics (metric_type, name, value, unit, timestamp) VALUES ('x', 'old', 1, 'ms', $1), ('x', 'young', 1, 'ms', $2)`, old, young)
	b.exec(t, `INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, error_message, created_at) VALUES
		('1', 1, 'noop', 1, 'completed', 'old completed', $1),
		('2', 2, 'noop', 1, 'failed', 'old attempt of a run still retrying', $1), ('2', 2, 'noop', 2, 'queued', 'old queued retry', $1),
		('3', 3, 'noop', 1, 'processing', 'old processing', $1),
		('laravel-uuid', NULL, 'App\Jobs\X', 1, 'completed', 'old web app row', $1),
		('4', 4, 'noop', 1, 'completed', 'young completed', $2)`, old, young)
	b.exec(t, `INSERT INTO integrations (id, name, integration_type, provider) VALUES (1, 'lms', 'lms', 'http_json')`)
	b.exec(t, `INSERT INTO integration_sync_logs (integration_id, sync_type, status, error_message, start_time) VALUES
		(1, 'full', 'completed', 'old completed', $1), (1, 'full', 'running', 'old running', $1), (1, 'full', 'failed', 'young failed', $2)`, old, young)
	b.exec(t, `INSERT INTO system_notifications (id, type, title, message, start_at, end_at) VALUES
		(1, 'x', 'ended long ago', 'm', $1::timestamp - interval '1 day', $1), (2, 'x', 'ended lately', 'm', $2::timestamp - interval '1 day', $2),
		(3, 'x', 'never ends', 'm', $1, NULL)`, old, young)
	b.exec(t, `INSERT INTO users (id) VALUES (1), (2)`)
	b.exec(t, `INSERT INTO system_notification_reads (notification_id, user_id) VALUES (1, 1), (2, 1), (3, 2)`)
	b.exec(t, `INSERT INTO platform.activity_logs (event_type, occurred_at, event_details) VALUES ('old', $1, '{}'), ('young', $2, '{}')`, old, young)
	b.exec(t, `INSERT INTO platform.audit_logs (action, resource, notes, performed_at) VALUES ('x', 'r', 'old', $1), ('x', 'r', 'young', $2)`, old, young)
	b.exec(t, `INSERT INTO integration_records (integration_id, external_id, payload, payload_hash, deleted_at) VALUES
		(1, 'deleted long ago', '{}', 'h', $1), (1, 'deleted lately', '{}', 'h', $2), (1, 'alive', '{}', 'h', NULL)`, old, young)

	res, err := b.class.Purge(context.Background(), retention.Params{Tables: all30()})
	require.NoError(t, err)

	require.Equal(t, []string{"young"}, b.labels(t, "SELECT description FROM activity_logs"))
	require.Equal(t, []string{"young"}, b.labels(t, "SELECT url FROM audit_logs WHERE event = 'x'"))
	require.Equal(t, []string{"old open", "young resolved"}, b.labels(t, "SELECT description FROM security_events"))
	require.Equal(t, []string{"old investigating", "old open", "young resolved"}, b.labels(t, "SELECT message FROM system_errors"))
	require.Equal(t, []string{"young"}, b.labels(t, "SELECT name FROM performance_metrics"))
	require.Equal(t, []string{"old attempt of a run still retrying", "old processing", "old queued retry", "young completed"},
		b.labels(t, "SELECT error_message FROM job_logs"))
	require.Equal(t, []string{"old running", "young failed"}, b.labels(t, "SELECT error_message FROM integration_sync_logs"))
	require.Equal(t, []string{"ended lately", "never ends"}, b.labels(t, "SELECT title FROM system_notifications"))
	require.Equal(t, []string{"2", "3"}, b.labels(t, "SELECT notification_id::text FROM system_notification_reads"))
	require.Equal(t, []string{"young"}, b.labels(t, "SELECT event_type FROM platform.activity_logs"))
	require.Equal(t, []string{"young"}, b.labels(t, "SELECT notes FROM platform.audit_logs"))

	require.Equal(t, []string{"alive", "deleted lately"}, b.labels(t, "SELECT external_id FROM integration_records"))
	require.Empty(t, res.Missing)
	require.Equal(t, int64(2), res.Tables["job_logs"].Deleted, "the old completed run and the web app's row; nothing unfinished")
	// One audit row per purged table.
	require.Equal(t, 12, b.count(t, "SELECT count(*) FROM audit_logs WHERE event = 'retention_purge'"))
	var values map[string]any
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT new_values FROM audit_logs WHERE event = 'retention_purge' AND auditable_type = 'system_errors'").Scan(&values))
	require.Equal(t, "system_errors", values["table"])
	require.Equal(t, float64(2), values["rows_deleted"])
	require.Equal(t, float64(30), values["days"])
	require.Equal(t, ago(30).Format(time.RFC3339), values["cutoff"])
}

func TestMissingTableIsNotedNotAnError(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.exec(t, `DROP TABLE integration_records`)
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', 'old', $1)`, ago(5000))
	res, err := b.class.Purge(context.Background(), retention.Params{})
	require.NoError(t, err)
	require.Equal(t, []string{"integration_records"}, res.Missing)
	require.Zero(t, b.count(t, "SELECT count(*) FROM activity_logs"), "the other tables are purged")
}

func TestDefaults(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.exec(t, `INSERT INTO audit_logs (event, url, created_at) VALUES ('x', '2 years', $1), ('x', '8 years', $2)`, ago(730), ago(2920))
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', '200 days', $1), ('x', '400 days', $2)`, ago(200), ago(400))
	res, err := b.class.Purge(context.Background(), retention.Params{})
	require.NoError(t, err)
	require.Equal(t, []string{"2 years"}, b.labels(t, "SELECT url FROM audit_logs WHERE event = 'x'"), "audit logs: years, not months")
	require.Equal(t, []string{"200 days"}, b.labels(t, "SELECT description FROM activity_logs"))
	require.Equal(t, "default", res.Tables["audit_logs"].Source)
	require.Equal(t, 2555, res.Tables["audit_logs"].Days)
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	tests := []struct {
		name       string
		params     map[string]json.RawMessage
		config     string // system_configs value, or ""
		setting    string // platform.global_settings value, or ""
		wantKept   []string
		wantSource string
	}{
		{"Default", nil, "", "", []string{"100", "20", "50"}, "default"},
		{"GlobalSettings", nil, "", "60", []string{"20", "50"}, "global_settings"},
		{"SystemConfigsOverSettings", nil, `"40"`, "60", []string{"20"}, "system_configs"},
		{"ParametersOverAll", map[string]json.RawMessage{"activity_logs": json.RawMessage("10")}, "40", "60", nil, "parameters"},
		{"WrappedValue", nil, `{"value": 70}`, "", []string{"20", "50"}, "system_configs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', '20', $1), ('x', '50', $2), ('x', '100', $3)`,
				ago(20), ago(50), ago(100))
			if tt.config != "" {
				b.exec(t, `INSERT INTO system_configs (config_key, config_value, scope, data_type) VALUES ('retention.activity_logs.days', $1, 'global', 'integer')`, tt.config)
			}
			if tt.setting != "" {
				b.exec(t, `INSERT INTO platform.global_settings (key, value) VALUES ('retention.activity_logs.days', $1)`, tt.setting)
			}
			res, err := b.class.Purge(context.Background(), retention.Params{Tables: tt.params})
			require.NoError(t, err)
			require.Equal(t, tt.wantKept, b.labels(t, "SELECT description FROM activity_logs"))
			require.Equal(t, tt.wantSource, res.Tables["activity_logs"].Source)
		})
	}

	t.Run("ZeroKeepsForever", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', 'ancient', $1)`, ago(5000))
		b.exec(t, `INSERT INTO system_configs (config_key, config_value, scope, data_type) VALUES ('retention.activity_logs.days', '0', 'global', 'integer')`)
		res, err := b.class.Purge(ctx, retention.Params{})
		require.NoError(t, err)
		require.Contains(t, res.KeptForever, "activity_logs")
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM activity_logs"))
	})

	t.Run("MalformedValueIsAClearErrorAndOthersGoOn", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', 'old', $1)`, ago(5000))
		b.exec(t, `INSERT INTO performance_metrics (metric_type, name, value, unit, timestamp) VALUES ('x', 'old', 1, 'ms', $1)`, ago(5000))
		b.exec(t, `INSERT INTO platform.global_settings (key, value) VALUES ('retention.activity_logs.days', '"a year"')`)
		_, err := b.class.Purge(ctx, retention.Params{})
		require.EqualError(t, err, `platform.global_settings retention.activity_logs.days: expected whole days to keep (0 keeps forever), got "a year"; activity_logs was not purged`)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM activity_logs"))
		require.Zero(t, b.count(t, "SELECT count(*) FROM performance_metrics"))
	})
}

func TestParametersAreChecked(t *testing.T) {
	t.Parallel()

	for params, want := range map[string]string{
		`{"tables": {"students": 30}}`:       `log_retention parameters: tables: "students" is not a table retention knows`,
		`{"tables": {"job_logs": -1}}`:       `log_retention parameters: tables.job_logs: expected whole days to keep (0 keeps forever), got -1`,
		`{"batch_size": 0.5}`:                `log_retention parameters: "batch_size" must be a whole number`,
		`{"archive_dir": "relative/path"}`:   `log_retention parameters: archive_dir "relative/path" must be an absolute path`,
		`{"budget_seconds": -5}`:             `log_retention parameters: budget_seconds -5 must not be negative`,
		`{"tables": {"audit_logs": "many"}}`: `log_retention parameters: tables.audit_logs: expected whole days`,
	} {
		require.ErrorContains(t, retention.New(retention.Purger{}).ValidateParameters(json.RawMessage(params)), want, params)
	}
	require.NoError(t, retention.New(retention.Purger{}).ValidateParameters(json.RawMessage(`{"tables": {"platform.audit_logs": 3650}, "batch_size": 1000}`)))
}

func TestArchiveThenDelete(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, entity_id, created_at)
		SELECT 'x', 'row ' || i, i, $1 FROM generate_series(1, 1200) i`, ago(400))
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', 'young', $1)`, ago(1))
	dir := t.TempDir()
	res, err := b.class.Purge(ctx, retention.Params{ArchiveDir: dir, BatchSize: 100})
	require.NoError(t, err)
	tr := res.Tables["activity_logs"]
	require.Equal(t, int64(1200), tr.Deleted)
	require.Greater(t, tr.Batches, 1)
	require.FileExists(t, tr.ArchiveFile)
	require.Equal(t, filepath.Join(dir, "activity_logs"), filepath.Dir(tr.ArchiveFile))

	// Every deleted row is in the archive, as JSON lines of the row.
	f, err := os.Open(tr.ArchiveFile)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f) // reads the per-batch members one after another
	require.NoError(t, err)
	seen := map[int64]bool{}
	sc := bufio.NewScanner(gz)
	for sc.Scan() {
		var row struct {
			EntityID    int64  `json:"entity_id"`
			Description string `json:"description"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		seen[row.EntityID] = true
	}
	require.NoError(t, sc.Err())
	require.Len(t, seen, 1200)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM activity_logs"))
	require.Equal(t, tr.ArchiveFile, dbtest.Scalar[string](t, b.pool,
		"SELECT new_values->>'archive_file' FROM audit_logs WHERE event = 'retention_purge' AND auditable_type = 'activity_logs'"))
}

func TestFailingArchiveDeletesNothing(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) SELECT 'x', 'old', $1 FROM generate_series(1, 50)`, ago(400))
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	_, err := b.class.Purge(context.Background(), retention.Params{ArchiveDir: filepath.Join(blocker, "archive")})
	require.ErrorContains(t, err, "purge activity_logs: archive:")
	require.Equal(t, 50, b.count(t, "SELECT count(*) FROM activity_logs"), "a batch whose archive failed is not deleted")
	require.Zero(t, b.count(t, "SELECT count(*) FROM audit_logs WHERE event = 'retention_purge'"))
}

func TestBudgetStopsAndNextRunContinues(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) SELECT 'x', repeat('z', 100), $1 FROM generate_series(1, 5000)`, ago(400))
	p := retention.WithBudget(retention.Params{BatchSize: 10}, time.Nanosecond) // one batch a run
	res, err := b.class.Purge(ctx, p)
	require.NoError(t, err)
	require.True(t, res.BudgetExhausted)
	first := res.Tables["activity_logs"].Deleted
	require.Positive(t, first)
	require.Less(t, first, int64(5000))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM retention_progress WHERE table_name = 'activity_logs' AND next_block > 0"))

	// Each later run continues where the last stopped; the pass completes.
	runs := 1
	for b.count(t, "SELECT count(*) FROM activity_logs") > 0 {
		res, err = b.class.Purge(ctx, p)
		require.NoError(t, err)
		runs++
		require.Less(t, runs, 500, "no progress")
	}
	require.Greater(t, runs, 2)
	require.Zero(t, b.count(t, "SELECT count(*) FROM retention_progress WHERE table_name = 'activity_logs'"), "a finished pass forgets its place")
}

// TestConcurrentInsertsDuringPurge: the web app keeps writing while a purge
// runs; every insert succeeds and no young row is lost.
func TestConcurrentInsertsDuringPurge(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) SELECT 'x', 'old', $1 FROM generate_series(1, 50000)`, ago(400))
	writer := dbtest.Pool(t, b.pool.Config().ConnString())
	var inserted atomic.Int64
	var slowest atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			began := time.Now()
			_, err := writer.Exec(ctx, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', 'young', $1)`, now)
			if err != nil {
				t.Errorf("insert during purge: %v", err)
				return
			}
			if d := time.Since(began).Microseconds(); d > slowest.Load() {
				slowest.Store(d)
			}
			inserted.Add(1)
		}
	})
	res, err := b.class.Purge(ctx, retention.Params{BatchSize: 1000})
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, int64(50000), res.Tables["activity_logs"].Deleted)
	require.Positive(t, inserted.Load())
	require.Equal(t, int(inserted.Load()), b.count(t, "SELECT count(*) FROM activity_logs WHERE description = 'young'"))
	require.Less(t, time.Duration(slowest.Load())*time.Microsecond, 2*time.Second, "no insert waited on the purge")
}

// TestThroughTheScheduler runs log_retention as a job: the result lands in
// job_logs.
func TestThroughTheScheduler(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.exec(t, `INSERT INTO performance_metrics (metric_type, name, value, unit, timestamp) VALUES ('x', 'old', 1, 'ms', $1)`, ago(400))
	h := schedtest.Start(t, b.pool, retention.New(retention.Purger{Pool: b.pool}))
	out := h.Run(t, "log_retention", map[string]any{"tables": map[string]int{"performance_metrics": 30}})
	require.Equal(t, "completed", out.Status, out.Error)
	var res retention.Result
	require.NoError(t, json.Unmarshal(out.Result, &res))
	require.Equal(t, int64(1), res.Tables["performance_metrics"].Deleted)
}
