package dbtest

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Explained is a connection whose every statement's executed plan
// (auto_explain, with row counts) comes back to the test: how a test
// asserts that a statement does work in proportion to its input, not to a
// table, whatever plan the statistics of the moment lead to.
type Explained struct {
	Conn *pgx.Conn

	mu    sync.Mutex
	plans []json.RawMessage
}

// NewExplained opens a connection on databaseURL with auto_explain loaded
// for it (the test cluster's user is a superuser), closed when the test ends.
func NewExplained(tb testing.TB, databaseURL string) *Explained {
	tb.Helper()
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	e := &Explained{}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if i := strings.Index(n.Message, "{"); n.Severity == "LOG" && i >= 0 {
			e.mu.Lock()
			e.plans = append(e.plans, json.RawMessage(n.Message[i:]))
			e.mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, stmt := range []string{`LOAD 'auto_explain'`, `SET auto_explain.log_min_duration = 0`,
		`SET auto_explain.log_analyze = on`, `SET auto_explain.log_timing = off`, `SET auto_explain.log_format = json`,
		`SET auto_explain.log_nested_statements = on`, `SET client_min_messages = log`} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			tb.Fatalf("dbtest: %s: %v", stmt, err)
		}
	}
	e.Conn = conn
	return e
}

// Work returns, for the statements run since the last call, the largest
// number of rows any one of them handled: every plan node's rows, and the
// rows its filters and join filters removed, over all its loops. A join
// that compares each of m rows with each of n counts m×n.
func (e *Explained) Work(tb testing.TB) int64 {
	tb.Helper()
	e.mu.Lock()
	plans := e.plans
	e.plans = nil
	e.mu.Unlock()
	var most int64
	for _, p := range plans {
		var doc struct {
			Plan planNode `json:"Plan"`
		}
		if err := json.Unmarshal(p, &doc); err != nil {
			tb.Fatalf("dbtest: read auto_explain's plan: %v\n%s", err, p)
		}
		most = max(most, doc.Plan.work())
	}
	return most
}

type planNode struct {
	Rows        float64    `json:"Actual Rows"`
	Loops       float64    `json:"Actual Loops"`
	Filtered    float64    `json:"Rows Removed by Filter"`
	JoinFilterd float64    `json:"Rows Removed by Join Filter"`
	Plans       []planNode `json:"Plans"`
}

func (n planNode) work() int64 {
	w := (n.Rows + n.Filtered + n.JoinFilterd) * max(n.Loops, 1)
	for _, c := range n.Plans {
		w += float64(c.work())
	}
	return int64(w)
}

// WaitingBehindStaleStatistics fills job_logs at databaseURL as a burst
// finds it: analyzed while it held 50 finished rows and nothing
// unfinished, then given waiting runs (job_id and river_job_id 1..waiting,
// attempt 1, scheduled_job_id 100001 + i mod schedules) that no analyze has
// seen; every processingEvery-th is processing (0: none), the others
// queued. Autovacuum's next analyze comes a minute later at best.
func WaitingBehindStaleStatistics(tb testing.TB, pool interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, waiting, schedules, processingEvery int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, scheduled_job_id)
			SELECT 'done-' || g, 1000000 + g, 'noop', 'default', 1, 'completed', 1 FROM generate_series(1, 50) g`, nil},
		{`ANALYZE job_logs`, nil},
		{`INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id)
			SELECT g::text, g, 'noop', 'default', 1,
				CASE WHEN $3::int > 0 AND g % $3::int = 0 THEN 'processing' ELSE 'queued' END, '{}', 100001 + g % $2::int
			FROM generate_series(1, $1::int) g`, []any{waiting, schedules, processingEvery}},
	} {
		if _, err := pool.Exec(ctx, stmt.sql, stmt.args...); err != nil {
			tb.Fatalf("dbtest: %v", err)
		}
	}
}
