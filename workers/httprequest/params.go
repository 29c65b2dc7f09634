package httprequest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/workers"
)

// An http_request header value is a string, or a reference to a
// system_configs key (scope global) read at run time:
// {"from_config": "lms.api_token"}.
type header struct {
	name       string
	value      string // set at run time for a reference
	fromConfig string
}

// parseHeaders checks headers; its errors name the header, never its
// value.
func parseHeaders(raw map[string]json.RawMessage) ([]header, error) {
	out := make([]header, 0, len(raw))
	for name, v := range raw {
		h := header{name: name}
		if json.Unmarshal(v, &h.value) != nil {
			ref, ok := configRef(v)
			if !ok {
				return nil, fmt.Errorf(`http_request parameters: header %q must be a string or {"from_config": "<system_configs key>"}`, name)
			}
			h.fromConfig = ref
		}
		out = append(out, h)
	}
	return out, nil
}

// configRef returns the key of a {"from_config": "<key>"} reference.
func configRef(raw json.RawMessage) (string, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return redact.ConfigRef(v)
}

// paramSource reads what the queue does not carry: the parameters of a
// run whose queued ones are redacted, from its schedule, and the values of
// from_config headers, from system_configs.
type paramSource struct {
	settings settings.Reader // its Pool also holds the schedules
}

// params returns a run's parameters with every header value resolved.
// Whatever an admin must fix (a schedule gone, parameters that no longer
// validate, a config key missing or unreadable) is permanent; a database
// error is retried.
func (s paramSource) params(ctx context.Context, args workers.Args) (*Params, error) {
	raw := args.Parameters
	if args.ParametersRedacted {
		var err error
		if raw, err = s.scheduleParameters(ctx, args.ScheduledJobID); err != nil {
			return nil, err
		}
	}
	p, err := parse(raw)
	switch {
	case err != nil && args.ParametersRedacted:
		return nil, workers.Permanent(fmt.Errorf("scheduled job %d: its parameters no longer validate: %w", args.ScheduledJobID, err))
	case err != nil:
		return nil, workers.Permanent(err)
	}
	for i, h := range p.headers {
		if h.fromConfig == "" {
			continue
		}
		p.headers[i].value, err = s.configValue(ctx, h.fromConfig)
		var verr *settings.ValueError
		switch {
		case errors.As(err, &verr):
			return nil, workers.Permanent(fmt.Errorf("http_request: header %q: %w", h.name, err))
		case err != nil:
			return nil, fmt.Errorf("http_request: header %q: %w", h.name, err)
		}
	}
	return p, nil
}

// scheduleParameters reads the real parameters of a run whose queued ones
// are redacted.
func (s paramSource) scheduleParameters(ctx context.Context, id int64) (json.RawMessage, error) {
	if s.settings.Pool == nil {
		return nil, workers.Permanent(errors.New("http_request: the queued parameters are redacted and no database is configured to read them"))
	}
	var raw json.RawMessage
	err := s.settings.Pool.QueryRow(ctx, `SELECT coalesce(parameters, '{}'::jsonb) FROM scheduled_jobs WHERE id = $1`, id).Scan(&raw)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, workers.Permanent(fmt.Errorf("http_request: scheduled job %d is gone: its parameters (redacted in the queue) cannot be read", id))
	case err != nil:
		return nil, fmt.Errorf("http_request: read the parameters of scheduled job %d: %w", id, err)
	}
	return raw, nil
}

// configValue reads a from_config header's value: a string, or a number
// or boolean as its JSON text. What an admin must fix is a
// *settings.ValueError.
func (s paramSource) configValue(ctx context.Context, key string) (string, error) {
	if s.settings.Pool == nil {
		return "", &settings.ValueError{Name: key, Reason: "cannot be read: no database is configured"}
	}
	raw, err := s.settings.Get(ctx, key, "global", nil)
	if err != nil {
		return "", err
	}
	raw = workers.UnwrapSetting(raw)
	var v any
	_ = json.Unmarshal(raw, &v) // JSON from the database or from Decode
	switch v := v.(type) {
	case string:
		return v, nil
	case float64, bool:
		return string(raw), nil
	default:
		return "", &settings.ValueError{Name: key, Reason: "is not a string, a number or a boolean"}
	}
}
