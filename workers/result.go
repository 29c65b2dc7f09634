package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

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

// PermanentReason returns the message of a Permanent error (what an admin
// must fix) and true, or "" and false for any other error.
func PermanentReason(err error) (string, bool) {
	var cancel *river.JobCancelError
	if !errors.As(err, &cancel) {
		return "", false
	}
	if inner := errors.Unwrap(cancel); inner != nil {
		return inner.Error(), true
	}
	return cancel.Error(), true
}

// DecodeParameters decodes a run's parameters into dst, rejecting unknown
// fields, with an error that names the class.
func DecodeParameters(class string, params json.RawMessage, dst any) error {
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	if err := CheckObject(class, params); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("%s parameters: %q must be %s, got %s", class, typeErr.Field, typeName(typeErr.Type), typeErr.Value)
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

// CheckObject says, in an admin's words, when parameters are not a JSON
// object (a string, a list: what a form or a careless UPDATE writes).
func CheckObject(class string, params json.RawMessage) error {
	if kind := jsonKind(params); kind != "an object" {
		return fmt.Errorf("%s parameters must be a JSON object such as {\"key\": \"value\"}, not %s", class, kind)
	}
	return nil
}

// jsonKind names the kind of a JSON text's value, as a person would.
func jsonKind(raw json.RawMessage) string {
	switch t := bytes.TrimSpace(raw); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '{':
		return "an object"
	case t[0] == '[':
		return "a list"
	case t[0] == '"':
		return "a string"
	case t[0] == 't' || t[0] == 'f':
		return "true or false"
	case t[0] == 'n':
		return "null"
	default:
		return "a number"
	}
}

// typeName says a Go type as JSON does: no Go type names reach admins.
func typeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return "a JSON value"
}
