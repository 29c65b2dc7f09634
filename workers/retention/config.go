package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/workers"
)

type days struct {
	days   int
	source string // parameters, system_configs, global_settings or default
}

// resolveDays finds each target's days to keep: parameters, else
// system_configs key retention.<table>.days (scope global), else
// platform.global_settings key retention.<table>.days, else the default.
// A malformed value leaves its table out and is returned as an error.
func resolveDays(ctx context.Context, reader settings.Reader, params map[string]json.RawMessage) (map[string]days, []string) {
	out := map[string]days{}
	var errs []string
	keys := make([]string, len(Targets))
	for i, t := range Targets {
		keys[i] = "retention." + t.Name + ".days"
	}
	configs, err := reader.Latest(ctx, keys, "global")
	if err != nil {
		errs = append(errs, fmt.Sprintf("read retention settings: %v", err))
	}
	byKey := map[string]settings.Setting{}
	for _, c := range configs {
		byKey[c.Key] = c
	}
	global, err := readSettings(ctx, reader.Pool, `SELECT key, value FROM platform.global_settings
		WHERE key = ANY($1) AND deleted_at IS NULL`, keys)
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, t := range Targets {
		key := "retention." + t.Name + ".days"
		var raw json.RawMessage
		var source, where string
		config, hasConfig := byKey[key]
		switch {
		case params[t.Name] != nil:
			raw, source, where = params[t.Name], "parameters", "parameters tables."+t.Name
		case hasConfig && config.Err != nil: // it names the row and never quotes the value
			errs = append(errs, fmt.Sprintf("%v; %s was not purged", config.Err, t.Name))
			continue
		case hasConfig:
			raw, source, where = config.Value, "system_configs", "system_configs "+key
		case global[key] != nil:
			raw, source, where = global[key], "global_settings", "platform.global_settings "+key
		default:
			out[t.Name] = days{days: t.DefaultDays, source: "default"}
			continue
		}
		d, err := parseDays(raw)
		if err != nil && source == "system_configs" && config.Encrypted {
			err = errors.New("the decrypted value is not whole days to keep (0 keeps forever)")
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v; %s was not purged", where, err, t.Name))
			continue
		}
		out[t.Name] = days{days: d, source: source}
	}
	return out, errs
}

func readSettings(ctx context.Context, pool *pgxpool.Pool, sql string, keys []string) (map[string]json.RawMessage, error) {
	rows, err := pool.Query(ctx, sql, keys)
	if err != nil {
		return nil, fmt.Errorf("read retention settings: %w", err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var k string
		var v json.RawMessage
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// parseDays reads whole days to keep: a JSON number, a string holding one,
// or either wrapped in {"value": …}. 0 keeps forever.
func parseDays(raw json.RawMessage) (int, error) {
	raw = workers.UnwrapSetting(raw)
	text := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 || n > 36500 {
		return 0, fmt.Errorf("expected whole days to keep (0 keeps forever), got %s", raw)
	}
	return n, nil
}
