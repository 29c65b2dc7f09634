package tracing

import (
	"context"
	"encoding/json"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
)

// Attribute keys of our spans. A run's span carries the schedule it is a
// run of, the River job that is the run and the attempt; never parameters.
const (
	AttrScheduleName   = attribute.Key("atis.schedule.name")
	AttrScheduledJobID = attribute.Key("atis.scheduled_job_id")
	AttrRunID          = attribute.Key("atis.run_id")
	AttrAttempt        = attribute.Key("atis.attempt")
	AttrJobClass       = attribute.Key("atis.job_class")
)

// RiverMiddleware returns the middleware that traces River: otelriver's
// span per worked job (river.work/<class>) and per insert, with ours
// adding the schedule's name, the run id and the attempt to the job's
// span. They go first in river.Config.Middleware, so that the job span
// encloses the recorder's work too. Only for a daemon that traces: off,
// the daemon adds none.
func RiverMiddleware() []rivertype.Middleware {
	return []rivertype.Middleware{
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{EnableWorkSpanJobKindSuffix: true}),
		&runAttributes{},
	}
}

// runAttributes names the run on the span otelriver started.
type runAttributes struct{ river.MiddlewareDefaults }

// Work implements rivertype.WorkerMiddleware.
func (*runAttributes) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.SetAttributes(RunAttributes(job)...)
	}
	return doInner(ctx)
}

// RunAttributes describes the run that River job is: its schedule's name
// and id (when it is a schedule's run), run id, attempt and class.
func RunAttributes(job *rivertype.JobRow) []attribute.KeyValue {
	attrs := []attribute.KeyValue{AttrRunID.Int64(job.ID), AttrAttempt.Int(job.Attempt), AttrJobClass.String(job.Kind)}
	var meta runqueue.Metadata
	if json.Unmarshal(job.Metadata, &meta) == nil && meta.ScheduledJobName != "" {
		attrs = append(attrs, AttrScheduleName.String(meta.ScheduledJobName))
	}
	var args runqueue.Args
	if json.Unmarshal(job.EncodedArgs, &args) == nil && args.ScheduledJobID != 0 {
		attrs = append(attrs, AttrScheduledJobID.Int64(args.ScheduledJobID))
	}
	return attrs
}
