// Package workers holds the job classes the daemon runs and the registry that
// maps a scheduled_jobs.job_class to one of them.
//
// Each class is one River job kind. Every run carries the same Args (the
// schedule it came from, its parameters, its fire time); a class decodes its
// own parameters from Args.Parameters.
package workers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
)

// Args are the arguments River stores for every run, whatever its class.
type Args struct {
	// ExecutedBy is the user who asked for a manual run; nil for scheduled runs.
	ExecutedBy *int64 `json:"executed_by,omitempty"`

	// Parameters are the row's parameters, for the class to decode; with
	// ParametersRedacted, as Redact shows them.
	Parameters json.RawMessage `json:"parameters,omitempty"`

	// ParametersRedacted says that Parameters hide secrets: the class reads
	// the real ones at run time from the scheduled_jobs row.
	ParametersRedacted bool `json:"parameters_redacted,omitempty"`

	// ScheduledFor is the fire time this run is for.
	ScheduledFor time.Time `json:"scheduled_for"`

	// ScheduledJobID is the scheduled_jobs row; 0 for runs not from a schedule.
	ScheduledJobID int64 `json:"scheduled_job_id,omitempty"`
}

// ErrSecretsWithoutSchedule is returned for a run whose parameters hold
// secrets but that has no schedule to read them from at run time.
var ErrSecretsWithoutSchedule = errors.New("workers: the parameters hold secrets (kept out of the queue) but the run has no scheduled job to read them from at run time")

// WithRedacted returns a as River may store it: with redacted, the
// parameters as Redact shows them, in place of Parameters when the two
// differ, and ParametersRedacted set. Secrets never reach the queue that
// way: River's tables, its tools and job_logs show only what redacted does.
func (a Args) WithRedacted(redacted json.RawMessage) (Args, error) {
	if redacted == nil || sameJSON(a.Parameters, redacted) {
		return a, nil
	}
	if a.ScheduledJobID == 0 {
		return a, ErrSecretsWithoutSchedule
	}
	a.Parameters, a.ParametersRedacted = redacted, true
	return a, nil
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// InsertArgs returns River job args of class kind carrying a, for inserting.
// The worker side decodes the same JSON into the class's own args type.
func InsertArgs(kind string, a Args) river.JobArgs { return insertArgs{Args: a, kind: kind} }

type insertArgs struct {
	Args
	kind string
}

func (a insertArgs) Kind() string { return a.kind }

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
