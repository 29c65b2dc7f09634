// Package httpjson is the `http_json` integration provider: a generic pull
// of records from a REST API that answers JSON, with page, offset, cursor,
// Link-header or no pagination.
package httpjson

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/tidwall/gjson"
	"github.com/tomnomnom/linkheader"

	"github.com/atis-edu/atis-scheduler/integrations/internal/pull"
	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// Defaults of Config.
const (
	DefaultMaxPageBytes = 16 << 20
	DefaultMaxPages     = 100_000
	DefaultMaxRetries   = pull.DefaultMaxRetries
	DefaultPageSize     = 100
	DefaultTimeout      = ratelimit.DefaultRequestTimeout
)

// Config is the integration's config column for http_json.
type Config struct {
	// Settings: a next page on an origin not allowed fails the sync.
	pull.Settings
	BaseURL           string            `json:"base_url"`
	Headers           map[string]string `json:"headers"`
	IDField           string            `json:"id_field"`
	MaxPageBytes      int64             `json:"max_page_bytes"`
	MaxPages          int               `json:"max_pages"`
	Pagination        Pagination        `json:"pagination"`
	RecordsPath       string            `json:"records_path"`
	UpdatedSinceParam string            `json:"updated_since_param"`
}

// Pagination says how to ask for the next page.
type Pagination struct {
	// Type is page, offset, cursor, link or none (the default).
	Type string `json:"type"`

	PageParam string `json:"page_param"`
	SizeParam string `json:"size_param"`
	PageSize  int    `json:"page_size"`

	OffsetParam string `json:"offset_param"`
	LimitParam  string `json:"limit_param"`
	Limit       int    `json:"limit"`

	CursorParam    string `json:"cursor_param"`
	NextCursorPath string `json:"next_cursor_path"`
}

// Provider is the http_json provider.
type Provider struct{}

// supportedTypes are the integration types whose data is records to pull.
var supportedTypes = []string{"api", "payment", "lms", "data_import", "calendar", "storage"}

// Supports implements provider.Provider.
func (Provider) Supports(integrationType string, raw json.RawMessage) (bool, bool) {
	cfg, err := parseConfig(raw)
	return slices.Contains(supportedTypes, integrationType), err == nil && cfg.UpdatedSinceParam != ""
}

func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("http_json config: %w", err)
		}
	}
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		return c, errors.New(`http_json config: "base_url" is required`)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return c, fmt.Errorf(`http_json config: "base_url" %q is not an absolute http(s) URL`, redact.URL(c.BaseURL))
	case c.IDField == "":
		return c, errors.New(`http_json config: "id_field" is required`)
	case c.TimeoutSeconds < 0, c.MaxPageBytes < 0, c.MaxPages < 0, c.MaxRetries != nil && *c.MaxRetries < 0:
		return c, errors.New("http_json config: timeout_seconds, max_page_bytes, max_pages and max_retries must not be negative")
	}
	if c.AllowedOrigins, err = pull.ParseOrigins("http_json", c.AllowedOrigins); err != nil {
		return c, err
	}
	p := &c.Pagination
	switch p.Type {
	case "", "none", "link":
	case "page":
		p.PageParam, p.SizeParam, p.PageSize = cmp.Or(p.PageParam, "page"), cmp.Or(p.SizeParam, "per_page"), cmp.Or(p.PageSize, DefaultPageSize)
	case "offset":
		p.OffsetParam, p.LimitParam, p.Limit = cmp.Or(p.OffsetParam, "offset"), cmp.Or(p.LimitParam, "limit"), cmp.Or(p.Limit, DefaultPageSize)
	case "cursor":
		if p.CursorParam == "" || p.NextCursorPath == "" {
			return c, errors.New(`http_json config: cursor pagination needs "cursor_param" and "next_cursor_path"`)
		}
	default:
		return c, fmt.Errorf(`http_json config: pagination type %q is not one of page, offset, cursor, link, none`, p.Type)
	}
	c.MaxPageBytes = cmp.Or(c.MaxPageBytes, DefaultMaxPageBytes)
	c.MaxPages = cmp.Or(c.MaxPages, DefaultMaxPages)
	return c, nil
}

// Fetch implements provider.Provider.
func (Provider) Fetch(ctx context.Context, req provider.FetchRequest, emit func(provider.Page) error) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return provider.ConfigError(err)
	}
	creds, err := pull.ParseCredentials("http_json", req.Credentials, pull.Bearer, pull.Basic, pull.APIKey)
	if err != nil {
		return provider.ConfigError(err)
	}
	base, _ := url.Parse(cfg.BaseURL)
	client, ctx := pull.NewClient(ctx, req.Client, pull.Options{Base: base, Settings: cfg.Settings, DefaultTimeout: DefaultTimeout,
		Credentials: creds, Headers: cfg.Headers, Accept: "application/json"})
	f := &fetcher{cfg: cfg, client: client}

	next, err := f.firstURL(req)
	if err != nil {
		return err
	}
	fetched := map[string]int{} // URL -> page: a next link back to one is a loop
	for page := 1; next != ""; page++ {
		if page > cfg.MaxPages {
			return fmt.Errorf("page %d: more than max_pages (%d) pages: stopping (does the pagination loop?)", page, cfg.MaxPages)
		}
		if before, ok := fetched[next]; ok {
			return fmt.Errorf("page %d: the next page is page %d again: the pagination loops; stopping", page, before)
		}
		fetched[next] = page
		body, header, err := f.get(ctx, next, page)
		if err != nil {
			return err
		}
		p, items, err := f.parse(body, page)
		if err != nil {
			return err
		}
		if err := emit(p); err != nil {
			return err
		}
		if next, err = f.nextURL(next, header, body, items, page); err != nil {
			return err
		}
	}
	return nil
}

type fetcher struct {
	cfg    Config
	client *pull.Client
}

func (f *fetcher) firstURL(req provider.FetchRequest) (string, error) {
	u, _ := url.Parse(f.cfg.BaseURL)
	q := u.Query()
	if req.Incremental && f.cfg.UpdatedSinceParam != "" {
		q.Set(f.cfg.UpdatedSinceParam, req.Since.UTC().Format(time.RFC3339))
	}
	p := f.cfg.Pagination
	switch p.Type {
	case "page":
		q.Set(p.PageParam, "1")
		q.Set(p.SizeParam, strconv.Itoa(p.PageSize))
	case "offset":
		q.Set(p.OffsetParam, "0")
		q.Set(p.LimitParam, strconv.Itoa(p.Limit))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// get fetches one page, with retries, each attempt within timeout_seconds
// (body included), and reads at most max_page_bytes of it.
func (f *fetcher) get(ctx context.Context, target string, page int) ([]byte, http.Header, error) {
	resp, err := f.client.Get(ctx, target, page)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := f.client.Read(resp, f.cfg.MaxPageBytes, target)
	switch {
	case errors.Is(err, pull.ErrTooLarge):
		return nil, nil, fmt.Errorf("page %d: %s: the body is larger than max_page_bytes (%d bytes)", page, redact.URL(target), f.cfg.MaxPageBytes)
	case err != nil && ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case err != nil:
		return nil, nil, fmt.Errorf("page %d: %s: reading the body: %w", page, redact.URL(target), err)
	}
	return body, resp.Header, nil
}

func (f *fetcher) parse(body []byte, page int) (provider.Page, []gjson.Result, error) {
	p := provider.Page{Number: page, Bytes: int64(len(body))}
	if !gjson.ValidBytes(body) {
		return p, nil, fmt.Errorf("page %d: malformed JSON (%s)", page, pull.Preview(body))
	}
	if nesting(body) > MaxNesting {
		return p, nil, fmt.Errorf("page %d: JSON nested more than %d levels deep: such records cannot be stored", page, MaxNesting)
	}
	list := gjson.ParseBytes(body)
	if f.cfg.RecordsPath != "" {
		list = list.Get(f.cfg.RecordsPath)
	}
	switch {
	case !list.Exists():
		return p, nil, fmt.Errorf("page %d: nothing at records_path %q", page, f.cfg.RecordsPath)
	case !list.IsArray():
		return p, nil, fmt.Errorf("page %d: records_path %q is not a list but %s", page, f.cfg.RecordsPath, kind(list))
	}
	items := list.Array()
	idPath := gjsonEscape(f.cfg.IDField)
	for i, item := range items {
		id := item.Get(idPath)
		switch {
		case !item.IsObject():
			p.Invalid = append(p.Invalid, fmt.Sprintf("item %d: not an object: %s", i, pull.Preview([]byte(item.Raw))))
		case !id.Exists() || id.Type == gjson.Null || id.String() == "" || id.IsObject() || id.IsArray():
			p.Invalid = append(p.Invalid, fmt.Sprintf("item %d: no %q: %s", i, f.cfg.IDField, pull.Preview([]byte(item.Raw))))
		default:
			p.Records = append(p.Records, provider.Record{ExternalID: id.String(), Payload: json.RawMessage(item.Raw)})
		}
	}
	return p, items, nil
}

func (f *fetcher) nextURL(current string, header http.Header, body []byte, items []gjson.Result, page int) (string, error) {
	p := f.cfg.Pagination
	u, _ := url.Parse(current)
	q := u.Query()
	switch p.Type {
	case "page":
		if len(items) < p.PageSize {
			return "", nil
		}
		q.Set(p.PageParam, strconv.Itoa(page+1))
	case "offset":
		if len(items) < p.Limit {
			return "", nil
		}
		offset, _ := strconv.Atoi(q.Get(p.OffsetParam))
		q.Set(p.OffsetParam, strconv.Itoa(offset+len(items)))
	case "cursor":
		cursor := gjson.GetBytes(body, p.NextCursorPath)
		if !cursor.Exists() || cursor.Type == gjson.Null || cursor.String() == "" {
			return "", nil
		}
		q.Set(p.CursorParam, cursor.String())
	case "link":
		for _, l := range linkheader.ParseMultiple(header.Values("Link")) {
			if l.Rel == "next" {
				next, err := u.Parse(l.URL)
				if err != nil {
					return "", fmt.Errorf("page %d: a Link rel=next that is not a URL", page)
				}
				return next.String(), nil
			}
		}
		return "", nil
	default:
		return "", nil
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// MaxNesting is the deepest JSON a page may hold. PostgreSQL refuses to
// store much deeper jsonb ("stack depth limit exceeded"), and no record of
// an API is that deep but by accident or malice.
const MaxNesting = 512

// nesting is how deep b's arrays and objects go, counted up to
// MaxNesting+1; b is valid JSON.
func nesting(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > deepest {
				if deepest = depth; deepest > MaxNesting {
					return deepest
				}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func kind(r gjson.Result) string {
	switch {
	case r.IsObject():
		return "an object"
	case r.Type == gjson.String:
		return "a string"
	case r.Type == gjson.Number:
		return "a number"
	default:
		return r.Type.String()
	}
}

// gjsonEscape makes a field name a literal gjson path unless it is a dotted
// path of plain names.
func gjsonEscape(field string) string { return gjsonEscaper.Replace(field) }

// gjsonEscaper is built once: building a Replacer allocates its tables,
// and a sync of a million records once spent a quarter of its CPU doing so.
var gjsonEscaper = strings.NewReplacer("*", `\*`, "?", `\?`, "#", `\#`, "|", `\|`, "@", `\@`)
