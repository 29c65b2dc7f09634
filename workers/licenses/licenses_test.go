package licenses_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/workers/licenses"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type testBundle struct {
	pool        *pgxpool.Pool
	class       licenses.Checker
	lms, hr     int64 // system_modules ids
	institution int64
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.NewPool(t)
	b := &testBundle{pool: pool}
	ctx := context.Background()
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO system_modules (name, code) VALUES ('Learning', 'lms') RETURNING id`).Scan(&b.lms))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO system_modules (name, code) VALUES ('Human resources', 'hr') RETURNING id`).Scan(&b.hr))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO institutions DEFAULT VALUES RETURNING id`).Scan(&b.institution))
	b.class = licenses.Checker{Pool: pool, Now: func() time.Time { return now }}
	return b
}

// license inserts a license and returns its id; expiresIn nil means none.
func (b *testBundle) license(t *testing.T, status, module string, expiresIn *time.Duration, institution bool) int64 {
	t.Helper()
	var expires *time.Time
	if expiresIn != nil {
		e := now.Add(*expiresIn)
		expires = &e
	}
	var inst *int64
	if institution {
		inst = &b.institution
	}
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO licenses (license_key, module_code, institution_id,
			license_type, issued_at, expires_at, status)
		VALUES ('key-' || gen_random_uuid(), $1, $2, 'standard', '2026-01-01', $3, $4) RETURNING id`,
		module, inst, expires, status).Scan(&id))
	return id
}

func in(d time.Duration) *time.Duration { return &d }

const day = 24 * time.Hour

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return dbtest.Scalar[int](t, b.pool, sql, args...)
}

func TestExpiry(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	atBoundary := b.license(t, "active", "lms", in(0), true)
	justPast := b.license(t, "active", "lms", in(-time.Second), false)
	justBefore := b.license(t, "active", "lms", in(time.Second), true)

	res, err := b.class.Check(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 3, res.Checked)
	require.Equal(t, 2, res.Expired)
	require.Equal(t, map[string]int{"1": 1}, res.Warned)

	status := func(id int64) string {
		return dbtest.Scalar[string](t, b.pool, "SELECT status FROM licenses WHERE id = $1", id)
	}
	require.Equal(t, "expired", status(atBoundary), "expires_at = now is expired")
	require.Equal(t, "expired", status(justPast))
	require.Equal(t, "active", status(justBefore))

	var event, oldV, newV, tags string
	var inst *int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT event, old_values::text, new_values::text, tags::text, institution_id
		FROM audit_logs WHERE auditable_type = 'licenses' AND auditable_id = $1`, atBoundary).Scan(&event, &oldV, &newV, &tags, &inst))
	require.Equal(t, "license_expired", event)
	require.JSONEq(t, `{"status": "active"}`, oldV)
	require.JSONEq(t, `{"status": "expired"}`, newV)
	require.Contains(t, tags, "scheduler")
	require.Equal(t, b.institution, *inst)

	var title, msg, level, targets string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT title, message, level, target_institutions::text FROM system_notifications
		WHERE type = 'license_expired' AND message LIKE $1`, fmt.Sprintf("%%(#%d)%%", atBoundary)).Scan(&title, &msg, &level, &targets))
	require.Equal(t, "License expired: Learning (lms)", title)
	require.Equal(t, "danger", level)
	require.Contains(t, msg, fmt.Sprintf("institution #%d", b.institution))
	require.JSONEq(t, fmt.Sprintf("[%d]", b.institution), targets)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT message, target_institutions::text FROM system_notifications
		WHERE type = 'license_expired' AND message LIKE $1`, fmt.Sprintf("%%(#%d)%%", justPast)).Scan(&msg, &targets))
	require.Contains(t, msg, "the whole system")
	require.JSONEq(t, `[]`, targets)

	require.Equal(t, 3, b.count(t, "SELECT count(*) FROM licenses WHERE last_validation_date = $1", now))
}

func TestWarningThresholds(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	ids := map[string]int64{
		"29d": b.license(t, "active", "lms", in(29*day), true),
		"6d":  b.license(t, "active", "lms", in(6*day), true),
		"12h": b.license(t, "active", "lms", in(12*time.Hour), true),
		"40d": b.license(t, "active", "lms", in(40*day), true),
		"30d": b.license(t, "active", "lms", in(30*day), true), // exactly at the threshold
	}
	res, err := b.class.Check(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"30": 2, "7": 1, "1": 1}, res.Warned)

	warnedAt := func(id int64) []string {
		rows, err := b.pool.Query(ctx, `SELECT title FROM system_notifications WHERE type = 'license_expiring'
			AND message LIKE $1 ORDER BY id`, fmt.Sprintf("%%(#%d)%%", id))
		require.NoError(t, err)
		var titles []string
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			titles = append(titles, s)
		}
		return titles
	}
	// The time really left, not the threshold (it said "in 7 days" for six).
	require.Equal(t, []string{"License expires in 29 days: Learning (lms)"}, warnedAt(ids["29d"]))
	require.Equal(t, []string{"License expires in 6 days: Learning (lms)"}, warnedAt(ids["6d"]), "one notice for the most urgent threshold crossed")
	require.Equal(t, []string{"License expires in 12 hours: Learning (lms)"}, warnedAt(ids["12h"]))
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM license_expiry_warnings WHERE license_id = $1", ids["6d"]),
		"the 30-day threshold is recorded with the 7-day one")
	require.Empty(t, warnedAt(ids["40d"]))
	require.Equal(t, "warning", dbtest.Scalar[string](t, b.pool, "SELECT DISTINCT level FROM system_notifications"))

	// The 6-day license's 30-day threshold is covered: it is never sent later.
	res, err = b.class.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, res.Warned)
	require.Len(t, warnedAt(ids["6d"]), 1)
}

// TestAMonthOfRunsWarnsOnceEach runs the check every three hours for 32 days
// over a license that expires in 31 days: three warnings and one expiry,
// never a duplicate.
func TestAMonthOfRunsWarnsOnceEach(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	id := b.license(t, "active", "lms", in(31*day), true)
	clock := now
	class := licenses.Checker{Pool: b.pool, Now: func() time.Time { return clock }}
	for step := 0; step <= 32*8; step++ {
		clock = now.Add(time.Duration(step) * 3 * time.Hour)
		_, err := class.Check(ctx, nil)
		require.NoError(t, err)
	}
	require.Equal(t, 3, b.count(t, "SELECT count(*) FROM system_notifications WHERE type = 'license_expiring'"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM system_notifications WHERE type = 'license_expired'"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM audit_logs WHERE auditable_id = $1", id))
}

func TestConcurrentChecksProduceEachEventOnce(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	_, err := b.pool.Exec(ctx, `INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status)
		SELECT 'k' || i, 'lms', 'trial', '2026-01-01', $1::timestamp - make_interval(hours => i % 48) + CASE WHEN i % 5 = 0 THEN interval '3 days' ELSE interval '0' END, 'active'
		FROM generate_series(1, 300) i`, now)
	require.NoError(t, err)
	wantExpired := b.count(t, "SELECT count(*) FROM licenses WHERE expires_at <= $1", now)
	wantWarned := b.count(t, "SELECT count(*) FROM licenses WHERE expires_at > $1", now)
	require.Positive(t, wantExpired)
	require.Positive(t, wantWarned)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		class := licenses.Checker{Pool: dbtest.Pool(t, b.pool.Config().ConnString()), PageSize: 7, Now: func() time.Time { return now }}
		wg.Go(func() {
			_, err := class.Check(ctx, nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, wantExpired, b.count(t, "SELECT count(*) FROM audit_logs WHERE event = 'license_expired'"))
	require.Equal(t, wantExpired, b.count(t, "SELECT count(*) FROM system_notifications WHERE type = 'license_expired'"))
	require.Equal(t, wantWarned, b.count(t, "SELECT count(*) FROM system_notifications WHERE type = 'license_expiring'"))
	require.Equal(t, 300, b.count(t, "SELECT count(*) FROM licenses WHERE last_validation_date = $1", now))
}

func TestRenewalWarnsAgain(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	id := b.license(t, "active", "lms", in(5*day), true)
	_, err := b.class.Check(ctx, nil)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, "UPDATE licenses SET expires_at = expires_at + interval '60 days' WHERE id = $1", id)
	require.NoError(t, err)
	res, err := b.class.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, res.Warned, "65 days left: nothing to say")

	later := licenses.Checker{Pool: b.pool, Now: func() time.Time { return now.Add(40 * day) }} // 25 days left
	res, err = later.Check(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"30": 1}, res.Warned, "the new expiry date warns again")
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM system_notifications WHERE type = 'license_expiring'"))
}

func TestUntouchedLicenses(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	var others []int64
	for _, status := range []string{"revoked", "inactive", "expired"} {
		others = append(others, b.license(t, status, "lms", in(-day), true), b.license(t, status, "lms", in(2*day), true))
	}
	forever := b.license(t, "active", "lms", nil, true)
	res, err := b.class.Check(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, licenses.Result{Checked: 1, Warned: map[string]int{}}, res)
	for _, id := range others {
		require.Equal(t, 0, b.count(t, "SELECT count(*) FROM licenses WHERE id = $1 AND (last_validation_date IS NOT NULL OR status = 'active')", id))
	}
	require.Equal(t, "active", dbtest.Scalar[string](t, b.pool, "SELECT status FROM licenses WHERE id = $1", forever))
	require.Zero(t, b.count(t, "SELECT count(*) FROM system_notifications"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM audit_logs"))
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	tests := []struct {
		name    string
		configs []string // SQL value lists for (scope, scope_id, value); LMS = the lms module's id
		params  []int
		want    map[string]int // warnings for an lms and an hr license, both 5 days out
	}{
		{"Default", nil, nil, map[string]int{"7": 2}},
		{"Global", []string{`('global', NULL, '[10]')`}, nil, map[string]int{"10": 2}},
		{"ModuleOverGlobal", []string{`('global', NULL, '[10]')`, `('module', LMS, '[3]')`}, nil, map[string]int{"10": 1}},
		{"ParametersOverAll", []string{`('global', NULL, '[10]')`, `('module', LMS, '[3]')`}, []int{6}, map[string]int{"6": 2}},
		{"StringAndWrappedValues", []string{`('global', NULL, '"[12, 2]"')`, `('module', LMS, '{"value": [9]}')`}, nil, map[string]int{"12": 1, "9": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			for _, c := range tt.configs {
				_, err := b.pool.Exec(ctx, `INSERT INTO system_configs (config_key, scope, scope_id, config_value, data_type)
					SELECT 'licenses.expiry_warning_days', s, id::bigint, v::jsonb, 'array' FROM (VALUES `+strings.ReplaceAll(c, "LMS", fmt.Sprint(b.lms))+`) x(s, id, v)`)
				require.NoError(t, err)
			}
			b.license(t, "active", "lms", in(5*day), true)
			b.license(t, "active", "hr", in(5*day), true)
			res, err := b.class.Check(ctx, tt.params)
			require.NoError(t, err)
			require.Equal(t, tt.want, res.Warned)
		})
	}
}

func TestMalformedConfigIsAnErrorNotIgnored(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	_, err := b.pool.Exec(ctx, `INSERT INTO system_configs (config_key, scope, scope_id, config_value, data_type) VALUES
		('licenses.expiry_warning_days', 'global', NULL, '{"a": 1}', 'json'),
		('licenses.expiry_warning_days', 'module', $1, '[4]', 'array')`, b.hr)
	require.NoError(t, err)
	expired := b.license(t, "active", "lms", in(-day), true)
	b.license(t, "active", "lms", in(2*day), true)
	b.license(t, "active", "hr", in(2*day), true)

	h := schedtest.Start(t, b.pool, licenses.New(b.class))
	out := h.Run(t, "license_expiry_check", map[string]any{})
	require.Equal(t, "failed", out.Status)
	require.Equal(t, `malformed licenses.expiry_warning_days: system_configs licenses.expiry_warning_days (scope global): `+
		`expected a list of whole days such as [30, 7, 1], got {"a": 1}`, out.Error)
	var res licenses.Result
	require.NoError(t, json.Unmarshal(out.Result, &res))
	require.Equal(t, 3, res.Checked)
	require.Equal(t, 1, res.Expired, "expiries go on")
	require.Equal(t, map[string]int{"4": 1}, res.Warned, "the module with a good config is warned; the one under the bad global is not")
	require.Equal(t, "expired", dbtest.Scalar[string](t, b.pool, "SELECT status FROM licenses WHERE id = $1", expired))
}

func TestParametersAreChecked(t *testing.T) {
	t.Parallel()

	for params, want := range map[string]string{
		`{"warning_days": [30, 0]}`: "license_expiry_check parameters: warning_days: expected days between 1 and 3650, got 0 in [30, 0]",
		`{"warning_days": "soon"}`:  "license_expiry_check parameters: warning_days: expected a list of whole days such as [30, 7, 1], got soon",
		`{"days": [1]}`:             `license_expiry_check parameters: json: unknown field "days"`,
	} {
		require.EqualError(t, licenses.New(licenses.Checker{}).ValidateParameters(json.RawMessage(params)), want)
	}
	require.NoError(t, licenses.New(licenses.Checker{}).ValidateParameters(json.RawMessage(`{"warning_days": [14, 3]}`)))
	require.NoError(t, licenses.New(licenses.Checker{}).ValidateParameters(nil))
}

func TestDefaultScheduleExists(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	require.Equal(t, "5 * * * *", dbtest.Scalar[string](t, pool,
		"SELECT cron_expression FROM scheduled_jobs WHERE job_class = 'license_expiry_check'"))
}
