package licenses

import (
	"context"
	"time"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "license_expiry_check"

// New returns the license_expiry_check job class, which runs c.
//
// Parameters: warning_days (list of whole days, e.g. [30, 7, 1]); when
// absent, system_configs key licenses.expiry_warning_days for the license's
// module (scope 'module', scope_id = system_modules.id), else global, else
// [30, 7, 1].
func New(c Checker) workers.Class {
	return workers.Define(workers.Definition[[]int]{
		Name:    Name,
		Parse:   parseParams,
		Timeout: func([]int) time.Duration { return 30 * time.Minute },
		Run:     func(ctx context.Context, job workers.Job[[]int]) (any, error) { return c.Check(ctx, job.Params) },
	})
}
