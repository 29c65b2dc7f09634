package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// panicError is a panic turned into an error, with the stack where it
// happened.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("internal error: %v", e.value) }

// logPanic, deferred, logs a panic of the calling function at ERROR and
// lets the caller return normally.
func (s *Scheduler) logPanic(ctx context.Context, what string) {
	if v := recover(); v != nil {
		s.logger.ErrorContext(ctx, what+" panicked", slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
	}
}

// recovered, deferred, turns a panic of the calling function into a
// *panicError in *err.
func recovered(err *error) {
	if v := recover(); v != nil {
		*err = &panicError{value: v, stack: debug.Stack()}
	}
}

// failed puts a row whose plan or enqueue failed (a database error: nothing
// an admin can fix on the row) aside for a while, so that the other rows go
// on. A failure caused by the daemon's own stop is no failure: the row is
// left as it was and nothing is logged.
func (s *Scheduler) failed(ctx context.Context, r row, step string, err error) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	s.backoff[r.ID] = s.cfg.Now().Add(failureBackoff)
	s.stats.Failed++
	s.mu.Unlock()
	s.logger.ErrorContext(ctx, step+" failed; retrying later", slog.Int64("scheduled_job_id", r.ID),
		slog.String("name", r.Name), slog.String("error", err.Error()), slog.Duration("retry_in", failureBackoff))
}

func (s *Scheduler) backoffIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	ids := []int64{}
	for id, until := range s.backoff {
		if now.Before(until) {
			ids = append(ids, id)
		} else {
			delete(s.backoff, id)
		}
	}
	return ids
}

func (s *Scheduler) nextBackoff() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, until := range s.backoff {
		if first.IsZero() || until.Before(first) {
			first = until
		}
	}
	return first
}

func (s *Scheduler) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Scheduler) fault(step string) error {
	if s.cfg.fault == nil {
		return nil
	}
	return s.cfg.fault(step)
}
