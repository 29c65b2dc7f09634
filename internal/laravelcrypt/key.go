package laravelcrypt

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Key is an application key: the web app's APP_KEY, decoded. It is 16
// bytes (AES-128) or 32 (AES-256). It never prints itself: fmt, slog and
// encoding/json all show "(hidden)".
type Key []byte

// Keys are the keys to try, the current one first, then previous ones (as
// Laravel's APP_PREVIOUS_KEYS).
type Keys []Key

const hidden = "(hidden)"

// ParseKey reads a key as Laravel writes APP_KEY: "base64:" and the base64
// of the key, or the key's raw bytes. Surrounding white space is ignored.
// Its errors never quote the key.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("the key is empty")
	}
	k := Key(s)
	if b64, ok := strings.CutPrefix(s, "base64:"); ok {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, errors.New(`the part after "base64:" is not valid base64`)
		}
		k = raw
	}
	if len(k) != 16 && len(k) != 32 {
		return nil, fmt.Errorf("the key is %d bytes; it must be 32 (AES-256) or 16 (AES-128), e.g. base64: and 44 characters", len(k))
	}
	return k, nil
}

// UnmarshalText parses text with ParseKey; empty text leaves k empty (no
// key), as an empty item of APP_PREVIOUS_KEYS is.
func (k *Key) UnmarshalText(text []byte) error {
	if strings.TrimSpace(string(text)) == "" {
		*k = nil
		return nil
	}
	parsed, err := ParseKey(string(text))
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}

// MarshalText hides the key.
func (k Key) MarshalText() ([]byte, error) { return []byte(hidden), nil }

// Format hides the key whatever the verb.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(hidden)) }

// String hides the key.
func (k Key) String() string { return hidden }

// set returns the keys that are not empty, in order.
func (ks Keys) set() Keys {
	out := make(Keys, 0, len(ks))
	for _, k := range ks {
		if len(k) > 0 {
			out = append(out, k)
		}
	}
	return out
}
