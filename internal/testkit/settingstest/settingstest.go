// Package settingstest writes system_configs values as the web app writes
// them, for tests.
package settingstest

import (
	"encoding/json"
	"testing"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
)

// Encrypted is the config_value of a row stored with is_encrypted: the JSON
// string of Laravel's payload of plain, encrypted with key.
func Encrypted(tb testing.TB, plain string, key laravelcrypt.Key) json.RawMessage {
	tb.Helper()
	payload, err := laravelcrypt.EncryptString([]byte(plain), key)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
