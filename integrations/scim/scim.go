// Package scim is the `scim` integration provider, for integration_type
// sso: users, and groups when configured, from a SCIM 2.0 service provider
// (RFC 7643/7644: Keycloak, Entra ID, Okta and others), paged with
// startIndex and count.
package scim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/tidwall/gjson"

	"github.com/atis-edu/atis-scheduler/integrations/internal/pull"
)

// Defaults and bounds of Config.
const (
	DefaultPageSize     = 100
	MaxPageSize         = 1000
	DefaultMaxPages     = 100_000
	DefaultMaxPageBytes = 16 << 20
	DefaultTimeout      = ratelimit.DefaultRequestTimeout
)

// Resource types a Config may list.
const (
	Users  = "Users"
	Groups = "Groups"
)

// Config is the integration's config column for scim.
type Config struct {
	// BaseURL is the SCIM base ("https://idp.example.az/scim/v2"); the
	// resources are read from BaseURL/Users and BaseURL/Groups.
	BaseURL string `json:"base_url"`
	// Resources are Users and/or Groups. Defaults to ["Users"].
	Resources []string `json:"resources"`
	// PageSize is the count asked for per page, 1 to 1000. Defaults to 100.
	PageSize int `json:"page_size"`
	// FilterLastModified says the server supports
	// filter=meta.lastModified gt "<since>": syncs after the first are
	// then incremental. Defaults to false (every sync is full).
	FilterLastModified bool `json:"filter_last_modified"`
	pull.Settings
	// MaxPages per resource type. Defaults to 100000.
	MaxPages int `json:"max_pages"`
	// MaxPageBytes is the largest page body read. Defaults to 16 MiB.
	MaxPageBytes int64 `json:"max_page_bytes"`
}

// Provider is the scim provider.
type Provider struct{}

// Supports implements provider.Provider: sso integrations, incremental
// when filter_last_modified is set.
func (Provider) Supports(integrationType string, raw json.RawMessage) (bool, bool) {
	cfg, err := parseConfig(raw)
	return integrationType == "sso", err == nil && cfg.FilterLastModified
}

func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("scim config: %w", err)
		}
	}
	if _, err := pull.ParseURL("scim", "base_url", c.BaseURL); err != nil {
		return c, err
	}
	var err error
	if c.AllowedOrigins, err = pull.ParseOrigins("scim", c.AllowedOrigins); err != nil {
		return c, err
	}
	if len(c.Resources) == 0 {
		c.Resources = []string{Users}
	}
	for _, r := range c.Resources {
		if r != Users && r != Groups {
			return c, fmt.Errorf(`scim config: resource %q is not "Users" or "Groups"`, r)
		}
	}
	switch {
	case c.PageSize < 0 || c.PageSize > MaxPageSize:
		return c, fmt.Errorf("scim config: page_size %d is not between 1 and %d", c.PageSize, MaxPageSize)
	case c.TimeoutSeconds < 0, c.MaxPageBytes < 0, c.MaxPages < 0, c.MaxRetries != nil && *c.MaxRetries < 0:
		return c, errors.New("scim config: timeout_seconds, max_page_bytes, max_pages and max_retries must not be negative")
	}
	c.PageSize = cmp.Or(c.PageSize, DefaultPageSize)
	c.MaxPages = cmp.Or(c.MaxPages, DefaultMaxPages)
	c.MaxPageBytes = cmp.Or(c.MaxPageBytes, DefaultMaxPageBytes)
	return c, nil
}

// Fetch implements provider.Provider. Page numbers run on across the
// resource types.
func (Provider) Fetch(ctx context.Context, req provider.FetchRequest, emit func(provider.Page) error) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return provider.ConfigError(err)
	}
	creds, err := pull.ParseCredentials("scim", req.Credentials, pull.Bearer, pull.Basic)
	if err != nil {
		return provider.ConfigError(err)
	}
	base, _ := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	client, ctx := pull.NewClient(ctx, req.Client, pull.Options{Base: base, Settings: cfg.Settings, DefaultTimeout: DefaultTimeout,
		Credentials: creds, Accept: "application/scim+json, application/json"})
	l := &lister{cfg: cfg, client: client, base: base}
	if req.Incremental {
		l.filter = fmt.Sprintf("meta.lastModified gt %q", req.Since.UTC().Format(time.RFC3339))
	}
	for _, resource := range cfg.Resources {
		if err := l.list(ctx, resource, emit); err != nil {
			return err
		}
	}
	return nil
}

type lister struct {
	cfg    Config
	client *pull.Client
	base   *url.URL
	filter string
	page   int // the sync's page number, across resource types
}

// list reads every page of one resource type: startIndex is 1-based and
// advances by the resources a page held (a server that ignores count and
// answers more is followed), until it passes totalResults or a page is
// empty.
func (l *lister) list(ctx context.Context, resource string, emit func(provider.Page) error) error {
	for start, pages := 1, 1; ; pages++ {
		l.page++
		if pages > l.cfg.MaxPages {
			return fmt.Errorf("page %d: %s: more than max_pages (%d) pages: stopping (does the server ignore startIndex?)", l.page, resource, l.cfg.MaxPages)
		}
		body, err := l.get(ctx, resource, start)
		if err != nil {
			return err
		}
		p, total, n, err := l.parse(body, resource, start)
		if err != nil {
			return err
		}
		if err := emit(p); err != nil {
			return err
		}
		start += n
		if n == 0 || start > total {
			return nil
		}
	}
}

func (l *lister) get(ctx context.Context, resource string, start int) ([]byte, error) {
	u := l.base.JoinPath(resource)
	q := u.Query()
	q.Set("startIndex", strconv.Itoa(start))
	q.Set("count", strconv.Itoa(l.cfg.PageSize))
	if l.filter != "" {
		q.Set("filter", l.filter)
	}
	u.RawQuery = q.Encode()
	resp, err := l.client.Get(ctx, u.String(), l.page)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.Contains(ct, "json") {
		return nil, fmt.Errorf("page %d: %s: the server answered %q, not application/scim+json", l.page, resource, ct)
	}
	body, err := l.client.Read(resp, l.cfg.MaxPageBytes, u.String())
	switch {
	case errors.Is(err, pull.ErrTooLarge):
		return nil, fmt.Errorf("page %d: %s: the body is larger than max_page_bytes (%d bytes)", l.page, resource, l.cfg.MaxPageBytes)
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("page %d: %s: reading the body: %w", l.page, resource, err)
	}
	return body, nil
}

// parse reads a ListResponse: its records, totalResults and how many
// resources it held.
func (l *lister) parse(body []byte, resource string, start int) (provider.Page, int, int, error) {
	p := provider.Page{Number: l.page, Bytes: int64(len(body))}
	if !gjson.ValidBytes(body) {
		return p, 0, 0, fmt.Errorf("page %d: %s: malformed JSON (%s)", l.page, resource, pull.Preview(body))
	}
	doc := gjson.ParseBytes(body)
	total := doc.Get("totalResults")
	if total.Type != gjson.Number {
		return p, 0, 0, fmt.Errorf("page %d: %s: not a SCIM ListResponse: no totalResults (%s)", l.page, resource, pull.Preview(body))
	}
	if got := doc.Get("startIndex"); got.Exists() && got.Int() != int64(start) && len(doc.Get("Resources").Array()) > 0 {
		return p, 0, 0, fmt.Errorf("page %d: %s: asked for startIndex %d, the server answered startIndex %d: it does not page", l.page, resource, start, got.Int())
	}
	items := doc.Get("Resources").Array()
	for i, item := range items {
		id := item.Get("id")
		switch {
		case !item.IsObject():
			p.Invalid = append(p.Invalid, fmt.Sprintf("%s resource %d: not an object: %s", resource, start+i, pull.Preview([]byte(item.Raw))))
		case id.Type != gjson.String || id.String() == "":
			p.Invalid = append(p.Invalid, fmt.Sprintf("%s resource %d: no \"id\": %s", resource, start+i, pull.Preview([]byte(item.Raw))))
		default:
			p.Records = append(p.Records, provider.Record{ExternalID: externalID(resource, id.String()), Payload: json.RawMessage(item.Raw)})
		}
	}
	return p, int(total.Int()), len(items), nil
}

// externalID is a user's id as the server gives it; a group's is prefixed
// "Groups/", so that the two never collide.
func externalID(resource, id string) string {
	if resource == Groups {
		return Groups + "/" + id
	}
	return id
}
