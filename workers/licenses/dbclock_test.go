package licenses_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/workers/licenses"
)

// TestBakuClockedExpiry: with ATIS_DB_TIMEZONE=Asia/Baku, a license the web
// app says expires at 10:00 (Baku wall time) expires at 06:00 UTC, not four
// hours later.
func TestBakuClockedExpiry(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	baku, err := time.LoadLocation("Asia/Baku")
	require.NoError(t, err)
	url := dbtest.NewURL(t)
	pool := dbtest.PoolWith(t, url, database.Options{TimeZone: baku})
	_, err = pool.Exec(ctx, `INSERT INTO system_modules (name, code) VALUES ('Learning', 'lms')`)
	require.NoError(t, err)
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status)
		VALUES ('key-baku', 'lms', 'standard', '2026-01-01', '2026-06-01 10:00:00', 'active') RETURNING id`).Scan(&id))
	check := func(at string) string {
		now, err := time.Parse(time.RFC3339, at)
		require.NoError(t, err)
		_, err = licenses.Checker{Pool: pool, Now: func() time.Time { return now }}.Check(ctx, []int{})
		require.NoError(t, err)
		return dbtest.Scalar[string](t, pool, "SELECT status FROM licenses WHERE id = $1", id)
	}
	require.Equal(t, "active", check("2026-06-01T05:59:59Z"), "09:59:59 in Baku")
	require.Equal(t, "expired", check("2026-06-01T06:00:01Z"), "10:00:01 in Baku")
	// Texts that reach people carry the real zone (it said "10:00 UTC").
	require.Contains(t, dbtest.Scalar[string](t, pool, "SELECT message FROM system_notifications WHERE type = 'license_expired'"),
		"expired on 2026-06-01 10:00 +04 (Asia/Baku).")
}
