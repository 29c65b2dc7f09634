// Package scheduler turns rows of scheduled_jobs into River jobs, exactly
// once per fire time whatever the number of replicas, and keeps job_logs and
// the rows' bookkeeping true.
//
// The Scheduler plans rows (computes next_run_at) and enqueues due ones; the
// Recorder, a River worker middleware, writes job_logs and bookkeeping around
// every attempt; the Reconciler repairs both after a crash.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivershared/startstop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Defaults of Config.
const (
	DefaultBatchSize    = 1000
	DefaultMisfireGrace = time.Minute
	DefaultPollInterval = 10 * time.Second
	DefaultPrepareAhead = 2 * time.Second
	DefaultRunAllCap    = 100
	failureBackoff      = 30 * time.Second
	// MaxPrepareAhead bounds PrepareAhead: a prepared row stays locked, and
	// the loop busy, that long before its instant.
	MaxPrepareAhead = 10 * time.Second
)

// NotifyChannel is the channel on which the triggers announce changes made
// by anyone but a daemon.
const NotifyChannel = "atis_scheduler"

// Config tunes the Scheduler. The zero value gives the defaults.
type Config struct {
	// BatchSize is the most due rows enqueued in one transaction (a few
	// set-based statements per batch). Defaults to 1000.
	BatchSize int

	// MisfireGrace is how late a tick may be enqueued and still count as on
	// time under misfire_policy 'skip'. Defaults to 1 minute.
	MisfireGrace time.Duration

	// PollInterval is the safety-net wake-up when no notification comes.
	// Defaults to 10 seconds.
	PollInterval time.Duration

	// PrepareAhead is how long before a due instant the runs due at it are
	// prepared: written in a transaction that is committed at the instant
	// (see prepare.go). Defaults to DefaultPrepareAhead; negative turns it
	// off (runs are then enqueued from the instant on).
	PrepareAhead time.Duration

	// Queue is the River queue runs go to. Defaults to River's default queue.
	Queue string

	// RunAllCap is the most missed ticks that misfire_policy 'run_all'
	// enqueues at once (the latest ones). Defaults to 100.
	RunAllCap int

	// Now is the clock. Defaults to time.Now.
	Now func() time.Time

	// Observer is told what is enqueued and skipped (metrics). Optional.
	Observer Observer

	// fault, in tests, fails the enqueue at a named step.
	fault func(step string) error
}

// validate reports the first field out of range, naming it.
func (c Config) validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 100_000:
		return fmt.Errorf("scheduler: BatchSize %d must be between 1 and 100000", c.BatchSize)
	case c.MisfireGrace < 0:
		return fmt.Errorf("scheduler: MisfireGrace %s must not be negative", c.MisfireGrace)
	case c.PollInterval <= 0:
		return fmt.Errorf("scheduler: PollInterval %s must be positive", c.PollInterval)
	case c.PrepareAhead > MaxPrepareAhead:
		return fmt.Errorf("scheduler: PrepareAhead %s must be at most %s", c.PrepareAhead, MaxPrepareAhead)
	case c.RunAllCap < 1 || c.RunAllCap > 10_000:
		return fmt.Errorf("scheduler: RunAllCap %d must be between 1 and 10000", c.RunAllCap)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.MisfireGrace = cmp.Or(c.MisfireGrace, DefaultMisfireGrace)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.PrepareAhead = cmp.Or(c.PrepareAhead, DefaultPrepareAhead)
	c.Queue = cmp.Or(c.Queue, river.QueueDefault)
	c.RunAllCap = cmp.Or(c.RunAllCap, DefaultRunAllCap)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

// Observer is told what the scheduler and the Recorder do, for metrics.
type Observer interface {
	// RunEnqueued: a run of class was enqueued lag after its due time.
	RunEnqueued(class string, lag time.Duration)
	// TicksSkipped: n ticks of class were not run; reason is overlap or misfire.
	TicksSkipped(class, reason string, n int)
	// RunStarted: a run's first attempt started lag after its due time.
	RunStarted(class string, lag time.Duration)
	// AttemptRetried: a failed attempt will be retried.
	AttemptRetried(class string)
	// RunFinished: a run ended with status; its last attempt took took.
	RunFinished(class, status string, took time.Duration)
}

type nopObserver struct{}

func (nopObserver) RunEnqueued(string, time.Duration)         {}
func (nopObserver) TicksSkipped(string, string, int)          {}
func (nopObserver) RunStarted(string, time.Duration)          {}
func (nopObserver) AttemptRetried(string)                     {}
func (nopObserver) RunFinished(string, string, time.Duration) {}

// Scheduler plans and enqueues the rows of scheduled_jobs.
type Scheduler struct {
	cfg      Config
	logger   *slog.Logger
	pool     *pgxpool.Pool
	registry *workers.Registry
	river    *river.Client[pgx.Tx]
	wake     chan struct{}

	startstop.BaseStartStop

	freshen *freshener

	mu        sync.Mutex
	backoff   map[int64]time.Time // rows whose enqueue failed, retried after
	lastCycle time.Time
	stats     Stats
}

// Stats counts what the scheduler did since it started.
type Stats struct {
	Enqueued, Skipped, Invalid, Failed int64
	// Cycles counts the loop's cycles (a cycle that prepared an instant's
	// runs counts once).
	Cycles int64
}

// New returns a Scheduler that enqueues into client.
func New(pool *pgxpool.Pool, client *river.Client[pgx.Tx], registry *workers.Registry, logger *slog.Logger, cfg Config) *Scheduler {
	s := &Scheduler{
		cfg: cfg.withDefaults(), logger: logger.With(slog.String("component", "scheduler")), pool: pool,
		registry: registry, river: client, wake: make(chan struct{}, 1), backoff: map[int64]time.Time{},
	}
	s.freshen = &freshener{pool: pool, logger: s.logger, now: s.cfg.Now}
	return s
}

// Start launches the scheduling loop and the notification listener; they
// run until ctx ends or Stop. Rows that were invalid are re-checked once at
// start, since this binary may know classes or settings that the previous
// one did not, and so are active rows left with no next_run_at and no
// reason (bookkeeping written by hand). Starting twice is a no-op.
func (s *Scheduler) Start(ctx context.Context) error {
	if err := s.cfg.validate(); err != nil {
		return err
	}
	ctx, shouldStart, started, stopped := s.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	if err := inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE scheduled_jobs SET needs_plan = true
			WHERE NOT needs_plan AND (schedule_error IS NOT NULL OR (is_active AND next_run_at IS NULL))`)
		return err
	}); err != nil {
		stopped()
		return fmt.Errorf("scheduler: re-check invalid rows: %w", err)
	}
	go func() {
		defer stopped()
		started()
		var wg sync.WaitGroup
		wg.Go(func() { s.listen(ctx) })
		wg.Go(func() { s.loop(ctx) })
		wg.Wait()
		s.freshen.refreshing.Wait() // an ANALYZE under way, cancelled with ctx, ends before the pool closes
	}()
	return nil
}

// Stats returns the counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// LastCycle is when the loop last completed a cycle, successful or not: a
// loop that stops cycling is wedged (the systemd watchdog watches this).
func (s *Scheduler) LastCycle() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCycle
}

// Wake makes the loop run a cycle now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		res, err := s.safeTick(ctx)
		if err == nil && ctx.Err() == nil && s.preparing(res) {
			// The next instant is near: prepare its runs and commit them at
			// it; then a cycle at once, for what was left and what is next.
			err = s.safePrepare(ctx, res.NextDue, res.paused)
			res = TickResult{More: true}
		}
		s.mu.Lock()
		s.lastCycle = time.Now() // the watchdog's wall clock, not the schedules' (cfg.Now)
		s.stats.Cycles++
		s.mu.Unlock()
		if ctx.Err() != nil { // a deliberate stop, not a failed cycle
			if err != nil {
				s.logger.Info("scheduling cycle stopped; its batch is left to the next cycle")
			}
			return
		}
		wait := s.wait(ctx, res, err)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// busyWait is how long the loop waits before it looks again at due rows
// that it could not claim: another replica, or an admin's open
// transaction, holds them.
const busyWait = 100 * time.Millisecond

// wait is how long the loop sleeps after a cycle that returned res and err
// (a notification wakes it earlier). When the next due time is near it
// wakes PrepareAhead before it, to prepare its runs.
func (s *Scheduler) wait(ctx context.Context, res TickResult, err error) time.Duration {
	switch {
	case err != nil:
		attrs := []any{slog.String("error", err.Error())}
		if p := (*panicError)(nil); errors.As(err, &p) {
			attrs = append(attrs, slog.String("stack", string(p.stack)))
		}
		s.logger.ErrorContext(ctx, "scheduling cycle failed", attrs...)
		return time.Second
	case res.More:
		return 0
	case res.NextDue.IsZero():
		return s.cfg.PollInterval
	}
	until := res.NextDue.Sub(s.cfg.Now())
	if until <= 0 && res.Fired == 0 {
		// Due, yet nothing was claimed: someone else holds the rows.
		return min(s.cfg.PollInterval, busyWait)
	}
	return min(s.cfg.PollInterval, max(0, until-s.cfg.PrepareAhead))
}

// preparing says whether the cycle that returned res should prepare the
// runs of the next due instant now.
func (s *Scheduler) preparing(res TickResult) bool {
	if s.cfg.PrepareAhead <= 0 || res.More || res.NextDue.IsZero() {
		return false
	}
	until := res.NextDue.Sub(s.cfg.Now())
	return until > 0 && until <= s.cfg.PrepareAhead
}

// safePrepare is prepare with a panic turned into its error.
func (s *Scheduler) safePrepare(ctx context.Context, at time.Time, paused []string) (err error) {
	ctx, span := tracer().Start(ctx, "atis.scheduler.prepare")
	var fired, enqueued int
	defer func() {
		span.SetAttributes(attribute.Int("atis.fired", fired), attribute.Int("atis.enqueued", enqueued))
		if err != nil {
			span.SetStatus(codes.Error, redact.Text(err.Error()))
		}
		span.End()
	}()
	defer recovered(&err)
	fired, enqueued, err = s.prepare(ctx, at, paused)
	return err
}

// safeTick is Tick with a panic turned into the cycle's error: a bug that
// one row reaches outside the per-row fallback costs a cycle, not the
// daemon.
func (s *Scheduler) safeTick(ctx context.Context) (res TickResult, err error) {
	ctx, span := tracer().Start(ctx, "atis.scheduler.cycle")
	defer func() {
		span.SetAttributes(attribute.Int("atis.planned", res.Planned), attribute.Int("atis.fired", res.Fired),
			attribute.Int("atis.enqueued", res.Enqueued), attribute.Bool("atis.more", res.More))
		if err != nil {
			span.SetStatus(codes.Error, redact.Text(err.Error()))
		}
		span.End()
	}()
	defer recovered(&err)
	return s.Tick(ctx)
}

// tracer starts the scheduling cycles' spans: OpenTelemetry's no-op unless
// the daemon installed a tracer provider (internal/tracing). Asked of the
// global provider each time, not kept: a tracer taken before the first
// provider is installed stays with that first one.
func tracer() trace.Tracer { return otel.Tracer("github.com/atis-edu/atis-scheduler/scheduler") }

// listen turns notifications into wake-ups, reconnecting after errors; the
// poll covers the gaps.
func (s *Scheduler) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.logger.WarnContext(ctx, "notification listener lost its connection; polling until it is back",
			slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Scheduler) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	s.Wake() // changes made while we were not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		s.Wake()
	}
}

// inDaemonTx runs fn in a transaction marked as the daemon's own, so that
// its writes to scheduled_jobs wake no one.
func inDaemonTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL atis.scheduler = 'on'"); err != nil {
			return err
		}
		return fn(tx)
	})
}
