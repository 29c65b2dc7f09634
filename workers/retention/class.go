package retention

import (
	"context"
	"time"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "log_retention"

// New returns the log_retention job class, which runs p.
//
// Parameters: tables (object: table name → days to keep; 0 keeps forever),
// batch_size (rows per batch, default 5000), budget_seconds (default 600),
// archive_dir (absolute path; default ATIS_ARCHIVE_DIR; empty: no archive).
func New(p Purger) workers.Class {
	return workers.Define(workers.Definition[Params]{
		Name:  Name,
		Parse: parseParams,
		// Room past the budget for the batch in flight.
		Timeout: func(params Params) time.Duration { return params.budget() + 5*time.Minute },
		Run:     func(ctx context.Context, job workers.Job[Params]) (any, error) { return p.Purge(ctx, job.Params) },
	})
}
