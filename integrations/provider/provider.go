// Package provider is the contract between the sync engine and the pull
// providers (http_json, scim, ics, csv): what a provider is asked and what
// it answers. A provider package imports this, never the engine.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Provider pulls the records of one kind of outside system. Each lives in a
// package of its own under integrations/; the engine knows only this.
type Provider interface {
	// Supports reports whether the provider can sync integrations of this
	// integration_type, and whether it can sync incrementally with this
	// configuration.
	Supports(integrationType string, config json.RawMessage) (ok, incremental bool)

	// Fetch reads every page of records and hands each to emit, in order,
	// as it arrives. It must return ctx's error when ctx ends, and an error
	// naming the page when a page cannot be read or understood.
	Fetch(ctx context.Context, req FetchRequest, emit func(Page) error) error
}

// FetchRequest is what a provider needs for one sync.
type FetchRequest struct {
	// Config and Credentials are the integration's columns. Credentials
	// must never appear in an error, a log line or a record.
	Config      json.RawMessage
	Credentials json.RawMessage
	// Incremental asks for records changed since Since.
	Incremental bool
	Since       time.Time
	// Client makes every request: it honours the integration's rate limit
	// (ratelimit) and counts requests and retries.
	Client *http.Client
}

// Page is one page of records.
type Page struct {
	Number  int
	Records []Record
	// Invalid are items that are not records (not an object, no id); they
	// are counted as failed and a sample is kept.
	Invalid []string
	Bytes   int64
}

// Record is one record with its id at the provider.
type Record struct {
	ExternalID string
	Payload    json.RawMessage
}

// ErrPermanent marks failures that no retry will fix (configuration).
var ErrPermanent = errors.New("integrations: permanent failure")

// ConfigError marks err, a provider's refusal of its integration's config
// or credentials, as permanent: no retry fixes it, an admin must. The sync
// log shows err's message.
func ConfigError(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// ErrAuth is wrapped by a provider's error when the provider refused the
// credentials (HTTP 401 or 403): a security event is recorded.
var ErrAuth = errors.New("integrations: the provider refused the credentials")

// AuthError is a refusal of the credentials, with the status.
type AuthError struct {
	Status int
	Page   int
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("page %d: the provider answered %d %s: check the integration's credentials", e.Page, e.Status, http.StatusText(e.Status))
}

// Unwrap makes errors.Is(err, ErrAuth) true.
func (e *AuthError) Unwrap() error { return ErrAuth }

// Providers maps integrations.provider values to providers.
type Providers map[string]Provider
