package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Definition is a job class whose parameters read into P: everything a
// class says about itself, given once to Define.
type Definition[P any] struct {
	// Name is the class name: scheduled_jobs.job_class and River's job kind.
	// Required.
	Name string

	// Parse reads and checks a run's parameters; its error is shown to
	// admins as is. Defaults to DecodeParameters into P (unknown fields
	// refused).
	Parse func(raw json.RawMessage) (P, error)

	// Resolve returns the parameters one attempt runs with, when they are
	// not only the queued ones (secrets kept out of the queue and read from
	// the schedule, values read from settings), and checks what the run
	// needs beyond them (an integration that exists and is enabled). Its
	// error fails the attempt as is: wrap it in Permanent when an admin must
	// fix something and no retry helps. `jobs validate` calls it too (Ready),
	// so a schedule it passes does not fail here for the same reason; it
	// must therefore change nothing. Defaults to Parse of the queued
	// parameters.
	Resolve func(ctx context.Context, args Args) (P, error)

	// Run does one attempt. Its result, when not nil, is the run's
	// job_logs.result (counts, status codes: no secrets), failed or not.
	// Required.
	Run func(ctx context.Context, job Job[P]) (result any, err error)

	// Timeout bounds an attempt with these parameters. Defaults to the
	// client's job timeout (ATIS_JOB_TIMEOUT).
	Timeout func(p P) time.Duration

	// Redact returns parameters as they may be shown and queued, secrets
	// hidden. Defaults to showing them as they are.
	Redact func(raw json.RawMessage) json.RawMessage
}

// Job is one attempt of a run.
type Job[P any] struct {
	// Params are the attempt's parameters.
	Params P
	// Args are what the run carries: its schedule, its user, its fire time.
	Args Args
	// ID is the River job's id; Attempt counts from 1.
	ID      int64
	Attempt int
}

// Define returns the job class d describes.
func Define[P any](d Definition[P]) Class {
	if d.Parse == nil {
		d.Parse = func(raw json.RawMessage) (P, error) {
			var p P
			err := DecodeParameters(d.Name, raw, &p)
			return p, err
		}
	}
	resolves := d.Resolve != nil
	if d.Resolve == nil {
		d.Resolve = func(_ context.Context, args Args) (P, error) {
			p, err := d.Parse(args.Parameters)
			if err != nil {
				return p, Permanent(err)
			}
			return p, nil
		}
	}
	c := defined[P]{d: d, resolves: resolves}
	if d.Redact != nil {
		return redactingClass[P]{c}
	}
	return c
}

type defined[P any] struct {
	d        Definition[P]
	resolves bool // Resolve was given
}

// Name implements Class.
func (c defined[P]) Name() string { return c.d.Name }

// ValidateParameters implements Class.
func (c defined[P]) ValidateParameters(raw json.RawMessage) error {
	_, err := c.d.Parse(raw)
	return err
}

// Ready implements ReadyChecker: it resolves the parameters as an attempt
// would, and drops them.
func (c defined[P]) Ready(ctx context.Context, args Args) error {
	_, err := c.d.Resolve(ctx, args)
	return err
}

// AddWorker implements Class. River registers a worker by the Kind of its
// args type; every defined class shares one Go type, so the kind goes in a
// value (River's AddWorkerArgs, which panics on a second registration where
// the Safely form would return an error: recovered here into one).
func (c defined[P]) AddWorker(w *river.Workers) (err error) {
	if c.d.Run == nil {
		return fmt.Errorf("register %s: the class has no Run", c.d.Name)
	}
	if c.d.Redact != nil && !c.resolves {
		// Its queue carries redacted parameters: without a Resolve that
		// reads the real ones, it would run with [redacted] values.
		return fmt.Errorf("register %s: a class that redacts its parameters needs a Resolve that reads the real ones", c.d.Name)
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("register %s: %v", c.d.Name, v)
		}
	}()
	river.AddWorkerArgs(w, RunArgs{kind: c.d.Name}, c.worker())
	return nil
}

func (c defined[P]) worker() river.Worker[RunArgs] { return &definedWorker[P]{d: c.d} }

type redactingClass[P any] struct{ defined[P] }

// Redact implements Redactor.
func (c redactingClass[P]) Redact(raw json.RawMessage) json.RawMessage { return c.d.Redact(raw) }

// RunArgs are the River args of every defined class's worker; the kind is
// the class's name.
type RunArgs struct {
	Args
	kind string
}

// NewRunArgs returns the args of a run of class kind, for tests that work
// one job with rivertest (WorkerOf).
func NewRunArgs(kind string, a Args) RunArgs { return RunArgs{Args: a, kind: kind} }

// Kind is the River job kind.
func (a RunArgs) Kind() string { return a.kind }

// WorkerOf returns the River worker of a class made by Define, for tests
// that work one job with rivertest.
func WorkerOf(c Class) (river.Worker[RunArgs], bool) {
	d, ok := c.(interface{ worker() river.Worker[RunArgs] })
	if !ok {
		return nil, false
	}
	return d.worker(), true
}

type definedWorker[P any] struct {
	river.WorkerDefaults[RunArgs]
	d Definition[P]
}

func (w *definedWorker[P]) Timeout(job *river.Job[RunArgs]) time.Duration {
	if w.d.Timeout == nil {
		return 0
	}
	p, err := w.d.Parse(job.Args.Parameters)
	if err != nil {
		// Queued parameters may be redacted (a URL whose user info reads
		// [redacted] does not parse): their timeout still counts.
		var plain P
		if json.Unmarshal(job.Args.Parameters, &plain) != nil {
			return 0 // Work refuses the run
		}
		p = plain
	}
	return w.d.Timeout(p)
}

func (w *definedWorker[P]) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	p, err := w.d.Resolve(ctx, job.Args.Args)
	if err != nil {
		return err
	}
	res, err := w.d.Run(ctx, Job[P]{Params: p, Args: job.Args.Args, ID: job.ID, Attempt: job.Attempt})
	if res != nil {
		SetResult(ctx, res)
	}
	return err
}

// NoParameters is the parameter type of a class that takes none: an empty
// object, null or nothing.
type NoParameters struct{}
