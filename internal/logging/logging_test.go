package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/logging"
)

// TestDurations: JSON lines carry durations in milliseconds under a "_ms"
// key (they were raw nanoseconds, "duration":562052499); text lines in
// the form people read.
func TestDurations(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	logging.New(&buf, config.LogFormatJSON, slog.LevelInfo).Info("done", slog.Duration("duration", 562052499*time.Nanosecond))
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.Equal(t, 562.052, rec["duration_ms"])
	require.NotContains(t, rec, "duration")

	buf.Reset()
	logging.New(&buf, config.LogFormatText, slog.LevelInfo).Info("done", slog.Duration("duration", 562052499*time.Nanosecond))
	require.Contains(t, buf.String(), "duration=562.052499ms")
	require.False(t, strings.Contains(buf.String(), "562052499 "), buf.String())
}
