// Package ics is the `ics` integration provider, for integration_type
// calendar: an iCalendar feed (RFC 5545) such as school holidays or an exam
// calendar, one record per event, parsed with github.com/emersion/go-ical.
package ics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/emersion/go-ical"

	"github.com/atis-edu/atis-scheduler/integrations/internal/pull"
)

// Defaults of Config.
const (
	DefaultMaxBytes = 16 << 20
	DefaultTimeout  = ratelimit.DefaultRequestTimeout
)

// Config is the integration's config column for ics.
type Config struct {
	// URL is the feed's address (http or https; webcal:// is written
	// https://).
	URL string `json:"url"`
	// Timezone is the zone of times written without one (floating), when
	// the feed has no X-WR-TIMEZONE. Defaults to UTC.
	Timezone string `json:"timezone"`
	pull.Settings
	// MaxBytes is the largest feed read. Defaults to 16 MiB.
	MaxBytes int64 `json:"max_bytes"`
}

// Provider is the ics provider.
type Provider struct{}

// Supports implements provider.Provider: calendar integrations, full
// syncs only (a feed is always whole).
func (Provider) Supports(integrationType string, _ json.RawMessage) (bool, bool) {
	return integrationType == "calendar", false
}

func parseConfig(raw json.RawMessage) (Config, *time.Location, error) {
	var c Config
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, nil, fmt.Errorf("ics config: %w", err)
		}
	}
	if _, err := pull.ParseURL("ics", "url", c.URL); err != nil {
		return c, nil, err
	}
	var err error
	if c.AllowedOrigins, err = pull.ParseOrigins("ics", c.AllowedOrigins); err != nil {
		return c, nil, err
	}
	loc, err := time.LoadLocation(cmp.Or(c.Timezone, "UTC"))
	if err != nil {
		return c, nil, fmt.Errorf("ics config: timezone %q is not an IANA time zone like Asia/Baku", c.Timezone)
	}
	if c.TimeoutSeconds < 0 || c.MaxBytes < 0 || c.MaxRetries != nil && *c.MaxRetries < 0 {
		return c, nil, errors.New("ics config: timeout_seconds, max_bytes and max_retries must not be negative")
	}
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultMaxBytes)
	return c, loc, nil
}

// Fetch implements provider.Provider. The feed is one page. An event
// that cannot be read (a malformed content line, no UID, a time that is not
// one, an unknown TZID, an RRULE that does not parse) is an invalid record
// naming its line; a feed that is not iCalendar outside its events, or ends
// before END:VCALENDAR, fails the sync.
func (Provider) Fetch(ctx context.Context, req provider.FetchRequest, emit func(provider.Page) error) error {
	cfg, floating, err := parseConfig(req.Config)
	if err != nil {
		return provider.ConfigError(err)
	}
	body, err := download(ctx, cfg, req)
	if err != nil {
		return err
	}
	f, err := parse(body)
	if err != nil {
		return err
	}
	if tz := f.calendar.Props.Get("X-WR-TIMEZONE"); tz != nil && cfg.Timezone == "" {
		if loc, err := time.LoadLocation(tz.Value); err == nil {
			floating = loc
		}
	}
	p := provider.Page{Number: 1, Bytes: int64(len(body))}
	for i, ev := range f.events {
		if ev.err != nil {
			p.Invalid = append(p.Invalid, fmt.Sprintf("event %d (line %d): %v", i+1, ev.line, ev.err))
			continue
		}
		rec, err := record(ev.event.Props, floating)
		if err != nil {
			p.Invalid = append(p.Invalid, fmt.Sprintf("event %d (line %d%s): %v", i+1, ev.line, uidOf(ev.event.Props), err))
			continue
		}
		p.Records = append(p.Records, rec)
	}
	return emit(p)
}

func download(ctx context.Context, cfg Config, req provider.FetchRequest) ([]byte, error) {
	creds, err := pull.ParseCredentials("ics", req.Credentials, pull.Bearer, pull.Basic)
	if err != nil {
		return nil, provider.ConfigError(err)
	}
	u, _ := url.Parse(cfg.URL)
	client, ctx := pull.NewClient(ctx, req.Client, pull.Options{Base: u, Settings: cfg.Settings, DefaultTimeout: DefaultTimeout,
		Credentials: creds, Accept: "text/calendar"})
	resp, err := client.Get(ctx, cfg.URL, 1)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := client.Read(resp, cfg.MaxBytes, cfg.URL)
	switch {
	case errors.Is(err, pull.ErrTooLarge):
		return nil, fmt.Errorf("page 1: the feed is larger than max_bytes (%d bytes)", cfg.MaxBytes)
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("page 1: reading the feed: %w", err)
	}
	return body, nil
}

// event is a record's payload: the event's properties, its times
// normalised and rules as written.
type event struct {
	UID          string    `json:"uid"`
	RecurrenceID *when     `json:"recurrence_id,omitempty"`
	Summary      string    `json:"summary,omitempty"`
	Description  string    `json:"description,omitempty"`
	Location     string    `json:"location,omitempty"`
	Status       string    `json:"status,omitempty"`
	Categories   []string  `json:"categories,omitempty"`
	Start        *when     `json:"start"`
	End          *when     `json:"end,omitempty"`
	Duration     string    `json:"duration,omitempty"`
	RRule        string    `json:"rrule,omitempty"`
	RDate        []written `json:"rdate,omitempty"`
	ExDate       []written `json:"exdate,omitempty"`
	Sequence     string    `json:"sequence,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
}

// when is a time: an instant in UTC with the zone and wall time it was
// written in, or, for an all-day event, a date.
type when struct {
	UTC      string `json:"utc,omitempty"`
	TZID     string `json:"tzid,omitempty"`
	Local    string `json:"local,omitempty"`
	Floating bool   `json:"floating,omitempty"`
	Date     string `json:"date,omitempty"`
}

// written is a property kept as written (EXDATE, RDATE).
type written struct {
	Value     string `json:"value"`
	TZID      string `json:"tzid,omitempty"`
	ValueType string `json:"value_type,omitempty"`
}

func record(props ical.Props, floating *time.Location) (provider.Record, error) {
	var ev event
	var err error
	if ev.UID, err = text(props, ical.PropUID); err != nil || ev.UID == "" {
		return provider.Record{}, errors.New("no UID")
	}
	if props.Get(ical.PropDateTimeStart) == nil {
		return provider.Record{}, errors.New("no DTSTART")
	}
	for name, dst := range map[string]**when{ical.PropDateTimeStart: &ev.Start, ical.PropDateTimeEnd: &ev.End, ical.PropRecurrenceID: &ev.RecurrenceID} {
		if *dst, err = timeOf(props.Get(name), floating); err != nil {
			return provider.Record{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if d := props.Get(ical.PropDuration); d != nil {
		if _, err := d.Duration(); err != nil {
			return provider.Record{}, fmt.Errorf("DURATION %q is not a duration", d.Value)
		}
		ev.Duration = d.Value
	}
	if r := props.Get(ical.PropRecurrenceRule); r != nil {
		if _, err := props.RecurrenceRule(); err != nil {
			return provider.Record{}, fmt.Errorf("RRULE %q does not parse: %w", r.Value, err)
		}
		ev.RRule = r.Value
	}
	ev.RDate, ev.ExDate = asWritten(props, ical.PropRecurrenceDates), asWritten(props, ical.PropExceptionDates)
	ev.Summary, _ = text(props, ical.PropSummary)
	ev.Description, _ = text(props, ical.PropDescription)
	ev.Location, _ = text(props, ical.PropLocation)
	ev.Status, _ = text(props, ical.PropStatus)
	for _, c := range props.Values(ical.PropCategories) {
		list, _ := c.TextList()
		ev.Categories = append(ev.Categories, list...)
	}
	if s := props.Get(ical.PropSequence); s != nil {
		ev.Sequence = s.Value
	}
	if lm, _ := props.DateTime(ical.PropLastModified, time.UTC); !lm.IsZero() {
		ev.LastModified = lm.UTC().Format(time.RFC3339)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return provider.Record{}, err
	}
	return provider.Record{ExternalID: externalID(ev.UID, ev.RecurrenceID), Payload: payload}, nil
}

// externalID is the UID, and for an overridden instance of a recurring
// event its RECURRENCE-ID too ("uid/20260915T050000Z" or "uid/20260915").
func externalID(uid string, rid *when) string {
	switch {
	case rid == nil:
		return uid
	case rid.Date != "":
		return uid + "/" + strings.ReplaceAll(rid.Date, "-", "")
	default:
		t, _ := time.Parse(time.RFC3339, rid.UTC)
		return uid + "/" + t.Format("20060102T150405Z")
	}
}

// timeOf reads a DATE or DATE-TIME property.
func timeOf(prop *ical.Prop, floating *time.Location) (*when, error) {
	if prop == nil {
		return nil, nil
	}
	if prop.ValueType() == ical.ValueDate || (prop.ValueType() == ical.ValueDefault && len(prop.Value) == len("20060102")) {
		d, err := time.Parse("20060102", prop.Value)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date", prop.Value)
		}
		return &when{Date: d.Format(time.DateOnly)}, nil
	}
	tzid := prop.Params.Get(ical.PropTimezoneID)
	loc := floating
	if tzid != "" {
		var err error
		if loc, err = time.LoadLocation(tzid); err != nil {
			return nil, fmt.Errorf("TZID %q is not an IANA time zone like Asia/Baku", tzid)
		}
	}
	t, err := prop.DateTime(loc)
	if err != nil {
		return nil, fmt.Errorf("%q is not a date-time", prop.Value)
	}
	w := &when{UTC: t.UTC().Format(time.RFC3339), TZID: tzid}
	if !strings.HasSuffix(prop.Value, "Z") {
		w.Local = t.Format("2006-01-02T15:04:05")
		w.Floating = tzid == ""
		if w.Floating {
			w.TZID = loc.String()
		}
	}
	return w, nil
}

func asWritten(props ical.Props, name string) []written {
	var out []written
	for _, p := range props.Values(name) {
		out = append(out, written{Value: p.Value, TZID: p.Params.Get(ical.PropTimezoneID), ValueType: p.Params.Get(ical.ParamValue)})
	}
	return out
}

func text(props ical.Props, name string) (string, error) {
	if props.Get(name) == nil {
		return "", nil
	}
	return props.Text(name)
}

// uidOf names an event in an invalid record's sample.
func uidOf(props ical.Props) string {
	if p := props.Get(ical.PropUID); p != nil && p.Value != "" {
		v := p.Value
		if len(v) > 60 {
			v = v[:60] + "…"
		}
		return fmt.Sprintf(", UID %q", v)
	}
	return ""
}
