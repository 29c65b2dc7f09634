package licenses

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/workers"
)

// thresholds are the warning days in force, by module.
type thresholds struct {
	override  []int // from the job's parameters: wins over everything
	global    []int // system_configs scope global; nil: the default
	badGlobal bool
	modules   map[int64][]int // system_configs scope module, by system_modules.id
	badModule map[int64]bool
	errors    []string
}

// forModule returns the warning days for a license of the module, and false
// when a malformed config governs it (its warnings are then skipped).
func (t thresholds) forModule(moduleID *int64) ([]int, bool) {
	if t.override != nil {
		return t.override, true
	}
	if moduleID != nil {
		if t.badModule[*moduleID] {
			return nil, false
		}
		if days, ok := t.modules[*moduleID]; ok {
			return days, true
		}
	}
	if t.badGlobal {
		return nil, false
	}
	if t.global != nil {
		return t.global, true
	}
	return DefaultWarningDays, true
}

// loadThresholds reads system_configs unless override is set. Where several
// rows share a scope (the seed's unique key does not hold for a NULL
// scope_id), the most recently updated wins.
func loadThresholds(ctx context.Context, reader settings.Reader, override []int) (thresholds, error) {
	t := thresholds{override: override, modules: map[int64][]int{}, badModule: map[int64]bool{}}
	if override != nil {
		return t, nil
	}
	rows, err := reader.Latest(ctx, []string{ConfigKey}, "global", "module")
	if err != nil {
		return t, fmt.Errorf("read %s: %w", ConfigKey, err)
	}
	for _, row := range rows {
		if row.Scope == "module" && row.ScopeID == nil {
			t.errors = append(t.errors, fmt.Sprintf("system_configs %s (scope module) has no scope_id naming the module", ConfigKey))
			continue
		}
		days, perr := parseSetting(row)
		switch {
		case perr == nil && row.Scope == "global":
			t.global = days
			continue
		case perr == nil:
			t.modules[*row.ScopeID] = days
			continue
		case row.Scope == "global":
			t.badGlobal = true
		default:
			t.badModule[*row.ScopeID] = true
		}
		msg, err := settingError(ctx, reader.Pool, row, perr)
		if err != nil {
			return t, err
		}
		t.errors = append(t.errors, msg)
	}
	return t, nil
}

// parseSetting reads a row's warning days. A row that cannot be read
// returns its own error (which names it); an encrypted row's value is not
// quoted.
func parseSetting(row settings.Setting) ([]int, error) {
	if row.Err != nil {
		return nil, row.Err
	}
	days, err := parseConfigValue(row.Value)
	if err != nil && row.Encrypted {
		return nil, errors.New("the decrypted value is not a list of whole days such as [30, 7, 1]")
	}
	return days, err
}

// settingError says which row err is about.
func settingError(ctx context.Context, pool *pgxpool.Pool, row settings.Setting, err error) (string, error) {
	var verr *settings.ValueError
	switch {
	case errors.As(err, &verr):
		return err.Error(), nil
	case row.Scope == "global":
		return fmt.Sprintf("system_configs %s (scope global): %v", ConfigKey, err), nil
	}
	name, qerr := moduleName(ctx, pool, *row.ScopeID)
	if qerr != nil {
		return "", qerr
	}
	return fmt.Sprintf("system_configs %s (scope module, module %s): %v", ConfigKey, name, err), nil
}

// moduleName names a module in messages: its id, and its code when known.
func moduleName(ctx context.Context, pool *pgxpool.Pool, id int64) (string, error) {
	var code *string
	err := pool.QueryRow(ctx, `SELECT code FROM system_modules WHERE id = $1`, id).Scan(&code)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && code == nil):
		return fmt.Sprint(id), nil
	case err != nil:
		return "", fmt.Errorf("read system_modules %d: %w", id, err)
	}
	return fmt.Sprintf("%d (%s)", id, *code), nil
}

// parseConfigValue accepts what parseDays accepts, also wrapped in an
// object's "value".
func parseConfigValue(raw json.RawMessage) ([]int, error) {
	raw = workers.UnwrapSetting(raw)
	return parseDays(raw)
}
