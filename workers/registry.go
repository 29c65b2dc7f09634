// Package workers holds the job classes the daemon runs and the registry that
// maps a scheduled_jobs.job_class to one of them.
//
// Each class is one River job kind. Every run carries the same Args (the
// schedule it came from, its parameters, its fire time); a class decodes its
// own parameters from Args.Parameters.
package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/riverqueue/river"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
)

// Args are the arguments River stores for every run, whatever its class:
// the schedule it came from, its parameters, its fire time.
type Args = runqueue.Args

// Redactor is implemented by classes whose parameters hold secrets: Redact
// returns the parameters as they may be shown in job_logs and logs.
type Redactor interface {
	Redact(params json.RawMessage) json.RawMessage
}

// Class is one job class the daemon can run.
type Class interface {
	// AddWorker registers the class's River worker.
	AddWorker(workers *river.Workers) error

	// Name is the class name, as written in scheduled_jobs.job_class and used
	// as River's job kind.
	Name() string

	// ValidateParameters checks a schedule's parameters before anything is
	// enqueued; its error is shown to admins as is.
	ValidateParameters(params json.RawMessage) error
}

// ReadyChecker is implemented by classes that can tell, without running,
// whether a run with given args could start now: its parameters resolved
// (settings read and decrypted) and what it needs present (integrations).
// Every class made by Define implements it with its Resolve, the step each
// attempt starts with.
type ReadyChecker interface {
	// Ready returns nil when a run with args could start now, a Permanent
	// error saying what an admin must fix, or another error when it could
	// not tell (the database unreachable).
	Ready(ctx context.Context, args Args) error
}

// Registry is the set of job classes of one daemon, with aliases (such as
// the Laravel app's App\Jobs\… class names) for some of them.
type Registry struct {
	aliases map[string]string
	classes map[string]Class
}

// NewRegistry returns a registry holding classes.
func NewRegistry(classes ...Class) (*Registry, error) {
	r := &Registry{aliases: map[string]string{}, classes: make(map[string]Class, len(classes))}
	for _, c := range classes {
		if c.Name() == "" {
			return nil, fmt.Errorf("workers: a job class has no name")
		}
		if _, dup := r.classes[c.Name()]; dup {
			return nil, fmt.Errorf("workers: job class %q registered twice", c.Name())
		}
		r.classes[c.Name()] = c
	}
	return r, nil
}

// AddAliases makes each key of aliases another name of the class it maps to.
func (r *Registry) AddAliases(aliases map[string]string) error {
	for alias, name := range aliases {
		if _, ok := r.classes[name]; !ok {
			return fmt.Errorf("job class alias %q names unknown class %q (known: %s)", alias, name, strings.Join(r.Names(), ", "))
		}
		if _, ok := r.classes[alias]; ok {
			return fmt.Errorf("job class alias %q is already a class name", alias)
		}
		r.aliases[alias] = name
	}
	return nil
}

// Lookup returns the class named name, or aliased by it.
func (r *Registry) Lookup(name string) (Class, bool) {
	if canonical, ok := r.aliases[name]; ok {
		name = canonical
	}
	c, ok := r.classes[name]
	return c, ok
}

// NamesFor lists name and every alias of the same class: the job_class
// values that mean that class.
func (r *Registry) NamesFor(name string) []string {
	if canonical, ok := r.aliases[name]; ok {
		name = canonical
	}
	out := []string{name}
	for alias, canonical := range r.aliases {
		if canonical == name {
			out = append(out, alias)
		}
	}
	slices.Sort(out[1:])
	return out
}

// Redact returns a class's parameters as they may be shown.
func (r *Registry) Redact(name string, params json.RawMessage) json.RawMessage {
	if c, ok := r.Lookup(name); ok {
		if red, ok := c.(Redactor); ok {
			return red.Redact(params)
		}
	}
	return params
}

// Ready checks that a run of class with args could start now (see
// ReadyChecker). An unknown class, or one that cannot tell, is nil here: the
// scheduler's own checks report the first.
func (r *Registry) Ready(ctx context.Context, class string, args Args) error {
	c, ok := r.Lookup(class)
	if !ok {
		return nil
	}
	if rc, ok := c.(ReadyChecker); ok {
		return rc.Ready(ctx, args)
	}
	return nil
}

// Names lists the registered class names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.classes))
	for n := range r.classes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// RiverWorkers returns a River worker bundle with every class's worker.
func (r *Registry) RiverWorkers() (*river.Workers, error) {
	w := river.NewWorkers()
	for _, name := range r.Names() {
		if err := r.classes[name].AddWorker(w); err != nil {
			return nil, fmt.Errorf("workers: add %s: %w", name, err)
		}
	}
	return w, nil
}
