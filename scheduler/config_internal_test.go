package scheduler

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConfigsValidate: each component's defaults pass; each field out of
// range is refused with its name.
func TestConfigsValidate(t *testing.T) {
	t.Parallel()

	sched := Config{}.withDefaults()
	rec := NewRecorder(nil, nil, discard(), RecorderConfig{}).cfg
	recon := NewReconciler(nil, discard(), ReconcilerConfig{InstanceID: "x", HostKey: "k"}).cfg
	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{"SchedulerDefaults", sched.validate(), ""},
		{"BatchSize", with(sched, func(c *Config) { c.BatchSize = -1 }).validate(), "BatchSize -1"},
		{"BatchSizeHuge", with(sched, func(c *Config) { c.BatchSize = 1_000_000 }).validate(), "BatchSize 1000000"},
		{"MisfireGrace", with(sched, func(c *Config) { c.MisfireGrace = -time.Second }).validate(), "MisfireGrace -1s"},
		{"PollInterval", with(sched, func(c *Config) { c.PollInterval = -1 }).validate(), "PollInterval"},
		{"RunAllCap", with(sched, func(c *Config) { c.RunAllCap = -3 }).validate(), "RunAllCap -3"},
		{"RecorderDefaults", rec.validate(), ""},
		{"FailureAlertThreshold", with(rec, func(c *RecorderConfig) { c.FailureAlertThreshold = -1 }).validate(), "FailureAlertThreshold -1"},
		{"FlushInterval", with(rec, func(c *RecorderConfig) { c.FlushInterval = -1 }).validate(), "FlushInterval"},
		{"FlushSize", with(rec, func(c *RecorderConfig) { c.FlushSize = 0 }).validate(), "FlushSize 0"},
		{"ReconcilerDefaults", recon.validate(), ""},
		{"InstanceIDRequired", with(recon, func(c *ReconcilerConfig) { c.InstanceID = "" }).validate(), "InstanceID is required"},
		{"Interval", with(recon, func(c *ReconcilerConfig) { c.Interval = -1 }).validate(), "Interval"},
		{"AlertThreshold", with(recon, func(c *ReconcilerConfig) { c.AlertThreshold = 0 }).validate(), "AlertThreshold 0"},
		{"NewReconcilerRefusesNoID", NewReconciler(nil, discard(), ReconcilerConfig{HostKey: "k"}).err, "ID is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr == "" {
				require.NoError(t, tt.err)
				return
			}
			require.ErrorContains(t, tt.err, tt.wantErr)
		})
	}
}

func with[C any](c C, change func(*C)) C {
	change(&c)
	return c
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
