package cli

import (
	"encoding/json"
	"testing"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/workers"
)

// FuzzValidateParameters: whatever an admin writes in
// scheduled_jobs.parameters, no job class of the daemon's registry panics
// validating it, and the redacted form of it shown in job_logs is JSON.
func FuzzValidateParameters(f *testing.F) {
	registry, err := newRegistry(config.Config{EnableSQLJobs: true}, nil, nil, dbtest.Logger())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"url": "https://example.test/x", "headers": {"A": "b", "C": {"from_config": "k"}}}`,
		`{"statement": "SELECT 1", "timeout_seconds": 5}`, `{"warning_days": [30, 7, 1]}`, `{"warning_days": "30,7"}`,
		`{"tables": {"audit_logs": 10}, "batch_size": 100, "archive_dir": "/tmp/a"}`,
		`{"integration_id": 1, "sync_type": "incremental"}`, `{"integration_id": 1e400}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		for _, name := range registry.Names() {
			class, _ := registry.Lookup(name)
			_ = class.ValidateParameters(json.RawMessage(params))
			if red, ok := class.(workers.Redactor); ok {
				if out := red.Redact(json.RawMessage(params)); !json.Valid(out) {
					t.Fatalf("%s: Redact(%q) = %q: not JSON", name, params, out)
				}
			}
		}
	})
}
