// Package retention is the `log_retention` job class: it keeps every log
// table of ATİS bounded, deleting rows older than each table's retention in
// short batches, archiving them first when asked, and auditing each purge.
package retention

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Defaults of the log_retention class.
const (
	DefaultBatchSize = 5000
	DefaultBudget    = 10 * time.Minute
	// targetBatchDuration keeps each batch's transaction short.
	targetBatchDuration  = 50 * time.Millisecond
	minBlocks, maxBlocks = 8, 4096
)

// Target is one table retention keeps bounded.
type Target struct {
	// Name is how parameters and settings name it: the table, schema-
	// qualified outside public.
	Name          string
	Schema, Table string
	// TimeColumn holds the row's age; empty when Survives decides alone.
	TimeColumn string
	// Deletable is SQL (on alias t, cutoff $3) that a row must satisfy to be
	// deleted: the rows it excludes are kept whatever their age.
	Deletable string
	// DefaultDays is the retention when nothing is configured; 0 keeps forever.
	DefaultDays int
}

// Targets are the tables log_retention knows, in the order it purges them.
var Targets = []Target{
	{Name: "activity_logs", Schema: "public", Table: "activity_logs", TimeColumn: "created_at", DefaultDays: 365},
	{Name: "audit_logs", Schema: "public", Table: "audit_logs", TimeColumn: "created_at", DefaultDays: 2555},
	{Name: "security_events", Schema: "public", Table: "security_events", TimeColumn: "created_at", DefaultDays: 730,
		Deletable: "t.resolution IS NOT NULL"},
	{Name: "system_errors", Schema: "public", Table: "system_errors", TimeColumn: "created_at", DefaultDays: 180,
		Deletable: "t.status IN ('resolved', 'ignored')"},
	{Name: "performance_metrics", Schema: "public", Table: "performance_metrics", TimeColumn: "timestamp", DefaultDays: 90},
	{Name: "job_logs", Schema: "public", Table: "job_logs", TimeColumn: "created_at", DefaultDays: 90,
		Deletable: `t.status IN ('completed', 'failed', 'cancelled') AND (t.river_job_id IS NULL OR NOT EXISTS (
			SELECT 1 FROM job_logs u WHERE u.river_job_id = t.river_job_id AND u.status IN ('queued', 'processing')))`},
	{Name: "integration_sync_logs", Schema: "public", Table: "integration_sync_logs", TimeColumn: "start_time", DefaultDays: 180,
		Deletable: "t.status IS DISTINCT FROM 'running'"},
	{Name: "system_notification_reads", Schema: "public", Table: "system_notification_reads", DefaultDays: 90,
		Deletable: "EXISTS (SELECT 1 FROM system_notifications n WHERE n.id = t.notification_id AND n.end_at < $3)"},
	{Name: "system_notifications", Schema: "public", Table: "system_notifications", TimeColumn: "end_at", DefaultDays: 90},
	{Name: "platform.activity_logs", Schema: "platform", Table: "activity_logs", TimeColumn: "occurred_at", DefaultDays: 365},
	{Name: "platform.audit_logs", Schema: "platform", Table: "audit_logs", TimeColumn: "performed_at", DefaultDays: 2555},
	{Name: "integration_records", Schema: "public", Table: "integration_records", TimeColumn: "deleted_at", DefaultDays: 30},
}

// Observer is told how many rows each table lost (metrics). Optional.
type Observer interface {
	RetentionDeleted(table string, n int64)
}

// Purger deletes the rows of every log table older than its retention, in
// batches, archiving them first when asked, with an audit row per table.
type Purger struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// AppKeys decrypt encrypted system_configs values (ATIS_APP_KEY).
	// Defaults to none: an encrypted retention setting is then an error.
	AppKeys laravelcrypt.Keys
	// ArchiveDir is the default archive directory (ATIS_ARCHIVE_DIR).
	ArchiveDir string
	// Observer counts deleted rows. Optional.
	Observer Observer
	// Logger logs each table's purge. Optional.
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Params are a run's parameters.
type Params struct {
	Tables        map[string]json.RawMessage `json:"tables"`
	BatchSize     int                        `json:"batch_size"`
	BudgetSeconds int                        `json:"budget_seconds"`
	ArchiveDir    string                     `json:"archive_dir"`

	budgetOverride time.Duration // tests: a budget shorter than a second
}

func parseParams(raw json.RawMessage) (Params, error) {
	var p Params
	if err := workers.DecodeParameters(Name, raw, &p); err != nil {
		return p, err
	}
	for name, v := range p.Tables {
		if !slices.ContainsFunc(Targets, func(t Target) bool { return t.Name == name }) {
			return p, fmt.Errorf("log_retention parameters: tables: %q is not a table retention knows (%s)", name, targetNames())
		}
		if _, err := parseDays(v); err != nil {
			return p, fmt.Errorf("log_retention parameters: tables.%s: %w", name, err)
		}
	}
	switch {
	case p.BatchSize < 0 || p.BatchSize > 100_000:
		return p, fmt.Errorf("log_retention parameters: batch_size %d is out of range (1 to 100000)", p.BatchSize)
	case p.BudgetSeconds < 0:
		return p, fmt.Errorf("log_retention parameters: budget_seconds %d must not be negative", p.BudgetSeconds)
	case p.ArchiveDir != "" && !filepath.IsAbs(p.ArchiveDir):
		return p, fmt.Errorf("log_retention parameters: archive_dir %q must be an absolute path", p.ArchiveDir)
	}
	return p, nil
}

func targetNames() string {
	names := make([]string, len(Targets))
	for i, t := range Targets {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

func (p Params) budget() time.Duration {
	if p.budgetOverride != 0 {
		return p.budgetOverride
	}
	if p.BudgetSeconds == 0 {
		return DefaultBudget
	}
	return time.Duration(p.BudgetSeconds) * time.Second
}

// TableResult is what one run did to one table.
type TableResult struct {
	Days         int       `json:"days"`
	Source       string    `json:"source"`
	Cutoff       time.Time `json:"cutoff"`
	Deleted      int64     `json:"deleted"`
	Batches      int       `json:"batches"`
	Complete     bool      `json:"complete"` // the whole table was scanned
	ArchiveFile  string    `json:"archive_file,omitempty"`
	BatchP50Ms   float64   `json:"batch_p50_ms"`
	BatchP99Ms   float64   `json:"batch_p99_ms"`
	SkippedLocks int       `json:"skipped_locked_ranges,omitempty"`
}

// Result is a run's job_logs.result.
type Result struct {
	Tables          map[string]*TableResult `json:"tables"`
	KeptForever     []string                `json:"kept_forever,omitempty"`
	Missing         []string                `json:"missing_tables,omitempty"`
	BudgetExhausted bool                    `json:"budget_exhausted"`
	Errors          []string                `json:"errors,omitempty"`
}

// Purge runs one retention pass over every target, within the budget. A
// table that does not exist is noted and skipped; a malformed setting skips
// its table and fails the run once the others are done.
func (c Purger) Purge(ctx context.Context, p Params) (Result, error) {
	res := Result{Tables: map[string]*TableResult{}}
	clock := c.Now
	if clock == nil {
		clock = time.Now
	}
	deadline := time.Now().Add(p.budget())
	archiveDir := cmp.Or(p.ArchiveDir, c.ArchiveDir)
	days, errs := resolveDays(ctx, settings.Reader{Pool: c.Pool, Keys: c.AppKeys}, p.Tables)
	res.Errors = errs
	runID := clock().UTC().Format("20060102T150405Z")
	for _, t := range Targets {
		d, ok := days[t.Name]
		if !ok { // its setting is malformed: reported in res.Errors
			continue
		}
		exists, err := tableExists(ctx, c.Pool, t)
		if err != nil {
			return res, err
		}
		switch {
		case !exists:
			res.Missing = append(res.Missing, t.Name)
			continue
		case d.days == 0:
			res.KeptForever = append(res.KeptForever, t.Name)
			continue
		}
		if len(res.Tables) > 0 && time.Now().After(deadline) {
			res.BudgetExhausted = true
			break
		}
		tr := &TableResult{Days: d.days, Source: d.source, Cutoff: clock().UTC().Add(-time.Duration(d.days) * 24 * time.Hour)}
		res.Tables[t.Name] = tr
		var arch *archive
		if archiveDir != "" {
			arch = &archive{dir: archiveDir, table: t.Name, runID: runID}
		}
		err = c.purgeTable(ctx, t, tr, cmp.Or(p.BatchSize, DefaultBatchSize), deadline, arch)
		if arch != nil {
			if cerr := arch.close(); err == nil {
				err = cerr
			}
			tr.ArchiveFile = arch.path
		}
		if tr.Deleted > 0 {
			if aerr := c.audit(ctx, t, tr); err == nil {
				err = aerr
			}
			if c.Observer != nil {
				c.Observer.RetentionDeleted(t.Name, tr.Deleted)
			}
			if c.Logger != nil {
				c.Logger.InfoContext(ctx, "retention purge", slog.String("table", t.Name), slog.Int64("deleted", tr.Deleted),
					slog.Time("cutoff", tr.Cutoff), slog.Bool("complete", tr.Complete))
			}
		}
		if err != nil {
			return res, fmt.Errorf("purge %s: %w", t.Name, err)
		}
		if !tr.Complete {
			res.BudgetExhausted = true
			break
		}
	}
	if len(res.Errors) > 0 {
		return res, errors.New(res.Errors[0])
	}
	return res, nil
}

func tableExists(ctx context.Context, pool *pgxpool.Pool, t Target) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))`, t.Schema, t.Table).Scan(&ok)
	return ok, err
}

// purgeTable deletes a table's expired rows in batches over ranges of heap
// blocks (TID range scans): each batch reads a bounded stretch of the table
// sequentially whatever the rows' order, so its cost stays flat, and the
// range adapts so a batch removes about batchSize rows in well under 100 ms.
// A pass that the budget stops is continued by the next run.
func (c Purger) purgeTable(ctx context.Context, t Target, tr *TableResult, batchSize int, deadline time.Time, arch *archive) error {
	rel := pgx.Identifier{t.Schema, t.Table}.Sanitize()
	var nblocks int64
	if err := c.Pool.QueryRow(ctx, `SELECT pg_relation_size($1::regclass) / current_setting('block_size')::int`, rel).Scan(&nblocks); err != nil {
		return err
	}
	var start int64
	if err := c.Pool.QueryRow(ctx, `SELECT coalesce((SELECT next_block FROM retention_progress WHERE table_name = $1), 0)`, t.Name).
		Scan(&start); err != nil {
		return err
	}
	if start >= nblocks {
		start = 0
	}
	cond := "TRUE"
	if t.TimeColumn != "" {
		cond = "t." + pgx.Identifier{t.TimeColumn}.Sanitize() + " < $3"
	}
	if t.Deletable != "" {
		cond += " AND (" + t.Deletable + ")"
	}
	returning := ""
	if arch != nil {
		returning = " RETURNING to_jsonb(t.*)"
	}
	stmt := "DELETE FROM " + rel + " t WHERE t.ctid >= $1::tid AND t.ctid < $2::tid AND " + cond + returning

	var durations []time.Duration
	step := max(minBlocks, min(maxBlocks, int64(batchSize/50))) // ~50 rows a block to start with
	block := start
	for block < nblocks {
		// At least one batch a run, so that even a tiny budget makes progress.
		if tr.Batches > 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
			break
		}
		end := min(block+step, nblocks)
		began := time.Now()
		n, err := c.batch(ctx, stmt, block, end, tr.Cutoff, arch)
		took := time.Since(began)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55P03": // lock_not_available: an app transaction holds a row
			tr.SkippedLocks++
		case err != nil:
			return err
		}
		durations = append(durations, took)
		tr.Deleted += n
		tr.Batches++
		block = end
		step = nextStep(step, n, took, batchSize)
	}
	tr.Complete = block >= nblocks
	tr.BatchP50Ms, tr.BatchP99Ms = percentile(durations, .5), percentile(durations, .99)
	if tr.Complete {
		_, err := c.Pool.Exec(ctx, `DELETE FROM retention_progress WHERE table_name = $1`, t.Name)
		return err
	}
	_, err := c.Pool.Exec(ctx, `INSERT INTO retention_progress (table_name, next_block) VALUES ($1, $2)
		ON CONFLICT (table_name) DO UPDATE SET next_block = $2, updated_at = now()`, t.Name, block)
	return err
}

// batch deletes one block range in a transaction of its own; with an
// archive, the deleted rows are written and fsynced before the commit, and a
// failed write rolls the delete back.
func (c Purger) batch(ctx context.Context, stmt string, from, to int64, cutoff time.Time, arch *archive) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		// Asynchronous commit: the batch does not wait for its WAL flush,
		// so the application's commits do not queue behind a stream of
		// retention fsyncs. A crash may undo the last moments of deletes;
		// the next run repeats them (and an archive may then hold a row
		// twice, never lose one).
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '2s'; SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		lo, hi := fmt.Sprintf("(%d,0)", from), fmt.Sprintf("(%d,0)", to)
		if arch == nil {
			tag, err := tx.Exec(ctx, stmt, lo, hi, cutoff)
			n = tag.RowsAffected()
			return err
		}
		rows, err := tx.Query(ctx, stmt, lo, hi, cutoff)
		if err != nil {
			return err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
		if err != nil {
			return err
		}
		n = int64(len(lines))
		if n == 0 {
			return nil
		}
		return arch.write(lines) // fsynced before the commit below
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// nextStep adapts the blocks per batch: toward batchSize rows at the density
// just seen, halved when a batch ran long, doubled through empty stretches.
func nextStep(step, deleted int64, took time.Duration, batchSize int) int64 {
	switch {
	case took > 2*targetBatchDuration:
		step /= 2
	case deleted == 0:
		step *= 2
	default:
		step = step * int64(batchSize) / deleted
	}
	if took > targetBatchDuration && step > 1 {
		step = min(step, int64(float64(step)*float64(targetBatchDuration)/float64(took))+1)
	}
	return max(minBlocks, min(maxBlocks, step))
}

func percentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * q)
	return float64(s[i].Microseconds()) / 1000
}

// audit writes the one audit_logs row of a table's purge: retention is the
// only path that removes audit rows, so it is audited itself.
func (c Purger) audit(ctx context.Context, t Target, tr *TableResult) error {
	values, _ := json.Marshal(map[string]any{"table": t.Name, "cutoff": tr.Cutoff, "rows_deleted": tr.Deleted,
		"days": tr.Days, "archive_file": tr.ArchiveFile, "complete": tr.Complete})
	_, err := c.Pool.Exec(ctx, `INSERT INTO audit_logs (event, auditable_type, new_values, tags)
		VALUES ('retention_purge', $1, $2, '["scheduler", "log_retention"]')`, t.Name, values)
	return err
}
