package scheduler

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/advisorylock"
)

// The starts of guarded runs (overlap_policy skip or queue_one) claim their
// schedules in scheduler_run_claims. While the Recorder is started, the
// claims of runs starting together go to the database in one round trip:
// claimLoop takes whatever requests are waiting, answers them with one
// batch, and meanwhile the next requests gather (a group commit). A hundred
// workers fetched together once made a hundred round trips through twenty
// connections before any of them could work.

// maxClaimBatch bounds the requests answered by one batch.
const maxClaimBatch = 500

// claimRequest asks for a schedule's claim for one run.
type claimRequest struct {
	scheduledJobID, jobID int64
	attempt               int
	reply                 chan claimReply // buffered: the loop never waits on it; nil when claimed directly
}

type claimReply struct {
	busy bool
	err  error
}

// begin checks, for a guarded run, whether another run of the schedule is
// being worked; if so it changes nothing and reports busy; if not, it claims
// the schedule for this attempt. The attempt's job_logs row turns processing
// through the buffer, as any run's does.
func (rec *Recorder) begin(ctx context.Context, r run) (busy bool, err error) {
	req := claimRequest{scheduledJobID: r.args.ScheduledJobID, jobID: r.job.ID, attempt: r.job.Attempt}
	rec.mu.RLock()
	if !rec.open {
		rec.mu.RUnlock()
		busy, err := rec.claim(ctx, []claimRequest{req})
		return busy[req.jobID], err
	}
	req.reply = make(chan claimReply, 1)
	rec.claims <- req
	rec.mu.RUnlock()
	select {
	case rep := <-req.reply:
		return rep.busy, rep.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// claimLoop answers claim requests in batches until ctx ends; then, the
// Recorder closed to new requests, it answers those still waiting.
func (rec *Recorder) claimLoop(ctx context.Context) {
	wctx := context.WithoutCancel(ctx)
	for {
		select {
		case req := <-rec.claims:
			batch := []claimRequest{req}
		gather:
			for len(batch) < maxClaimBatch {
				select {
				case req := <-rec.claims:
					batch = append(batch, req)
				default:
					break gather
				}
			}
			rec.answer(wctx, batch)
		case <-ctx.Done():
			for {
				select {
				case req := <-rec.claims:
					rec.answer(wctx, []claimRequest{req})
				default:
					return
				}
			}
		}
	}
}

// answer claims the schedules of reqs and replies to each.
func (rec *Recorder) answer(ctx context.Context, reqs []claimRequest) {
	busy, err := rec.claim(ctx, reqs)
	for _, req := range reqs {
		req.reply <- claimReply{busy: busy[req.jobID], err: err}
	}
}

// claim claims the schedules of reqs, bounded by recordTimeout.
func (rec *Recorder) claim(ctx context.Context, reqs []claimRequest) (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	return claimSchedules(ctx, rec.pool, reqs)
}

type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// claimSchedules claims, for each request, its schedule for its run unless
// another run of the schedule is being worked: one that holds the claim
// while River still has it running, or whose job_logs row says processing
// (a run that started before an admin changed the policy). Of requests for
// one schedule, one wins. It reports the busy runs.
//
// The checks take turns under the schedules' own locks, taken in key order
// (no two batches deadlock), held until the claims are written: a batch
// outside a transaction runs as one implicit transaction, and each of its
// statements reads a snapshot of its own (read committed), so the check
// sees a winner that committed while this batch waited for a lock.
//
// The running and processing runs of the batch's schedules are read once
// per statement (MATERIALIZED), not once per request: job_logs' statistics
// may say that nothing is unfinished (taken between bursts) while ten
// thousand runs are, and a per-request subplan then scanned every
// unfinished row for each request (issue 18: 15,000 buffers a batch).
func claimSchedules(ctx context.Context, db batchSender, reqs []claimRequest) (map[int64]bool, error) {
	keys := make([]int32, 0, len(reqs))
	schedules, jobs, attempts := make([]int64, len(reqs)), make([]int64, len(reqs)), make([]int32, len(reqs))
	for i, req := range reqs {
		keys = append(keys, advisorylock.Key(req.scheduledJobID))
		schedules[i], jobs[i], attempts[i] = req.scheduledJobID, req.jobID, int32(req.attempt)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1, k) FROM (SELECT k FROM unnest($2::int4[]) AS k ORDER BY k) keys`,
		advisorylock.ScheduleOverlap, keys)
	busy := make(map[int64]bool, len(reqs))
	b.Queue(`WITH req AS MATERIALIZED (
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[]) AS r(sid, jid, att)
		), held AS MATERIALIZED (
			SELECT c.scheduled_job_id AS sid, c.river_job_id AS jid FROM scheduler_run_claims c JOIN river_job j ON j.id = c.river_job_id
			WHERE c.scheduled_job_id IN (SELECT sid FROM req) AND j.state = 'running'
		), processing AS MATERIALIZED (
			SELECT l.scheduled_job_id AS sid, l.river_job_id AS jid FROM job_logs l
			WHERE l.status = 'processing' AND l.scheduled_job_id IN (SELECT sid FROM req)
		), checked AS (
			SELECT r.sid, r.jid, r.att,
				EXISTS (SELECT 1 FROM held h WHERE h.sid = r.sid AND h.jid <> r.jid)
				OR EXISTS (SELECT 1 FROM processing p WHERE p.sid = r.sid AND p.jid <> r.jid) AS busy
			FROM req r
		), winners AS (
			SELECT DISTINCT ON (sid) sid, jid, att FROM checked WHERE NOT busy ORDER BY sid, jid
		), claimed AS (
			INSERT INTO scheduler_run_claims (scheduled_job_id, river_job_id, attempt) SELECT sid, jid, att FROM winners
			ON CONFLICT (scheduled_job_id) DO UPDATE SET river_job_id = EXCLUDED.river_job_id, attempt = EXCLUDED.attempt,
				claimed_at = EXCLUDED.claimed_at
			RETURNING 1
		)
		SELECT c.jid, NOT EXISTS (SELECT 1 FROM winners w WHERE w.jid = c.jid) FROM checked c`,
		schedules, jobs, attempts).Query(func(rows pgx.Rows) error {
		var jid int64
		var b bool
		_, err := pgx.ForEachRow(rows, []any{&jid, &b}, func() error {
			busy[jid] = b
			return nil
		})
		return err
	})
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("claim %d schedules: %w", len(keys), err)
	}
	return busy, nil
}
