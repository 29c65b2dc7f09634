// Package integrationdispatch is the `integration_dispatch` job class: it
// enqueues an integration_sync for every integration whose sync is due
// (integrations.Engine.Dispatch). A migration schedules it every minute.
package integrationdispatch

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/atis-edu/atis-scheduler/workers/integrationsync"
)

// Name is the class name.
const Name = "integration_dispatch"

// New returns the integration_dispatch class. It takes no parameters.
func New(engine *integrations.Engine) workers.Class {
	return workers.Define(workers.Definition[workers.NoParameters]{
		Name: Name,
		Run: func(ctx context.Context, _ workers.Job[workers.NoParameters]) (any, error) {
			return engine.Dispatch(ctx, time.Now(), EnqueueWith(river.ClientFromContext[pgx.Tx](ctx)))
		},
	})
}

// EnqueueWith returns how a dispatch puts a sync into client's queue: an
// integration_sync run of no schedule, three attempts a minute apart.
func EnqueueWith(client *river.Client[pgx.Tx]) integrations.EnqueueSync {
	return func(ctx context.Context, tx pgx.Tx, p integrations.SyncParams, now time.Time) error {
		params, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = runqueue.Enqueue(ctx, tx, client, runqueue.Run{
			Args:          workers.Args{Parameters: params, ScheduledFor: now.UTC()},
			Class:         integrationsync.Name,
			MaxAttempts:   3,
			OverlapPolicy: runqueue.OverlapAllow,
			RetryDelay:    time.Minute,
		})
		return err
	}
}
