package delivery

import (
	"encoding/json"
	"net/url"
	"strings"
)

// redact replaces in s every string value of credentials (and its URL
// escapings) of four characters or more: a provider's error may quote a
// URL or a reply that carries one.
func redact(s string, credentials json.RawMessage) string {
	var v any
	if json.Unmarshal(credentials, &v) != nil {
		return s
	}
	for _, secret := range strings_(v) {
		if len(secret) < 4 {
			continue
		}
		for _, form := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret)} {
			s = strings.ReplaceAll(s, form, "[redacted]")
		}
	}
	return s
}

// strings_ lists the string values in v, at any depth.
func strings_(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, strings_(x)...)
		}
		return out
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, strings_(x)...)
		}
		return out
	}
	return nil
}
