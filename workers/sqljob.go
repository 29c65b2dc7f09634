package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// Defaults of the sql class.
const (
	DefaultSQLTimeout = 60 * time.Second
	maxSQLTimeout     = 6 * time.Hour
)

// ErrSQLJobsDisabled is the permanent error of sql runs while
// ATIS_ENABLE_SQL_JOBS is not true.
var ErrSQLJobsDisabled = errors.New("job class sql is disabled: set ATIS_ENABLE_SQL_JOBS=true to allow it " +
	"(it lets anyone who can write scheduled_jobs run SQL as the daemon's database role)")

// SQLClass is the `sql` job class: it runs a statement the way pg_cron
// would, in its own transaction, as the daemon's database role. It is off
// unless Enabled.
//
// Parameters: statement (required; several statements separated by ';' run
// in one transaction), timeout_seconds (60; at most 21600).
type SQLClass struct {
	// Enabled allows sql runs; when false every sql schedule is rejected with
	// ErrSQLJobsDisabled. Defaults to false.
	Enabled bool

	// Pool runs the statements.
	Pool *pgxpool.Pool
}

// SQLArgs are the River args of an sql run.
type SQLArgs struct{ Args }

// Kind is the River job kind.
func (SQLArgs) Kind() string { return "sql" }

type sqlParams struct {
	Statement      string `json:"statement"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// Name implements Class.
func (SQLClass) Name() string { return SQLArgs{}.Kind() }

// ValidateParameters implements Class.
func (c SQLClass) ValidateParameters(params json.RawMessage) error {
	if !c.Enabled {
		return ErrSQLJobsDisabled
	}
	_, err := parseSQLParams(params)
	return err
}

// AddWorker implements Class.
func (c SQLClass) AddWorker(w *river.Workers) error {
	return river.AddWorkerSafely(w, &sqlWorker{class: c})
}

type sqlWorker struct {
	river.WorkerDefaults[SQLArgs]
	class SQLClass
}

func (w *sqlWorker) Timeout(job *river.Job[SQLArgs]) time.Duration {
	p, err := parseSQLParams(job.Args.Parameters)
	if err != nil {
		return 0
	}
	return p.timeout() + 5*time.Second
}

func (w *sqlWorker) Work(ctx context.Context, job *river.Job[SQLArgs]) error {
	if err := w.class.ValidateParameters(job.Args.Parameters); err != nil {
		return Permanent(err)
	}
	p, _ := parseSQLParams(job.Args.Parameters)
	start := time.Now()
	var tag string
	err := pgx.BeginFunc(ctx, w.class.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", p.timeout().Milliseconds())); err != nil {
			return err
		}
		// The simple protocol allows several statements in one string.
		ct, err := tx.Exec(ctx, p.Statement, pgx.QueryExecModeSimpleProtocol)
		tag = ct.String()
		return err
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("sql: %w", err)
	}
	SetResult(ctx, map[string]any{"command_tag": tag, "duration_ms": time.Since(start).Milliseconds()})
	return nil
}

func parseSQLParams(raw json.RawMessage) (*sqlParams, error) {
	var p sqlParams
	if err := DecodeParameters("sql", raw, &p); err != nil {
		return nil, err
	}
	if strings.TrimSpace(p.Statement) == "" {
		return nil, errors.New(`sql parameters: "statement" is required`)
	}
	if p.TimeoutSeconds < 0 || time.Duration(p.TimeoutSeconds)*time.Second > maxSQLTimeout {
		return nil, fmt.Errorf(`sql parameters: "timeout_seconds" %d is out of range (1 to %d)`, p.TimeoutSeconds, int(maxSQLTimeout.Seconds()))
	}
	return &p, nil
}

func (p *sqlParams) timeout() time.Duration {
	if p.TimeoutSeconds == 0 {
		return DefaultSQLTimeout
	}
	return time.Duration(p.TimeoutSeconds) * time.Second
}
