package licenses_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/workers/licenses"
)

// BenchmarkCheck100k checks 100,000 active licenses (5 % past expiry, 10 %
// inside a warning window, the rest later or without an expiry date): the
// first run, which expires and warns, then a second, steady-state run.
//
//	make bench   (or: go test ./workers/licenses -run '^$' -bench Check100k -benchtime 1x)
func BenchmarkCheck100k(b *testing.B) {
	for b.Loop() {
		pool := dbtest.NewPool(b)
		ctx := context.Background()
		_, err := pool.Exec(ctx, `INSERT INTO system_modules (name, code) VALUES ('Learning', 'lms')`)
		require.NoError(b, err)
		_, err = pool.Exec(ctx, `INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status)
			SELECT 'k' || i, 'lms', 'standard', '2026-01-01',
				CASE WHEN i % 20 = 0 THEN $1::timestamp - interval '1 day'
				     WHEN i % 10 = 1 THEN $1::timestamp + make_interval(days => i % 30)
				     WHEN i % 10 = 2 THEN NULL
				     ELSE $1::timestamp + interval '400 days' END, 'active'
			FROM generate_series(1, 100000) i`, now)
		require.NoError(b, err)
		_, err = pool.Exec(ctx, "ANALYZE licenses")
		require.NoError(b, err)
		class := licenses.Checker{Pool: pool, Now: func() time.Time { return now }}

		start := time.Now()
		first, err := class.Check(ctx, nil)
		require.NoError(b, err)
		firstTook := time.Since(start)
		start = time.Now()
		second, err := class.Check(ctx, nil)
		require.NoError(b, err)
		secondTook := time.Since(start)

		b.ReportMetric(float64(first.Checked)/firstTook.Seconds(), "licenses/s_first")
		b.ReportMetric(float64(second.Checked)/secondTook.Seconds(), "licenses/s_steady")
		fmt.Printf("license check: first run %d licenses (%d expired, %v warned) in %s; steady-state run %d in %s\n",
			first.Checked, first.Expired, first.Warned, firstTook.Round(time.Millisecond), second.Checked, secondTook.Round(time.Millisecond))
	}
}
