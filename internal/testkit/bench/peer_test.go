package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/noop"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/workers"
)

// defaults are the daemon's settings when nothing is set: both sides of
// every comparison run with them.
var defaults = config.Config{}.WithDefaults()

// cronParser reads the six-field cron expressions (with seconds) that the
// benchmarks give both sides.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// defaultRiverConfig is a River client's configuration with the daemon's
// default settings (workers, fetch cooldown, fetch poll, job timeout), as
// internal/daemon sets them; each side adds what it needs.
func defaultRiverConfig(w *river.Workers) *river.Config {
	return &river.Config{
		FetchCooldown:     defaults.FetchCooldown,
		FetchPollInterval: defaults.FetchPollInterval,
		JobTimeout:        defaults.JobTimeout,
		Logger:            dbtest.Logger(),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: defaults.Workers}},
		Workers:           w,
	}
}

// peer is a River client in this process running River's own periodic jobs
// (noop, one per cron expression) with the daemon's default worker count,
// fetch cooldown, fetch poll interval and pool size.
type peer struct {
	client *river.Client[pgx.Tx]
	url    string
}

// startPeer starts the peer on a fresh database; it is stopped when the
// benchmark ends.
func startPeer(b *testing.B, exprs []string) *peer {
	b.Helper()
	return startPeerOn(b, dbtest.NewURL(b), exprs)
}

// startPeerOn starts the peer on the database at url; it is stopped when
// the benchmark ends, or by stop.
func startPeerOn(b *testing.B, url string, exprs []string) *peer {
	b.Helper()
	pool := defaultPoolOn(b, url)
	periodic := make([]*river.PeriodicJob, len(exprs))
	for i, expr := range exprs {
		sched, err := cronParser.Parse("CRON_TZ=UTC " + expr)
		require.NoError(b, err, expr)
		periodic[i] = river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) { return workers.NewRunArgs(noop.Name, workers.Args{}), nil }, nil)
	}
	riverWorkers := river.NewWorkers()
	require.NoError(b, noop.New().AddWorker(riverWorkers))
	cfg := defaultRiverConfig(riverWorkers)
	cfg.PeriodicJobs = periodic
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	require.NoError(b, err)
	require.NoError(b, client.Start(context.Background()))
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = client.Stop(ctx)
	})
	return &peer{client: client, url: url}
}

// stop stops the peer's client, waiting up to a minute for its jobs.
func (p *peer) stop(b *testing.B) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(b, p.client.Stop(ctx))
}
