// Package sql is the `sql` job class: it runs a statement the way pg_cron
// would, in its own transaction, as the daemon's database role. It is off
// unless enabled (ATIS_ENABLE_SQL_JOBS).
//
// Parameters: statement (required; several statements separated by ';' run
// in one transaction), timeout_seconds (60; at most 21600).
package sql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = "sql"

// Defaults of the sql class.
const (
	DefaultTimeout = 60 * time.Second
	maxTimeout     = 6 * time.Hour
)

// ErrDisabled is the permanent error of sql runs while
// ATIS_ENABLE_SQL_JOBS is not true.
var ErrDisabled = errors.New("job class sql is disabled: set ATIS_ENABLE_SQL_JOBS=true to allow it " +
	"(it lets anyone who can write scheduled_jobs run SQL as the daemon's database role)")

// Config is what the class needs.
type Config struct {
	// Enabled allows sql runs; when false every sql schedule is rejected with
	// ErrDisabled. Defaults to false.
	Enabled bool

	// Pool runs the statements.
	Pool *pgxpool.Pool
}

// Params are an sql run's parameters.
type Params struct {
	Statement      string `json:"statement"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// New returns the sql class.
func New(cfg Config) workers.Class {
	return workers.Define(workers.Definition[Params]{
		Name: Name,
		Parse: func(raw json.RawMessage) (Params, error) {
			if !cfg.Enabled {
				return Params{}, ErrDisabled
			}
			return parse(raw)
		},
		Timeout: func(p Params) time.Duration { return p.timeout() + 5*time.Second },
		Run:     func(ctx context.Context, job workers.Job[Params]) (any, error) { return run(ctx, cfg.Pool, job.Params) },
	})
}

func run(ctx context.Context, pool *pgxpool.Pool, p Params) (any, error) {
	start := time.Now()
	var tag string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
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
			return nil, ctxErr
		}
		return nil, fmt.Errorf("sql: %w", err)
	}
	return map[string]any{"command_tag": tag, "duration_ms": time.Since(start).Milliseconds()}, nil
}

func parse(raw json.RawMessage) (Params, error) {
	var p Params
	if err := workers.DecodeParameters(Name, raw, &p); err != nil {
		return p, err
	}
	if strings.TrimSpace(p.Statement) == "" {
		return p, errors.New(`sql parameters: "statement" is required`)
	}
	if p.TimeoutSeconds < 0 || time.Duration(p.TimeoutSeconds)*time.Second > maxTimeout {
		return p, fmt.Errorf(`sql parameters: "timeout_seconds" %d is out of range (1 to %d)`, p.TimeoutSeconds, int(maxTimeout.Seconds()))
	}
	return p, nil
}

func (p Params) timeout() time.Duration {
	if p.TimeoutSeconds == 0 {
		return DefaultTimeout
	}
	return time.Duration(p.TimeoutSeconds) * time.Second
}
