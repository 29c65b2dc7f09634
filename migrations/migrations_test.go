package migrations_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/migrations"
)

func TestUp(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("TwiceAppliesNothingTheSecondTime", func(t *testing.T) {
		t.Parallel()

		pool := dbtest.Pool(t, dbtest.NewEmptyURL(t))
		m := migrations.New(pool, dbtest.Logger())
		first, err := m.Up(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, first)
		second, err := m.Up(ctx)
		require.NoError(t, err)
		require.Empty(t, second)
		pending, err := m.Pending(ctx)
		require.NoError(t, err)
		require.Empty(t, pending)
	})

	t.Run("ConcurrentCallersApplyEachMigrationOnce", func(t *testing.T) {
		t.Parallel()

		url := dbtest.NewEmptyURL(t)
		const replicas = 4
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied = map[string]int{}
			errs    = make([]error, replicas)
		)
		for i := range replicas {
			// Each replica has its own pool, as separate processes would.
			m := migrations.New(dbtest.Pool(t, url), dbtest.Logger())
			wg.Go(func() {
				res, err := m.Up(ctx)
				errs[i] = err
				mu.Lock()
				defer mu.Unlock()
				for _, a := range res {
					applied[a.Component+"/"+a.Name]++
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		all, err := migrations.New(dbtest.Pool(t, url), dbtest.Logger()).Status(ctx)
		require.NoError(t, err)
		require.Len(t, applied, len(all))
		for name, n := range applied {
			require.Equal(t, 1, n, "%s applied %d times", name, n)
		}
	})

	t.Run("KeepsAnExistingATISDatabase", func(t *testing.T) {
		t.Parallel()

		// The Laravel app created its tables first: a richer users table, the
		// seed tables, and data in them.
		pool := dbtest.Pool(t, dbtest.NewEmptyURL(t))
		_, err := pool.Exec(ctx, `
			CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL);
			CREATE TABLE institutions (id BIGSERIAL PRIMARY KEY, name TEXT);
			CREATE SCHEMA auth; CREATE TABLE auth.users (id UUID PRIMARY KEY);
			CREATE SCHEMA platform;`)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, dbtest.SeedSQL(t, "db6-system-infrastructure.md")+dbtest.SeedSQL(t, "platform-tables.md"))
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `
			INSERT INTO users (email) VALUES ('admin@atis.az');
			INSERT INTO scheduled_jobs (name, job_class, interval_minutes) VALUES ('existing', 'noop', 5);`)
		require.NoError(t, err)

		m := migrations.New(pool, dbtest.Logger())
		_, err = m.Up(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Check(ctx))

		var email, job string
		require.NoError(t, pool.QueryRow(ctx, "SELECT email FROM users").Scan(&email))
		require.NoError(t, pool.QueryRow(ctx, "SELECT name FROM scheduled_jobs").Scan(&job))
		require.Equal(t, "admin@atis.az", email)
		require.Equal(t, "existing", job)
	})
}

// TestOlderBinaryOnNewerSchema is what a rollback relies on: a database that
// a newer binary migrated further (a version and a column this one does not
// know) is ready for this one, and migrate leaves it alone.
func TestOlderBinaryOnNewerSchema(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	_, err := pool.Exec(ctx, `INSERT INTO `+migrations.VersionTable+` (version_id, is_applied) VALUES (9999, true)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ALTER TABLE scheduled_jobs ADD COLUMN from_the_future TEXT`)
	require.NoError(t, err)
	m := migrations.New(pool, dbtest.Logger())
	require.NoError(t, m.Check(ctx))
	applied, err := m.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, applied)
}

func TestCheck(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("UnmigratedDatabaseNamesWhatIsMissing", func(t *testing.T) {
		t.Parallel()

		m := migrations.New(dbtest.Pool(t, dbtest.NewEmptyURL(t)), dbtest.Logger())
		err := m.Check(ctx)
		require.ErrorIs(t, err, migrations.ErrNotReady)
		msg := err.Error()
		require.NotContains(t, msg, "\n")
		require.Contains(t, msg, "missing tables: users, institutions")
		require.Contains(t, msg, "pending migrations: atis/00001_standins_and_schemas.sql")
		require.Contains(t, msg, "run `atis-scheduler migrate`")
	})

	t.Run("MigratedDatabaseIsReady", func(t *testing.T) {
		t.Parallel()

		require.NoError(t, migrations.New(dbtest.NewPool(t), dbtest.Logger()).Check(ctx))
	})

	t.Run("NamesAMissingColumn", func(t *testing.T) {
		t.Parallel()

		pool := dbtest.NewPool(t)
		_, err := pool.Exec(ctx, "ALTER TABLE scheduled_jobs DROP COLUMN retry_delay_minutes; ALTER TABLE platform.feature_flags DROP COLUMN key")
		require.NoError(t, err)
		err = migrations.New(pool, dbtest.Logger()).Check(ctx)
		require.ErrorIs(t, err, migrations.ErrNotReady)
		require.Contains(t, err.Error(), "missing columns: scheduled_jobs.retry_delay_minutes, platform.feature_flags.key")
	})

	t.Run("NamesAMissingTableAndRiverSchema", func(t *testing.T) {
		t.Parallel()

		pool := dbtest.NewPool(t)
		_, err := pool.Exec(ctx, "DROP TABLE job_logs; DROP TABLE river_job CASCADE")
		require.NoError(t, err)
		err = migrations.New(pool, dbtest.Logger()).Check(ctx)
		require.ErrorIs(t, err, migrations.ErrNotReady)
		require.Contains(t, err.Error(), "missing tables: job_logs")
		require.True(t, strings.Contains(err.Error(), "river_job"), err.Error())
	})
}
