package scheduler_test

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeExamples runs every SQL example of README.md and checks that the
// daemon accepts every row they leave.
func TestReadmeExamples(t *testing.T) {
	t.Parallel()

	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	require.NotEmpty(t, blocks)

	b := setup(t, setupOpts{})
	before := scalar[int64](t, b.pool, "SELECT coalesce(max(id), 0) FROM scheduled_jobs")
	for _, blk := range blocks {
		_, err := b.pool.Exec(context.Background(), blk[1])
		require.NoError(t, err, blk[1])
	}
	b.tick(t)
	require.Positive(t, scalar[int](t, b.pool, "SELECT count(*) FROM scheduled_jobs WHERE id > $1", before))
	require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM scheduled_jobs WHERE id > $1 AND schedule_error IS NOT NULL", before),
		scalar[string](t, b.pool, "SELECT coalesce(string_agg(name || ': ' || schedule_error, '; '), '') FROM scheduled_jobs WHERE id > $1", before))
}
