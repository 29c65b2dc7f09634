package delivery

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// DefaultDigestOver is how many pending notifications of one integration
// are sent one by one; above it they go as one digest. Config key
// digest_over.
const DefaultDigestOver = 10

// DefaultMaxAttempts is how many times one delivery is tried before it is
// given up (status failed). Config key max_attempts.
const DefaultMaxAttempts = 10

// Levels are system_notifications.level values from least to most severe;
// success ranks with info.
var levelRank = map[string]int{"info": 0, "success": 0, "warning": 1, "danger": 2}

// Settings are the config keys every delivery integration shares: which
// notifications it wants, and how they are sent.
type Settings struct {
	// MinLevel is the least severe level sent (info, success, warning,
	// danger). Defaults to info: every level.
	MinLevel string `json:"min_level"`
	// Types, when set, are the only notification types sent.
	Types []string `json:"types"`
	// Institutions, when set, are the institution ids whose notifications
	// are sent: a notification is sent when it targets one of them or
	// every institution (empty target_institutions). When unset, an
	// integration that belongs to an institution (institution_id, not
	// is_system_wide) takes that institution; otherwise every notification.
	Institutions []FlexInt `json:"institutions"`
	// DigestOver: above this many pending notifications, one digest is
	// sent instead. Defaults to DefaultDigestOver.
	DigestOver int `json:"digest_over"`
	// MaxAttempts per delivery. Defaults to DefaultMaxAttempts.
	MaxAttempts int `json:"max_attempts"`
}

// FlexInt is an id written as a JSON number or string.
type FlexInt int64

// UnmarshalJSON accepts 12 and "12".
func (f *FlexInt) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an id", s)
		}
		*f = FlexInt(n)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%s is not an id", b)
	}
	*f = FlexInt(n)
	return nil
}

// ParseSettings reads the shared keys of an integration's config, with
// defaults filled.
func ParseSettings(config json.RawMessage) (Settings, error) {
	var s Settings
	if len(config) > 0 {
		if err := json.Unmarshal(config, &s); err != nil {
			return s, fmt.Errorf("config: %w", err)
		}
	}
	s.MinLevel = cmp.Or(s.MinLevel, "info")
	s.DigestOver = cmp.Or(s.DigestOver, DefaultDigestOver)
	s.MaxAttempts = cmp.Or(s.MaxAttempts, DefaultMaxAttempts)
	return s, s.validate()
}

func (s Settings) validate() error {
	if _, ok := levelRank[s.MinLevel]; !ok {
		return fmt.Errorf("config.min_level %q is not info, success, warning or danger", s.MinLevel)
	}
	if s.DigestOver < 1 {
		return fmt.Errorf("config.digest_over %d must be at least 1", s.DigestOver)
	}
	if s.MaxAttempts < 1 {
		return fmt.Errorf("config.max_attempts %d must be at least 1", s.MaxAttempts)
	}
	return nil
}

// levels lists the levels at or above MinLevel.
func (s Settings) levels() []string {
	var out []string
	for l, r := range levelRank {
		if r >= levelRank[s.MinLevel] {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// institutionTexts returns the institution filter as text (how
// jsonb_array_elements_text reads target_institutions), own the
// integration's institution when the config names none.
func (s Settings) institutionTexts(own *int64, systemWide bool) []string {
	out := []string{}
	for _, id := range s.Institutions {
		out = append(out, strconv.FormatInt(int64(id), 10))
	}
	if len(out) == 0 && own != nil && !systemWide {
		out = append(out, strconv.FormatInt(*own, 10))
	}
	return out
}
