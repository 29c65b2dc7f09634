package dashboard

import (
	"bytes"
	"encoding/json"
	"regexp"

	"github.com/atis-edu/atis-scheduler/workers"
)

// secretKey matches JSON keys whose values are never shown, whatever the
// class said: a second line of defence for classes without a Redactor and
// for rows the web app wrote.
var secretKey = regexp.MustCompile(`(?i)pass|secret|token|auth|credential|cookie|api[_-]?key|private|signature|^key$`)

const redacted = "[redacted]"

// redact returns raw with the value of every secret-looking key replaced,
// and every value of a "headers" object too (a {"from_config": …} reference
// names a key, not a value, and stays).
func redact(raw json.RawMessage) json.RawMessage {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) == 0 || dec.Decode(&v) != nil {
		return raw
	}
	b, err := json.Marshal(redactValue(v, false))
	if err != nil {
		return json.RawMessage(`"[unreadable]"`)
	}
	return b
}

func redactValue(v any, inHeaders bool) any {
	switch t := v.(type) {
	case map[string]any:
		if workers.IsConfigRef(t) {
			return t
		}
		for k, val := range t {
			if (inHeaders || secretKey.MatchString(k)) && !workers.IsConfigRef(val) {
				t[k] = redacted
				continue
			}
			t[k] = redactValue(val, k == "headers")
		}
		return t
	case []any:
		for i := range t {
			t[i] = redactValue(t[i], false)
		}
		return t
	case string:
		return hideURLCredentials(t)
	}
	return v
}

// urlCredentials matches the user:password of a URL inside free text.
var urlCredentials = regexp.MustCompile(`(://)[^/\s@]+@`)

// hideURLCredentials shows every URL in s as https://REDACTED@host/…: a
// JSON value that is a URL and a message that holds one alike.
func hideURLCredentials(s string) string {
	return urlCredentials.ReplaceAllString(s, "${1}REDACTED@")
}

// pretty indents JSON for a <pre>.
func pretty(raw json.RawMessage) string {
	var out bytes.Buffer
	if json.Indent(&out, raw, "", "  ") != nil {
		return string(raw)
	}
	return out.String()
}
