// Package licenses is the `license_expiry_check` job class: active licenses
// past their expiry date become expired (audited, admins notified), and
// admins are warned ahead of expiry at thresholds in days, once each.
package licenses

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/workers"
)

// DefaultWarningDays are the warning thresholds when neither the job's
// parameters nor system_configs name any.
var DefaultWarningDays = []int{30, 7, 1}

// DefaultPageSize is how many licenses one transaction checks.
const DefaultPageSize = 1000

// ConfigKey is the system_configs key of the warning thresholds.
const ConfigKey = "licenses.expiry_warning_days"

// Checker checks every license's expiry: it expires the licenses past
// their date and warns of those near it, with notifications and audit rows.
type Checker struct {
	// Pool is the database.
	Pool *pgxpool.Pool

	// AppKeys decrypt encrypted system_configs values (ATIS_APP_KEY).
	// Defaults to none: an encrypted threshold config is then an error.
	AppKeys laravelcrypt.Keys

	// PageSize is how many licenses one transaction checks. Defaults to 1000.
	PageSize int

	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

type params struct {
	WarningDays json.RawMessage `json:"warning_days"`
}

func parseParams(raw json.RawMessage) ([]int, error) {
	var p params
	if err := workers.DecodeParameters(Name, raw, &p); err != nil {
		return nil, err
	}
	if len(p.WarningDays) == 0 || string(p.WarningDays) == "null" {
		return nil, nil
	}
	days, err := parseDays(p.WarningDays)
	if err != nil {
		return nil, fmt.Errorf("license_expiry_check parameters: warning_days: %w", err)
	}
	return days, nil
}

// parseDays reads a list of whole days: a JSON array of positive integers,
// or a JSON string holding one (as a web app may store it). Duplicates are
// dropped; the result is sorted from the most days to the fewest.
func parseDays(raw json.RawMessage) ([]int, error) {
	var asString string
	if json.Unmarshal(raw, &asString) == nil {
		raw = json.RawMessage(asString)
	}
	var days []int
	if err := json.Unmarshal(raw, &days); err != nil || len(days) == 0 {
		return nil, fmt.Errorf("expected a list of whole days such as [30, 7, 1], got %s", raw)
	}
	for _, d := range days {
		if d < 1 || d > 3650 {
			return nil, fmt.Errorf("expected days between 1 and 3650, got %d in %s", d, raw)
		}
	}
	slices.Sort(days)
	days = slices.Compact(days)
	slices.Reverse(days)
	return days, nil
}

// Result counts what one check did; it is the run's job_logs.result.
type Result struct {
	Checked int            `json:"checked"`
	Expired int            `json:"expired"`
	Warned  map[string]int `json:"warned"` // by threshold in days
	// ConfigErrors name malformed system_configs values; licenses they
	// govern were not warned about.
	ConfigErrors []string `json:"config_errors,omitempty"`
}

// Check runs one check over every active license, a page per transaction.
// warningDays, when non-nil, overrides system_configs. It is safe to run
// concurrently: pages are claimed with SKIP LOCKED, expiry re-checks the
// status under the row lock, and warnings are keyed on (license, expiry
// date, threshold). A malformed threshold config does not stop expiries: it
// skips the warnings it governs and fails the run with its message.
func (c Checker) Check(ctx context.Context, warningDays []int) (Result, error) {
	res := Result{Warned: map[string]int{}}
	clock := c.Now
	if clock == nil {
		clock = time.Now
	}
	now := clock().UTC()
	thresholds, err := loadThresholds(ctx, settings.Reader{Pool: c.Pool, Keys: c.AppKeys}, warningDays)
	if err != nil {
		return res, err
	}
	res.ConfigErrors = thresholds.errors
	var last int64
	for {
		n, next, err := c.checkPage(ctx, now, last, thresholds, &res)
		if err != nil {
			return res, fmt.Errorf("check licenses after id %d: %w", last, err)
		}
		if n == 0 {
			break
		}
		last = next
	}
	if len(res.ConfigErrors) > 0 {
		return res, fmt.Errorf("malformed %s: %s", ConfigKey, res.ConfigErrors[0])
	}
	return res, nil
}

// license is one active license as the check reads it.
type license struct {
	ID            int64
	ModuleCode    string
	ModuleID      *int64
	ModuleName    *string
	InstitutionID *int64
	Institution   *string
	ExpiresAt     *time.Time
}

func (c Checker) checkPage(ctx context.Context, now time.Time, after int64, th thresholds, res *Result) (n int, last int64, err error) {
	err = pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT l.id, l.module_code, m.id, m.name, l.institution_id,
				(SELECT to_jsonb(i) ->> 'name' FROM institutions i WHERE i.id = l.institution_id), l.expires_at
			FROM licenses l LEFT JOIN system_modules m ON m.code = l.module_code
			WHERE l.status = 'active' AND l.id > $1
			ORDER BY l.id LIMIT $2 FOR UPDATE OF l SKIP LOCKED`, after, cmp.Or(c.PageSize, DefaultPageSize))
		if err != nil {
			return err
		}
		page, err := pgx.CollectRows(rows, pgx.RowToStructByPos[license])
		if err != nil || len(page) == 0 {
			return err
		}
		ids := make([]int64, len(page))
		for i, l := range page {
			ids[i] = l.ID
			switch {
			case l.ExpiresAt == nil: // never expires
			case !l.ExpiresAt.After(now):
				if err := expire(ctx, tx, l, now); err != nil {
					return fmt.Errorf("expire license %d: %w", l.ID, err)
				}
				res.Expired++
			default:
				days, ok := th.forModule(l.ModuleID)
				if !ok {
					continue
				}
				sent, err := warn(ctx, tx, l, days, now)
				if err != nil {
					return fmt.Errorf("warn about license %d: %w", l.ID, err)
				}
				if sent > 0 {
					res.Warned[strconv.Itoa(sent)]++
				}
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE licenses SET last_validation_date = $2 WHERE id = ANY($1)`, ids, now); err != nil {
			return err
		}
		n, last = len(page), page[len(page)-1].ID
		res.Checked += n
		return nil
	})
	return n, last, err
}

// expire marks one license expired, with its audit row and notification,
// unless a concurrent check did it first.
func expire(ctx context.Context, tx pgx.Tx, l license, now time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE licenses SET status = 'expired', updated_at = $2
		WHERE id = $1 AND status = 'active' AND expires_at <= $2`, l.ID, now)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_logs (event, auditable_type, auditable_id, old_values, new_values, tags, institution_id, created_at)
		VALUES ('license_expired', 'licenses', $1, '{"status": "active"}', '{"status": "expired"}',
			'["scheduler", "license_expiry_check"]', $2, $3)`, l.ID, l.InstitutionID, now); err != nil {
		return err
	}
	title := "License expired: " + l.module()
	msg := fmt.Sprintf("The %s license (#%d) of %s expired on %s.", l.module(), l.ID, l.holder(), when(*l.ExpiresAt))
	return notify(ctx, tx, "license_expired", "danger", title, msg, l, now, nil)
}

// warn records the thresholds the license has crossed for its current
// expiry date and, if any is new, notifies once for the most urgent of
// them. It returns that threshold, or 0.
func warn(ctx context.Context, tx pgx.Tx, l license, days []int, now time.Time) (int, error) {
	left := l.ExpiresAt.Sub(now)
	var crossed []int32
	for _, d := range days {
		if left <= time.Duration(d)*24*time.Hour {
			crossed = append(crossed, int32(d))
		}
	}
	if len(crossed) == 0 {
		return 0, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO license_expiry_warnings (license_id, expires_at, threshold_days, created_at)
		SELECT $1, $2, d, $4 FROM unnest($3::int[]) d
		ON CONFLICT DO NOTHING RETURNING threshold_days`, l.ID, *l.ExpiresAt, crossed, now)
	if err != nil {
		return 0, err
	}
	fresh, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	// One notice, for the nearest threshold crossed; the others are
	// recorded above and never come later. It says the time really left.
	urgent := int(slices.Min(fresh))
	title := fmt.Sprintf("License expires in %s: %s", timeLeft(left), l.module())
	msg := fmt.Sprintf("The %s license (#%d) of %s expires on %s (in %s).", l.module(), l.ID, l.holder(),
		when(*l.ExpiresAt), timeLeft(left))
	var id int64
	if err := notify(ctx, tx, "license_expiring", "warning", title, msg, l, now, &id); err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `UPDATE license_expiry_warnings SET notification_id = $4
		WHERE license_id = $1 AND expires_at = $2 AND threshold_days = $3`, l.ID, *l.ExpiresAt, urgent, id)
	return urgent, err
}

func notify(ctx context.Context, tx pgx.Tx, typ, level, title, msg string, l license, now time.Time, id *int64) error {
	targets := "[]"
	if l.InstitutionID != nil {
		targets = fmt.Sprintf("[%d]", *l.InstitutionID)
	}
	var endAt *time.Time
	if typ == "license_expiring" {
		endAt = l.ExpiresAt // a warning is moot once the license has expired
	}
	var got int64
	err := tx.QueryRow(ctx, `INSERT INTO system_notifications (type, title, message, level, start_at, end_at, target_roles, target_institutions, created_at, updated_at)
		VALUES ($1, left($2, 200), $3, $4, $5, $6, '[]', $7, $5, $5) RETURNING id`,
		typ, title, msg, level, now, endAt, targets).Scan(&got)
	if id != nil {
		*id = got
	}
	return err
}

func (l license) module() string {
	if l.ModuleName != nil && *l.ModuleName != "" {
		return fmt.Sprintf("%s (%s)", *l.ModuleName, l.ModuleCode)
	}
	return l.ModuleCode
}

func (l license) holder() string {
	switch {
	case l.InstitutionID == nil:
		return "the whole system"
	case l.Institution != nil && *l.Institution != "":
		return fmt.Sprintf("institution %s (#%d)", *l.Institution, *l.InstitutionID)
	default:
		return fmt.Sprintf("institution #%d", *l.InstitutionID)
	}
}

// when shows an instant as people read it: in the zone the database's
// TIMESTAMP columns are written in (ATIS_DB_TIMEZONE's, which the pool
// reads them in), named ("2026-06-01 21:36 +04 (Asia/Baku)", "… UTC").
func when(t time.Time) string {
	s := t.Format("2006-01-02 15:04 MST")
	if name := t.Location().String(); name != "UTC" && name != "Local" && !strings.HasSuffix(s, " "+name) {
		s += " (" + name + ")"
	}
	return s
}

// timeLeft says how long until an expiry, rounded down: "5 days", "1 day",
// "20 hours", "45 minutes".
func timeLeft(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(max(1, int(d/time.Minute)), "minute")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
