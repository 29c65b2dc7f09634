// Package integrationsync is the `integration_sync` job class: one sync of
// one integration, run by the sync engine (integrations.Engine).
package integrationsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Name is the class name.
const Name = integrations.SyncClassName

// New returns the integration_sync class, whose runs engine syncs.
//
// Parameters: integration_id (required), sync_type (full or incremental;
// default full on the first sync, incremental afterwards when the provider
// supports it).
func New(engine *integrations.Engine) workers.Class {
	return workers.Define(workers.Definition[integrations.SyncParams]{
		Name:  Name,
		Parse: Parse,
		Resolve: func(ctx context.Context, args workers.Args) (integrations.SyncParams, error) {
			return resolve(ctx, engine, args)
		},
		Timeout: func(integrations.SyncParams) time.Duration { return 2 * time.Hour },
		Run: func(ctx context.Context, job workers.Job[integrations.SyncParams]) (any, error) {
			res, err := engine.Sync(ctx, job.Params, job.Args.ExecutedBy)
			if errors.Is(err, provider.ErrPermanent) {
				return res, workers.Permanent(err)
			}
			return res, err
		},
	})
}

// resolve reads a run's parameters and checks that its integration exists
// and is enabled: what `jobs validate` checks, and every attempt before it
// syncs.
func resolve(ctx context.Context, engine *integrations.Engine, args workers.Args) (integrations.SyncParams, error) {
	p, err := Parse(args.Parameters)
	if err != nil {
		return p, workers.Permanent(err)
	}
	if engine == nil || engine.Pool == nil {
		return p, nil
	}
	var (
		name    string
		enabled bool
	)
	err = engine.Pool.QueryRow(ctx, `SELECT name, coalesce(is_enabled, false) FROM integrations WHERE id = $1`, p.IntegrationID).Scan(&name, &enabled)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return p, workers.Permanent(fmt.Errorf("integration_sync: integration %d does not exist (integrations.id)", p.IntegrationID))
	case err != nil:
		return p, fmt.Errorf("integration_sync: read integration %d: %w", p.IntegrationID, err)
	case !enabled:
		return p, workers.Permanent(fmt.Errorf("integration_sync: integration %d (%s) is disabled: set integrations.is_enabled, or pause this schedule",
			p.IntegrationID, name))
	}
	return p, nil
}

// Parse reads and checks an integration_sync run's parameters.
func Parse(raw json.RawMessage) (integrations.SyncParams, error) {
	var p integrations.SyncParams
	if err := workers.DecodeParameters(Name, raw, &p); err != nil {
		return p, err
	}
	switch {
	case p.IntegrationID <= 0:
		return p, errors.New(`integration_sync parameters: "integration_id" is required`)
	case p.SyncType != "" && p.SyncType != integrations.SyncFull && p.SyncType != integrations.SyncIncremental:
		return p, fmt.Errorf(`integration_sync parameters: "sync_type" %q is not full or incremental`, p.SyncType)
	}
	return p, nil
}
