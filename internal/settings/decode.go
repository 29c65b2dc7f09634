package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
)

// Data types of system_configs.data_type.
const (
	TypeString  = "string"
	TypeInteger = "integer"
	TypeBoolean = "boolean"
	TypeJSON    = "json"
	TypeArray   = "array"
)

// ValueError says why a system_configs value cannot be read. It names the
// row and never quotes the value.
type ValueError struct {
	// Name is the row: its key, and its scope unless global.
	Name string
	// Reason completes "system_configs <Name> …".
	Reason string
	// Err is the cause, if any (ErrNotFound, laravelcrypt's errors).
	Err error
}

func (e *ValueError) Error() string { return "system_configs " + e.Name + " " + e.Reason }

// Unwrap returns the cause.
func (e *ValueError) Unwrap() error { return e.Err }

// Decode returns a config_value as JSON. A plain row's value is returned as
// stored (the callers accept the shapes the web app writes, such as "30"
// for an integer). An encrypted row's value is a JSON string holding
// Laravel's payload: it is decrypted with keys, PHP-unserialized when
// Crypt::encrypt wrote it, and read as its data_type: string gives a JSON
// string; integer, boolean, json and array parse the plaintext as JSON of
// that kind. name names the row in errors (a *ValueError).
func Decode(name string, value json.RawMessage, dataType string, encrypted bool, keys laravelcrypt.Keys) (json.RawMessage, error) {
	if !encrypted {
		return value, nil
	}
	fail := func(reason string, err error) error { return &ValueError{Name: name, Reason: reason, Err: err} }
	var payload string
	if err := json.Unmarshal(value, &payload); err != nil {
		return nil, fail("is marked encrypted but config_value is not a JSON string holding the encrypted payload", nil)
	}
	plain, err := laravelcrypt.Decrypt(payload, keys)
	switch {
	case errors.Is(err, laravelcrypt.ErrNoKey):
		return nil, fail("is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it", err)
	case errors.Is(err, laravelcrypt.ErrMACMismatch):
		return nil, fail("could not be decrypted with ATIS_APP_KEY (MAC mismatch: is it the web app's APP_KEY?)", err)
	case err != nil:
		return nil, fail("is marked encrypted but could not be decrypted: "+err.Error(), err)
	}
	text, _ := laravelcrypt.Unserialize(plain)
	out, err := asType(dataType, text)
	if err != nil {
		return nil, fail(fmt.Sprintf("(data_type %s): the decrypted value %s", dataType, err), nil)
	}
	return out, nil
}

// asType reads a decrypted plaintext as JSON of dataType. Its errors
// complete "the decrypted value …" and never quote it.
func asType(dataType, text string) (json.RawMessage, error) {
	trimmed := strings.TrimSpace(text)
	switch dataType {
	case TypeString:
		return json.Marshal(text)
	case TypeInteger:
		n, err := strconv.ParseInt(trimmed, 10, 64)
		if err != nil {
			return nil, errors.New("is not a whole number")
		}
		return json.RawMessage(strconv.FormatInt(n, 10)), nil
	case TypeBoolean:
		switch trimmed {
		case "true", "1":
			return json.RawMessage("true"), nil
		case "false", "0":
			return json.RawMessage("false"), nil
		}
		return nil, errors.New("is not true, false, 1 or 0")
	case TypeJSON, TypeArray:
		if !json.Valid([]byte(trimmed)) {
			return nil, errors.New("is not JSON")
		}
		if dataType == TypeArray && !strings.HasPrefix(trimmed, "[") {
			return nil, errors.New("is not a JSON array")
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, []byte(trimmed)) // valid: checked above
		return compact.Bytes(), nil
	default:
		return nil, errors.New("cannot be read: that data_type is not one of string, integer, boolean, json, array")
	}
}
