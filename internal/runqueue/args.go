// Package runqueue puts runs of job classes into River's queue together with
// their queued attempt-1 job_logs rows, and defines what every run carries:
// its Args and the Metadata the Recorder reads. Every run, scheduled,
// manual or dispatched, goes through Enqueue or EnqueueMany.
//
// It imports nothing else of this module but internal/redact (a leaf), so
// that any job class can enqueue runs without depending on the scheduler.
package runqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"time"

	"github.com/riverqueue/river"
)

// Args are the arguments River stores for every run, whatever its class.
type Args struct {
	// ExecutedBy is the user who asked for a manual run; nil for scheduled runs.
	ExecutedBy *int64 `json:"executed_by,omitempty"`

	// Parameters are the row's parameters, for the class to decode; with
	// ParametersRedacted, as the class's Redact shows them.
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
var ErrSecretsWithoutSchedule = errors.New("runqueue: the parameters hold secrets (kept out of the queue) but the run has no scheduled job to read them from at run time")

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

// Overlap policies (scheduled_jobs.overlap_policy): whether a run waits for
// another unfinished run of its schedule.
const (
	OverlapSkip     = "skip"
	OverlapAllow    = "allow"
	OverlapQueueOne = "queue_one"
)

// Metadata is what the Recorder needs about a run, stored in River's job
// metadata at enqueue time.
type Metadata struct {
	JobClass          string `json:"job_class"`
	OverlapPolicy     string `json:"overlap_policy,omitempty"`
	RetryDelaySeconds *int64 `json:"retry_delay_seconds,omitempty"`
	ScheduledJobName  string `json:"scheduled_job_name,omitempty"`
}
