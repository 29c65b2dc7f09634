package workers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/riverqueue/river"
)

// NoopClass is the `noop` job class: it does nothing and succeeds. Admins use
// it to check that scheduling, queueing and job_logs work end to end.
type NoopClass struct{}

// NoopArgs are the River args of a noop run.
type NoopArgs struct{ Args }

// Kind is the River job kind.
func (NoopArgs) Kind() string { return "noop" }

// Name implements Class.
func (NoopClass) Name() string { return NoopArgs{}.Kind() }

// ValidateParameters accepts an empty object or nothing.
func (NoopClass) ValidateParameters(params json.RawMessage) error {
	var m map[string]json.RawMessage
	if len(params) > 0 && string(params) != "null" {
		if err := json.Unmarshal(params, &m); err != nil {
			return fmt.Errorf("parameters must be a JSON object: %w", err)
		}
	}
	if len(m) > 0 {
		return fmt.Errorf("noop takes no parameters, got %d", len(m))
	}
	return nil
}

// AddWorker implements Class.
func (NoopClass) AddWorker(w *river.Workers) error { return river.AddWorkerSafely(w, &noopWorker{}) }

type noopWorker struct {
	river.WorkerDefaults[NoopArgs]
}

func (*noopWorker) Work(ctx context.Context, _ *river.Job[NoopArgs]) error { return ctx.Err() }
