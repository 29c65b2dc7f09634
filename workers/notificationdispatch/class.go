// Package notificationdispatch is the `notification_dispatch` job class: it
// delivers new system_notifications rows to every enabled integration whose
// provider delivers (webhook, smtp), and retries the failed ones when due
// (delivery.Dispatcher). A migration schedules it every minute.
package notificationdispatch

import (
	"context"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "notification_dispatch"

// New returns the notification_dispatch class. It takes no parameters.
func New(d *delivery.Dispatcher) workers.Class {
	return workers.Define(workers.Definition[workers.NoParameters]{
		Name: Name,
		// Room for every integration's own timeout.
		Timeout: func(workers.NoParameters) time.Duration { return 10 * time.Minute },
		Run: func(ctx context.Context, _ workers.Job[workers.NoParameters]) (any, error) {
			return d.Run(ctx)
		},
	})
}
