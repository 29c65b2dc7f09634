package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
)

type resultKey struct{}

// WithResult returns a context in which a worker's SetResult lands in *slot.
// The recorder of job_logs installs it around every run.
func WithResult(ctx context.Context, slot *any) context.Context {
	return context.WithValue(ctx, resultKey{}, slot)
}

// SetResult records the run's JSON summary (counts, status codes), written
// to job_logs.result. It must hold no secrets.
func SetResult(ctx context.Context, v any) {
	if slot, ok := ctx.Value(resultKey{}).(*any); ok {
		*slot = v
	}
}

// Permanent marks err as not worth retrying (bad parameters, a disabled
// class): the run is cancelled at once and the message shown as is.
func Permanent(err error) error { return river.JobCancel(err) }

// DecodeParameters decodes a run's parameters into dst, rejecting unknown
// fields, with an error that names the class.
func DecodeParameters(class string, params json.RawMessage, dst any) error {
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("%s parameters: %q must be %s, got %s", class, typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return fmt.Errorf("%s parameters: %w", class, err)
	}
	return nil
}

// UnwrapSetting returns v when a settings value (system_configs.config_value,
// platform.global_settings.value) is {"value": v}, else the value as is.
func UnwrapSetting(raw json.RawMessage) json.RawMessage {
	var wrapped struct {
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && len(wrapped.Value) > 0 {
		return wrapped.Value
	}
	return raw
}
