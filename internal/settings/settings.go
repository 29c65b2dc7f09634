// Package settings reads system_configs, the web app's settings table, as
// the web app means its rows: an is_encrypted value is decrypted with the
// app's key (ATIS_APP_KEY), and a decrypted plaintext becomes the JSON of
// its data_type. Every reader of system_configs in the daemon goes through
// it.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
)

// ErrNotFound is wrapped by Get's error when no row has the key.
var ErrNotFound = errors.New("settings: no such system_configs row")

// Reader reads system_configs.
type Reader struct {
	// Pool is the database.
	Pool *pgxpool.Pool

	// Keys decrypt encrypted rows: ATIS_APP_KEY, then ATIS_APP_PREVIOUS_KEYS.
	// Defaults to none: an encrypted row is then an error naming it.
	Keys laravelcrypt.Keys
}

// Setting is one system_configs row with its value decoded.
type Setting struct {
	Key     string
	Scope   string
	ScopeID *int64
	// Value is the JSON value; nil when Err is set.
	Value json.RawMessage
	// Encrypted is the row's is_encrypted: its value is not to be quoted
	// in messages.
	Encrypted bool
	// Err says why the value cannot be read (a *ValueError).
	Err error
}

// Name names the row in messages: its key, and its scope unless global.
func (s Setting) Name() string { return rowName(s.Key, s.Scope, s.ScopeID) }

func rowName(key, scope string, scopeID *int64) string {
	switch {
	case scope == "global" && scopeID == nil:
		return key
	case scopeID == nil:
		return fmt.Sprintf("%s (scope %s)", key, scope)
	default:
		return fmt.Sprintf("%s (scope %s, scope_id %d)", key, scope, *scopeID)
	}
}

// scopeGroup is scope_id, except that every global row is one group.
const scopeGroup = `CASE WHEN coalesce(scope, 'global') <> 'global' THEN scope_id END`

const columns = `config_key, coalesce(scope, 'global'), scope_id, config_value, data_type, coalesce(is_encrypted, false)`

// Get returns the value of key in scope: of the row with scopeID, or, with
// scopeID nil, of any row of the scope. Where several rows match, the most
// recently updated wins. A row that cannot be read gives a *ValueError, no
// row one that wraps ErrNotFound.
func (r Reader) Get(ctx context.Context, key, scope string, scopeID *int64) (json.RawMessage, error) {
	rows, err := r.Pool.Query(ctx, `SELECT `+columns+` FROM system_configs
		WHERE config_key = $1 AND coalesce(scope, 'global') = $2 AND ($3::bigint IS NULL OR scope_id = $3)
		ORDER BY updated_at DESC NULLS LAST, id DESC LIMIT 1`, key, scope, scopeID)
	if err != nil {
		return nil, fmt.Errorf("read system_configs %s: %w", rowName(key, scope, scopeID), err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, r.scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &ValueError{Name: rowName(key, scope, scopeID), Reason: "is not set", Err: ErrNotFound}
	}
	if err != nil {
		return nil, fmt.Errorf("read system_configs %s: %w", rowName(key, scope, scopeID), err)
	}
	return s.Value, s.Err
}

// Latest returns the rows of keys in scopes, one per key and scope (and
// scope_id, but for scope global): the most recently updated where several
// share them (the table's unique key does not hold for a NULL scope_id).
// They come ordered by key, scope and scope_id. A row that cannot be read
// has its Err set; the error is the query's.
func (r Reader) Latest(ctx context.Context, keys []string, scopes ...string) ([]Setting, error) {
	rows, err := r.Pool.Query(ctx, `SELECT DISTINCT ON (config_key, coalesce(scope, 'global'), `+scopeGroup+`) `+columns+`
		FROM system_configs WHERE config_key = ANY($1) AND coalesce(scope, 'global') = ANY($2)
		ORDER BY config_key, coalesce(scope, 'global'), `+scopeGroup+`, updated_at DESC NULLS LAST, id DESC`, keys, scopes)
	if err != nil {
		return nil, fmt.Errorf("read system_configs: %w", err)
	}
	out, err := pgx.CollectRows(rows, r.scan)
	if err != nil {
		return nil, fmt.Errorf("read system_configs: %w", err)
	}
	return out, nil
}

func (r Reader) scan(row pgx.CollectableRow) (Setting, error) {
	var (
		s        Setting
		raw      json.RawMessage
		dataType string
	)
	if err := row.Scan(&s.Key, &s.Scope, &s.ScopeID, &raw, &dataType, &s.Encrypted); err != nil {
		return s, err
	}
	s.Value, s.Err = Decode(s.Name(), raw, dataType, s.Encrypted, r.Keys)
	return s, nil
}
