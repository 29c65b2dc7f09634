package ics_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/integrations/ics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigErrors(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct{ name, config, want string }{
		{"NoURL", `{}`, `ics config: "url" is required`},
		{"Webcal", `{"url": "webcal://calendar.example/exams.ics"}`, `"url" "webcal://calendar.example/exams.ics" is not an absolute http(s) URL`},
		{"UnknownZone", `{"url": "https://calendar.example/exams.ics", "timezone": "Baku"}`, `timezone "Baku" is not an IANA time zone`},
		{"NegativeMax", `{"url": "https://calendar.example/exams.ics", "max_bytes": -1}`, "must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ics.Provider{}.Fetch(context.Background(), provider.FetchRequest{Config: json.RawMessage(tt.config)},
				func(provider.Page) error { return nil })
			require.ErrorContains(t, err, tt.want)
		})
	}
}
