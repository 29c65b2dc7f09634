package dashboard

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/workers/links"
	"github.com/atis-edu/atis-scheduler/workers/retention"
)

// Licenses page: what expires within, or expired in, this many days.
const licenseWindow = 30 * 24 * time.Hour

type warning struct {
	Days int32     `json:"days"`
	At   time.Time `json:"at"`
}

type licenseRow struct {
	ID          int64
	Module      string
	Institution *int64
	Type        string
	Status      *string
	ExpiresAt   time.Time
	IssuedTo    *string
	KeyEnd      string // the last 4 characters of license_key: enough to tell them apart
	Warnings    []warning
}

type licensesPage struct {
	Expiring, Expired []licenseRow
	Days              int
}

func (d *Dashboard) licenses(w http.ResponseWriter, r *http.Request) {
	now := d.cfg.Now().UTC()
	list, err := query(r.Context(), d.cfg.Pool, pgx.RowToStructByPos[licenseRow], "read licenses", `SELECT l.id, l.module_code, l.institution_id, l.license_type, l.status, l.expires_at,
			l.issued_to, right(l.license_key, 4),
			coalesce((SELECT json_agg(json_build_object('days', w.threshold_days, 'at', w.created_at AT TIME ZONE current_setting('TimeZone')) ORDER BY w.threshold_days DESC)
				FROM license_expiry_warnings w WHERE w.license_id = l.id AND w.expires_at = l.expires_at), '[]')
		FROM licenses l WHERE l.expires_at >= $1 AND l.expires_at < $2 ORDER BY l.expires_at, l.id LIMIT 1000`,
		now.Add(-licenseWindow), now.Add(licenseWindow))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	p := licensesPage{Days: int(licenseWindow.Hours() / 24)}
	for _, l := range list {
		if l.ExpiresAt.After(now) {
			p.Expiring = append(p.Expiring, l)
		} else {
			p.Expired = append(p.Expired, l)
		}
	}
	slices.Reverse(p.Expired) // most recent first
	d.render(w, r, "licenses", "Licenses", p)
}

// housekeepingRun is one run of log_retention or linked_record_cleanup.
type housekeepingRun struct {
	RunID  *int64
	Class  string
	Status string
	Start  *time.Time
	End    *time.Time
	Error  *string
	Result json.RawMessage
}

type tableState struct {
	Table  string
	RunID  *int64
	At     *time.Time
	Result *retention.TableResult
}

type retentionPage struct {
	Tables   []tableState
	Runs     []housekeepingRun
	Errors   []string
	Cleanup  *housekeepingRun
	Cleared  links.Result
	Progress []progressRow
}

type progressRow struct {
	Table     string
	NextBlock int64
	UpdatedAt time.Time
}

// retention shows, per table, the last retention run that touched it, the
// recent runs, and the last linked-record cleanup.
func (d *Dashboard) retention(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cleanup := d.cfg.Registry.NamesFor("linked_record_cleanup")
	classes := append(d.cfg.Registry.NamesFor("log_retention"), cleanup...)
	runs, err := query(ctx, d.cfg.Pool, pgx.RowToStructByPos[housekeepingRun], "read retention runs",
		`SELECT river_job_id, job_class, status, start_time, end_time, error_message, coalesce(result, '{}'::jsonb)
		FROM job_logs WHERE job_class = ANY($1) AND status IN ('completed', 'failed', 'cancelled')
		ORDER BY id DESC LIMIT 60`, classes)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var p retentionPage
	seen := map[string]int{}
	for _, t := range retention.Targets {
		seen[t.Name] = len(p.Tables)
		p.Tables = append(p.Tables, tableState{Table: t.Name})
	}
	for _, run := range runs {
		if slices.Contains(cleanup, run.Class) {
			if p.Cleanup == nil {
				p.Cleanup = &run
				_ = json.Unmarshal(run.Result, &p.Cleared)
			}
			continue
		}
		p.Runs = append(p.Runs, run)
		var res retention.Result
		if json.Unmarshal(run.Result, &res) != nil {
			continue
		}
		for name, tr := range res.Tables {
			k, ok := seen[name]
			if !ok {
				k = len(p.Tables)
				seen[name] = k
				p.Tables = append(p.Tables, tableState{Table: name})
			}
			if p.Tables[k].Result == nil {
				p.Tables[k].RunID, p.Tables[k].At, p.Tables[k].Result = run.RunID, run.End, tr
			}
		}
		if len(p.Runs) == 1 {
			p.Errors = res.Errors
		}
	}
	if len(p.Runs) > 10 {
		p.Runs = p.Runs[:10]
	}
	if p.Progress, err = query(ctx, d.cfg.Pool, pgx.RowToStructByPos[progressRow], "read retention progress",
		`SELECT table_name, next_block, updated_at FROM retention_progress ORDER BY table_name`); err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "retention", "Retention and cleanup", p)
}
