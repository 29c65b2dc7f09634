// Package delivery pushes system_notifications rows to the integrations of
// type notification and email (webhooks, mail), each at most once per
// (notification, integration) while the daemon runs normally and at least
// once across crashes: see Dispatcher.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Provider delivers notifications to one kind of outside system. Each lives
// in a package of its own under integrations/; the dispatcher knows only
// this.
type Provider interface {
	// Supports reports whether the provider delivers integrations of this
	// integration_type.
	Supports(integrationType string) bool

	// Validate checks an integration's config and credentials; its error
	// names the field and never quotes a credential.
	Validate(config, credentials json.RawMessage) error

	// Deliver sends req.Notifications: one message each when req.Digest is
	// false (then there is exactly one), or one message listing them all.
	// It must return ctx's error when ctx ends. An error wrapping
	// ErrPermanent is not retried.
	Deliver(ctx context.Context, req Request) error
}

// Providers maps integrations.provider values to providers.
type Providers map[string]Provider

// Request is what a provider needs for one message.
type Request struct {
	// IntegrationID and IntegrationName name the integration.
	IntegrationID   int64
	IntegrationName string
	// Config and Credentials are the integration's columns. Credentials
	// must never appear in an error, a log line or a message.
	Config      json.RawMessage
	Credentials json.RawMessage
	// Notifications are what to send, oldest first.
	Notifications []Notification
	// Digest asks for one message listing every notification.
	Digest bool
	// IdempotencyKey is the same on every attempt to send the same
	// message; receivers can use it to drop a duplicate (webhook header,
	// e-mail Message-ID).
	IdempotencyKey string
	// Client makes every HTTP request: it honours api_rate_limit.
	Client *http.Client
	// Wait waits for a turn under api_rate_limit, for other protocols;
	// call it once per message sent.
	Wait func(context.Context) error
}

// Notification is one system_notifications row as it is delivered.
type Notification struct {
	ID                 int64     `json:"id"`
	Type               string    `json:"type"`
	Title              string    `json:"title"`
	Message            string    `json:"message"`
	Level              string    `json:"level"`
	ActionText         string    `json:"action_text,omitempty"`
	ActionURL          string    `json:"action_url,omitempty"`
	TargetInstitutions []int64   `json:"target_institutions"`
	CreatedAt          time.Time `json:"created_at"`
}

// ErrPermanent is wrapped by a provider's error when no retry will help (a
// bad config, a receiver that refuses the message as malformed).
var ErrPermanent = errors.New("delivery: permanent failure")

// Permanent wraps err with ErrPermanent.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }
