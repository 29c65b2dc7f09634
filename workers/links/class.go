package links

import (
	"context"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "linked_record_cleanup"

// New returns the linked_record_cleanup job class, which runs c. It takes
// no parameters.
func New(c Cleaner) workers.Class {
	return workers.Define(workers.Definition[workers.NoParameters]{
		Name: Name,
		Run:  func(ctx context.Context, _ workers.Job[workers.NoParameters]) (any, error) { return c.Clean(ctx) },
	})
}
