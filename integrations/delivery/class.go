package delivery

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Class is the `notification_dispatch` job class: it delivers new
// system_notifications rows to every enabled integration whose provider
// delivers (webhook, smtp), and retries the failed ones when due. A
// migration schedules it every minute. It takes no parameters.
type Class struct{ Dispatcher *Dispatcher }

// Args are the River args of a notification_dispatch run.
type Args struct{ workers.Args }

// Kind is the River job kind.
func (Args) Kind() string { return "notification_dispatch" }

// Name implements workers.Class.
func (Class) Name() string { return Args{}.Kind() }

// ValidateParameters accepts none.
func (Class) ValidateParameters(raw json.RawMessage) error {
	var p struct{}
	return workers.DecodeParameters("notification_dispatch", raw, &p)
}

// AddWorker implements workers.Class.
func (c Class) AddWorker(w *river.Workers) error {
	return river.AddWorkerSafely(w, &worker{d: c.Dispatcher})
}

type worker struct {
	river.WorkerDefaults[Args]
	d *Dispatcher
}

// Timeout leaves room for every integration's own timeout.
func (w *worker) Timeout(*river.Job[Args]) time.Duration { return 10 * time.Minute }

func (w *worker) Work(ctx context.Context, _ *river.Job[Args]) error {
	res, err := w.d.Run(ctx)
	workers.SetResult(ctx, res)
	return err
}
