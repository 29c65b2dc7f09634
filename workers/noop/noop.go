// Package noop is the `noop` job class: it does nothing and succeeds. Admins
// use it to check that scheduling, queueing and job_logs work end to end.
package noop

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "noop"

// New returns the noop class.
func New() workers.Class {
	return workers.Define(workers.Definition[workers.NoParameters]{
		Name:  Name,
		Parse: parse,
		Run: func(ctx context.Context, _ workers.Job[workers.NoParameters]) (any, error) {
			return nil, ctx.Err()
		},
	})
}

// parse accepts an empty object or nothing.
func parse(raw json.RawMessage) (workers.NoParameters, error) {
	var m map[string]json.RawMessage
	if len(raw) > 0 && string(raw) != "null" {
		if err := workers.CheckObject(Name, raw); err != nil {
			return workers.NoParameters{}, err
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return workers.NoParameters{}, fmt.Errorf("noop parameters are not JSON: %w", err)
		}
	}
	if len(m) > 0 {
		return workers.NoParameters{}, fmt.Errorf("noop takes no parameters, got %d", len(m))
	}
	return workers.NoParameters{}, nil
}
