package licenses

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

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
func loadThresholds(ctx context.Context, pool *pgxpool.Pool, override []int) (thresholds, error) {
	t := thresholds{override: override, modules: map[int64][]int{}, badModule: map[int64]bool{}}
	if override != nil {
		return t, nil
	}
	rows, err := pool.Query(ctx, `SELECT DISTINCT ON (c.scope, c.scope_id) c.scope, c.scope_id, c.config_value, m.code
		FROM system_configs c LEFT JOIN system_modules m ON c.scope = 'module' AND m.id = c.scope_id
		WHERE c.config_key = $1 AND c.scope IN ('global', 'module')
		ORDER BY c.scope, c.scope_id, c.updated_at DESC NULLS LAST, c.id DESC`, ConfigKey)
	if err != nil {
		return t, fmt.Errorf("read %s: %w", ConfigKey, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			scope   string
			scopeID *int64
			value   json.RawMessage
			code    *string
		)
		if err := rows.Scan(&scope, &scopeID, &value, &code); err != nil {
			return t, err
		}
		days, perr := parseConfigValue(value)
		switch {
		case scope == "global" && perr != nil:
			t.badGlobal = true
			t.errors = append(t.errors, fmt.Sprintf("system_configs %s (scope global): %v", ConfigKey, perr))
		case scope == "global":
			t.global = days
		case scopeID == nil:
			t.errors = append(t.errors, fmt.Sprintf("system_configs %s (scope module) has no scope_id naming the module", ConfigKey))
		case perr != nil:
			t.badModule[*scopeID] = true
			name := fmt.Sprint(*scopeID)
			if code != nil {
				name = fmt.Sprintf("%d (%s)", *scopeID, *code)
			}
			t.errors = append(t.errors, fmt.Sprintf("system_configs %s (scope module, module %s): %v", ConfigKey, name, perr))
		default:
			t.modules[*scopeID] = days
		}
	}
	return t, rows.Err()
}

// parseConfigValue accepts what parseDays accepts, also wrapped in an
// object's "value".
func parseConfigValue(raw json.RawMessage) ([]int, error) {
	raw = workers.UnwrapSetting(raw)
	return parseDays(raw)
}
