package dashboard

import (
	"bytes"
	"encoding/json"
)

// pretty indents JSON for a <pre>.
func pretty(raw json.RawMessage) string {
	var out bytes.Buffer
	if json.Indent(&out, raw, "", "  ") != nil {
		return string(raw)
	}
	return out.String()
}
