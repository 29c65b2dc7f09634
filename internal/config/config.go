// Package config reads the daemon's configuration from environment variables,
// the only place in the program that does.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/schedule"

	"github.com/atis-edu/atis-scheduler/scheduler"

	"github.com/caarlos0/env/v11"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
)

// Defaults of Config. A setting that configures a component takes that
// component's own default.
const (
	DefaultFailureAlertThreshold = scheduler.DefaultFailureAlertThreshold
	DefaultHTTPAddr              = "127.0.0.1:9464"
	DefaultJobTimeout            = 30 * time.Minute
	DefaultLogLevel              = slog.LevelInfo
	DefaultMisfireGrace          = scheduler.DefaultMisfireGrace
	DefaultPollInterval          = scheduler.DefaultPollInterval
	DefaultPrepareAhead          = scheduler.DefaultPrepareAhead
	DefaultSoftStopTimeout       = 30 * time.Second
	DefaultWorkers               = 100
	DefaultFetchCooldown         = 10 * time.Millisecond
	DefaultFetchPollInterval     = time.Second
	DefaultRecordFlushInterval   = scheduler.DefaultRecordFlushInterval
	DefaultRiverJobRetention     = 24 * time.Hour
	DefaultDBTimeZone            = "UTC"
	DefaultRiverUI               = SwitchOn
	// MaxDefaultDBConns caps the pool size derived from ATIS_WORKERS.
	MaxDefaultDBConns = 20
)

// Log formats accepted by ATIS_LOG_FORMAT.
const (
	LogFormatAuto = ""
	LogFormatJSON = "json"
	LogFormatText = "text"
)

// Config is the daemon's configuration. Load fills it from the environment;
// command-line flags may then override fields.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (postgres://…). Required
	// by every command that touches the database. No default.
	DatabaseURL string `env:"DATABASE_URL"`

	// DatabaseURLFile is the content of the file named by DATABASE_URL_FILE
	// (Docker secrets); used when DATABASE_URL is empty.
	DatabaseURLFile string `env:"DATABASE_URL_FILE,file"`

	// AppKey is the web app's APP_KEY ("base64:" and 44 characters, or 32
	// raw bytes), to read the system_configs rows it encrypted. Defaults to
	// none: reading an encrypted row is then an error naming it.
	AppKey laravelcrypt.Key `env:"ATIS_APP_KEY"`

	// AppKeyFile is the key read from the file named by ATIS_APP_KEY_FILE
	// (Docker secrets, systemd credentials); used when AppKey is empty.
	AppKeyFile laravelcrypt.Key `env:"ATIS_APP_KEY_FILE,file"`

	// AppPreviousKeys are the web app's APP_PREVIOUS_KEYS (comma-separated),
	// tried after AppKey while values encrypted before a key rotation
	// remain. Defaults to none.
	AppPreviousKeys []laravelcrypt.Key `env:"ATIS_APP_PREVIOUS_KEYS"`

	// ArchiveDir is where log retention archives rows before deleting them
	// (gzip JSON lines under <dir>/<table>/), unless a run's parameters say
	// otherwise. Defaults to none: no archive.
	ArchiveDir string `env:"ATIS_ARCHIVE_DIR"`

	// ImportDir is the only directory whose files a csv integration's
	// config.file may name (a path inside it; no "..", no symbolic link
	// out). Defaults to none: no integration reads a file.
	ImportDir string `env:"ATIS_IMPORT_DIR"`

	// CredentialsDirectory is systemd's $CREDENTIALS_DIRECTORY; its
	// credential "database-url" (LoadCredential=) is used when neither
	// DATABASE_URL nor DATABASE_URL_FILE is set.
	CredentialsDirectory string `env:"CREDENTIALS_DIRECTORY"`

	// EnableSQLJobs allows the `sql` job class, which lets anyone who can
	// write scheduled_jobs run SQL as the daemon's role. Defaults to false.
	EnableSQLJobs bool `env:"ATIS_ENABLE_SQL_JOBS"`

	// FailureAlertThreshold is how many runs of one schedule must fail in a
	// row before admins get a notification. Defaults to 3.
	FailureAlertThreshold int `env:"ATIS_FAILURE_ALERT_THRESHOLD"`

	// HTTPAddr is the listen address of the health and metrics endpoints.
	// Defaults to 127.0.0.1:9464.
	HTTPAddr string `env:"ATIS_HTTP_ADDR"`

	// JobClassAliases maps other names of job classes (such as the Laravel
	// app's App\Jobs\… class names) to ours: "App\Jobs\Ping=http_request,…".
	// Defaults to none.
	JobClassAliases map[string]string `env:"ATIS_JOB_CLASS_ALIASES" envKeyValSeparator:"="`

	// JobTimeout bounds a run of a class that sets no timeout of its own.
	// Defaults to 30 minutes.
	JobTimeout time.Duration `env:"ATIS_JOB_TIMEOUT"`

	// LogFormat is "text" (human-readable, coloured) or "json". Defaults to
	// text when stderr is a terminal, json otherwise.
	LogFormat string `env:"ATIS_LOG_FORMAT"`

	// LogLevel is debug, info, warn or error. Defaults to info.
	LogLevel *slog.Level `env:"ATIS_LOG_LEVEL"`

	// MisfireGrace is how late a tick may fire and still count as on time
	// under misfire_policy 'skip'. Defaults to 1 minute.
	MisfireGrace time.Duration `env:"ATIS_MISFIRE_GRACE"`

	// PollInterval is how often schedules are re-read when no change
	// notification arrives (a safety net). Defaults to 10 seconds.
	PollInterval time.Duration `env:"ATIS_POLL_INTERVAL"`

	// SoftStopTimeout is how long a shutdown waits for running jobs before
	// cancelling them (River then retries them). Defaults to 30 seconds.
	SoftStopTimeout time.Duration `env:"ATIS_SOFT_STOP_TIMEOUT"`

	// HTTPS says that browsers reach the dashboard over HTTPS (a TLS proxy
	// in front): its cookies are then Secure. Defaults to false.
	HTTPS bool `env:"ATIS_HTTPS"`

	// TrustedProxies are the proxies (IP addresses or CIDR ranges,
	// comma-separated) whose X-Forwarded-For and X-Forwarded-Proto the
	// dashboard believes: for the client's address (sign-in limits, audit
	// rows) and for Secure cookies. Defaults to none.
	TrustedProxies []Prefix `env:"ATIS_TRUSTED_PROXIES"`

	// RedactKeys are patterns (regular expressions, separated by spaces) of
	// JSON keys whose values are secrets, beyond the names that say so
	// (password, secret, token, key…): hidden from job_logs, logs, the CLI
	// and the dashboard. Defaults to none.
	RedactKeys []Regexp `env:"ATIS_REDACT_KEYS" envSeparator:" "`

	// RedactPatterns are patterns (regular expressions, separated by
	// spaces) of URL path segments and values that are secrets, beyond the
	// token shapes recognised (bot123:…, JWTs, long runs of letters and
	// digits). Defaults to none.
	RedactPatterns []Regexp `env:"ATIS_REDACT_PATTERNS" envSeparator:" "`

	// UIToken is the dashboard's credential: who presents it may pause,
	// resume and run schedules, and, when the listener is not on loopback,
	// read any dashboard page. At least MinUITokenLength characters.
	// Defaults to none: actions are off, and so is the whole dashboard on a
	// non-loopback listener.
	UIToken Secret `env:"ATIS_UI_TOKEN"`

	// UITokenFile is the token read from the file named by
	// ATIS_UI_TOKEN_FILE (Docker secrets, systemd credentials); used when
	// UIToken is empty.
	UITokenFile Secret `env:"ATIS_UI_TOKEN_FILE,file"`

	// RiverUI serves River's own web UI at /river/ on the dashboard's
	// listener, to signed-in operators ("off" or "false" turns it off).
	// Defaults to on.
	RiverUI Switch `env:"ATIS_RIVER_UI"`

	// Workers is the most jobs this process runs at once. A worker that
	// waits costs a goroutine, not a connection: only work that queries the
	// database (sql, retention, syncs) holds one. Defaults to 100.
	Workers int `env:"ATIS_WORKERS"`

	// DBMaxConns is the most connections the daemon's pool opens (the
	// heartbeat and the change listener have one each besides). Defaults to
	// ATIS_WORKERS + 10, at most 20.
	DBMaxConns int `env:"ATIS_DB_MAX_CONNS"`

	// DBTimeZone is the IANA zone in which the database's TIMESTAMP columns
	// (without time zone) are written: the web app's app.timezone. The
	// daemon reads and writes them in that zone, and its sessions run in
	// it. Defaults to UTC.
	DBTimeZone string `env:"ATIS_DB_TIMEZONE"`

	// FetchCooldown is the shortest wait between two fetches of available
	// jobs: lower starts jobs sooner under load and costs more queries.
	// Defaults to 10 ms.
	FetchCooldown time.Duration `env:"ATIS_FETCH_COOLDOWN"`

	// FetchPollInterval is how often available jobs are looked for when no
	// insert notification arrives (a safety net). Defaults to 1 second.
	FetchPollInterval time.Duration `env:"ATIS_FETCH_POLL_INTERVAL"`

	// RecordFlushInterval is the longest a run's job_logs and bookkeeping
	// records wait in memory before they are written, together with the
	// others of their flush. Defaults to 50 ms.
	RecordFlushInterval time.Duration `env:"ATIS_RECORD_FLUSH_INTERVAL"`

	// PrepareAhead is how long before a due instant the runs due at it are
	// written, in a transaction committed at the instant; 0 turns it off.
	// Defaults to 2 seconds.
	PrepareAhead time.Duration `env:"ATIS_PREPARE_AHEAD"`

	// RiverJobRetention is how long River keeps a finished job (completed,
	// cancelled or discarded) in river_job before its job cleaner deletes
	// it. job_logs is the permanent record of every attempt; River's copy
	// serves River UI and lets the reconciler settle a run whose outcome a
	// crash kept out of job_logs. Defaults to 24 hours (River's own default
	// for completed and cancelled jobs; it keeps discarded ones 7 days).
	RiverJobRetention time.Duration `env:"ATIS_RIVER_JOB_RETENTION"`

	// OTLPEndpoint turns tracing on: where spans go, over OTLP/HTTP
	// (protobuf). The OpenTelemetry SDK reads it itself, with the other
	// OTEL_* variables (headers, timeout, sampler, service name…); it is
	// here only to say whether to trace. Defaults to none: tracing off.
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`

	// OTLPTracesEndpoint is OTLPEndpoint for traces alone; either turns
	// tracing on. Defaults to none.
	OTLPTracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`

	// OTelSDKDisabled turns tracing off whatever the endpoint
	// (OTEL_SDK_DISABLED=true, as the specification says). Defaults to
	// false.
	OTelSDKDisabled bool `env:"OTEL_SDK_DISABLED"`
}

// Tracing reports whether spans are exported: an OTLP endpoint is set and
// the SDK is not disabled.
func (c Config) Tracing() bool {
	return (c.OTLPEndpoint != "" || c.OTLPTracesEndpoint != "") && !c.OTelSDKDisabled
}

// Regexp is a regular expression from a setting.
type Regexp struct{ *regexp.Regexp }

// UnmarshalText compiles it.
func (r *Regexp) UnmarshalText(b []byte) error {
	re, err := regexp.Compile(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a regular expression: %w", string(b), err)
	}
	r.Regexp = re
	return nil
}

// Redaction is what the redaction settings add to internal/redact.
func (c Config) Redaction() redact.Settings {
	var s redact.Settings
	for _, r := range c.RedactKeys {
		s.Keys = append(s.Keys, r.Regexp)
	}
	for _, r := range c.RedactPatterns {
		s.Patterns = append(s.Patterns, r.Regexp)
	}
	return s
}

// Prefix is an IP address or a CIDR range, as ATIS_TRUSTED_PROXIES lists
// them.
type Prefix struct{ netip.Prefix }

// UnmarshalText reads "10.0.0.0/8" or "192.0.2.7" (a /32, or /128).
func (p *Prefix) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if pfx, err := netip.ParsePrefix(s); err == nil {
		p.Prefix = pfx.Masked()
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q is not an IP address or a CIDR range", s)
	}
	p.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
	return nil
}

// Proxies returns TrustedProxies as prefixes.
func (c Config) Proxies() []netip.Prefix {
	out := make([]netip.Prefix, len(c.TrustedProxies))
	for i, p := range c.TrustedProxies {
		out[i] = p.Prefix
	}
	return out
}

// Switch is an on/off setting: on, true, yes or 1; off, false, no or 0.
// Its zero value is unset: WithDefaults gives it the setting's default.
type Switch string

// Values of a Switch.
const (
	SwitchOn  Switch = "on"
	SwitchOff Switch = "off"
)

// UnmarshalText reads on/off, true/false, yes/no or 1/0, in any case.
func (s *Switch) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "on", "true", "yes", "1":
		*s = SwitchOn
	case "off", "false", "no", "0":
		*s = SwitchOff
	case "":
		*s = ""
	default:
		return fmt.Errorf("%q is not on or off", string(b))
	}
	return nil
}

// On says whether the switch is on.
func (s Switch) On() bool { return s == SwitchOn }

// MinUITokenLength is the shortest ATIS_UI_TOKEN accepted: a token guards
// actions, and every page on a non-loopback listener.
const MinUITokenLength = 16

// Secret is a configuration value that never prints.
type Secret string

// String hides the value.
func (Secret) String() string { return "(hidden)" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "(hidden)" }

// Load reads the configuration from the environment (environ, as os.Environ
// returns it), fills defaults and validates it. An error names the variable
// and what is wrong with its value.
func Load(environ []string) (Config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: vars}); err != nil {
		return c, explain(err, vars)
	}
	if c.DatabaseURL == "" && c.DatabaseURLFile == "" && c.CredentialsDirectory != "" {
		b, err := os.ReadFile(filepath.Join(c.CredentialsDirectory, "database-url"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return c, fmt.Errorf("read systemd credential database-url: %w", err)
		}
		c.DatabaseURLFile = string(b)
	}
	zeros := explicitZeros(c, vars)
	c = c.WithDefaults()
	for _, field := range zeros { // a zero written out is not "unset": Validate judges it
		reflect.ValueOf(&c).Elem().FieldByName(field).SetInt(0)
	}
	return c, c.Validate()
}

// Range is the documented range of a numeric setting (README's
// Configuration table): a count, or a duration in nanoseconds.
type Range struct {
	Var      string
	Min, Max int64
}

// Ranges are the bounds Validate enforces.
var Ranges = []Range{
	{"ATIS_WORKERS", 1, 10000},
	{"ATIS_DB_MAX_CONNS", 4, 1000},
	{"ATIS_FAILURE_ALERT_THRESHOLD", 1, 1000},
	{"ATIS_POLL_INTERVAL", int64(100 * time.Millisecond), int64(time.Hour)},
	{"ATIS_MISFIRE_GRACE", int64(time.Second), int64(24 * time.Hour)},
	{"ATIS_JOB_TIMEOUT", int64(time.Second), int64(7 * 24 * time.Hour)},
	{"ATIS_SOFT_STOP_TIMEOUT", int64(time.Second), int64(time.Hour)},     // River reads 0 as "wait for ever"
	{"ATIS_FETCH_COOLDOWN", int64(time.Millisecond), int64(time.Minute)}, // and at most ATIS_FETCH_POLL_INTERVAL
	{"ATIS_FETCH_POLL_INTERVAL", int64(time.Millisecond), int64(time.Minute)},
	{"ATIS_RECORD_FLUSH_INTERVAL", int64(time.Millisecond), int64(time.Hour)},
	{"ATIS_RIVER_JOB_RETENTION", int64(time.Minute), int64(30 * 24 * time.Hour)},
	{"ATIS_PREPARE_AHEAD", 0, int64(scheduler.MaxPrepareAhead)}, // 0: off
}

// explicitZeros lists the fields of the ranged settings whose variable is
// set to a zero value (ATIS_WORKERS=0), which WithDefaults would otherwise
// take for unset.
func explicitZeros(c Config, vars map[string]string) []string {
	var out []string
	v := reflect.ValueOf(c)
	for _, r := range Ranges {
		field := fieldOf(r.Var)
		if strings.TrimSpace(vars[r.Var]) != "" && v.FieldByName(field).Int() == 0 {
			out = append(out, field)
		}
	}
	return out
}

// fieldOf is the Config field read from variable name.
func fieldOf(name string) string {
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ","); tag == name {
			return t.Field(i).Name
		}
	}
	panic("config: no field reads " + name) // Ranges names a variable no field has: a bug caught by every test
}

// check says what is wrong with c's value of r, if anything.
func (r Range) check(c Config) error {
	f := reflect.ValueOf(c).FieldByName(fieldOf(r.Var))
	v := f.Int()
	if v >= r.Min && v <= r.Max {
		return nil
	}
	show := func(n int64) string { return fmt.Sprint(n) }
	if f.Type() == reflect.TypeFor[time.Duration]() {
		show = func(n int64) string { return schedule.ShortDuration(time.Duration(n)) }
	}
	return fmt.Errorf("%s=%s is out of range: it must be between %s and %s", r.Var, show(v), show(r.Min), show(r.Max))
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.DatabaseURL = cmp.Or(c.DatabaseURL, strings.TrimSpace(c.DatabaseURLFile))
	if len(c.AppKey) == 0 {
		c.AppKey = c.AppKeyFile
	}
	c.UIToken = cmp.Or(c.UIToken, Secret(strings.TrimSpace(string(c.UITokenFile))))
	c.FailureAlertThreshold = cmp.Or(c.FailureAlertThreshold, DefaultFailureAlertThreshold)
	c.HTTPAddr = cmp.Or(c.HTTPAddr, DefaultHTTPAddr)
	c.JobTimeout = cmp.Or(c.JobTimeout, DefaultJobTimeout)
	c.MisfireGrace = cmp.Or(c.MisfireGrace, DefaultMisfireGrace)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	if c.LogLevel == nil {
		level := DefaultLogLevel
		c.LogLevel = &level
	}
	c.SoftStopTimeout = cmp.Or(c.SoftStopTimeout, DefaultSoftStopTimeout)
	c.Workers = cmp.Or(c.Workers, DefaultWorkers)
	c.DBMaxConns = cmp.Or(c.DBMaxConns, min(c.Workers+10, MaxDefaultDBConns))
	c.DBTimeZone = cmp.Or(c.DBTimeZone, DefaultDBTimeZone)
	c.FetchCooldown = cmp.Or(c.FetchCooldown, DefaultFetchCooldown)
	c.FetchPollInterval = cmp.Or(c.FetchPollInterval, DefaultFetchPollInterval)
	c.RecordFlushInterval = cmp.Or(c.RecordFlushInterval, DefaultRecordFlushInterval)
	c.RiverJobRetention = cmp.Or(c.RiverJobRetention, DefaultRiverJobRetention)
	c.PrepareAhead = cmp.Or(c.PrepareAhead, DefaultPrepareAhead)
	c.RiverUI = cmp.Or(c.RiverUI, DefaultRiverUI)
	return c
}

// Validate checks every field and names the variable of the first bad one.
func (c Config) Validate() error {
	_, port, err := net.SplitHostPort(c.HTTPAddr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("ATIS_HTTP_ADDR=%q is not a host:port listen address with a port from 0 to 65535 (e.g. 127.0.0.1:9464)", c.HTTPAddr)
	}
	switch c.LogFormat {
	case LogFormatAuto, LogFormatJSON, LogFormatText:
	default:
		return fmt.Errorf("ATIS_LOG_FORMAT=%q is not one of text, json", c.LogFormat)
	}
	for _, r := range Ranges {
		if err := r.check(c); err != nil {
			return err
		}
	}
	if _, err := c.DBLocation(); err != nil {
		return err
	}
	if c.FetchPollInterval < c.FetchCooldown {
		return fmt.Errorf("ATIS_FETCH_COOLDOWN=%s must be at least 1ms and at most ATIS_FETCH_POLL_INTERVAL=%s", c.FetchCooldown, c.FetchPollInterval)
	}
	if c.ArchiveDir != "" && !filepath.IsAbs(c.ArchiveDir) {
		return fmt.Errorf("ATIS_ARCHIVE_DIR=%q must be an absolute path", c.ArchiveDir)
	}
	if c.ImportDir != "" && !filepath.IsAbs(c.ImportDir) {
		return fmt.Errorf("ATIS_IMPORT_DIR=%q must be an absolute path", c.ImportDir)
	}
	if n := len([]rune(string(c.UIToken))); n > 0 && n < MinUITokenLength {
		return fmt.Errorf("ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) is %d characters: use at least %d (e.g. openssl rand -hex 32)", n, MinUITokenLength)
	}
	return nil
}

// DBLocation is ATIS_DB_TIMEZONE as a location.
func (c Config) DBLocation() (*time.Location, error) {
	loc, err := time.LoadLocation(cmp.Or(c.DBTimeZone, DefaultDBTimeZone))
	if err != nil || strings.EqualFold(c.DBTimeZone, "local") {
		return nil, fmt.Errorf("ATIS_DB_TIMEZONE=%q is not a time zone: use an IANA name such as Asia/Baku or UTC (the web app's app.timezone)", c.DBTimeZone)
	}
	return loc, nil
}

// AppKeys are the keys that decrypt what the web app encrypted: AppKey,
// then AppPreviousKeys.
func (c Config) AppKeys() laravelcrypt.Keys {
	return append(laravelcrypt.Keys{c.AppKey}, c.AppPreviousKeys...)
}

// ErrNoDatabaseURL says that a command needs DATABASE_URL and it is not set.
var ErrNoDatabaseURL = errors.New("DATABASE_URL is not set: point it at the ATİS PostgreSQL database " +
	"(postgres://user:password@host:5432/dbname), or use `make run` for a private local one")

// RequireDatabase returns ErrNoDatabaseURL when DatabaseURL is empty.
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return ErrNoDatabaseURL
	}
	return nil
}

// secretVars are never quoted back in an error.
var secretVars = map[string]bool{"DATABASE_URL": true, "ATIS_APP_KEY": true, "ATIS_APP_PREVIOUS_KEYS": true, "ATIS_UI_TOKEN": true}

// explain turns env's field-named errors into ones naming the variable.
func explain(err error, vars map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			msgs = append(msgs, e.Error())
			continue
		}
		name := envName(pe.Name)
		value := fmt.Sprintf("%q", vars[name])
		if secretVars[name] {
			value = "(hidden)"
		}
		msg := fmt.Sprintf("%s=%s is not a valid %s", name, value, describe(pe.Type))
		if isKey(pe.Type) { // its errors never quote the key
			msg += ": " + pe.Err.Error()
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func envName(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return field
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

func isKey(t reflect.Type) bool {
	return t == reflect.TypeFor[laravelcrypt.Key]() || t == reflect.TypeFor[[]laravelcrypt.Key]()
}

func describe(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration (e.g. 30s, 5m)"
	case t == reflect.TypeFor[*slog.Level]():
		return "log level (debug, info, warn, error)"
	case t.Kind() == reflect.Int:
		return "whole number"
	case t.Kind() == reflect.Bool:
		return "boolean (true or false)"
	case t == reflect.TypeFor[Switch]():
		return "switch (on or off)"
	case isKey(t):
		return "application key (as the web app's APP_KEY: base64: and 44 characters)"
	case t.Kind() == reflect.Map:
		return "list of alias=class pairs separated by commas"
	case t == reflect.TypeFor[[]Prefix]():
		return "list of IP addresses or CIDR ranges separated by commas"
	case t == reflect.TypeFor[[]Regexp]():
		return "list of regular expressions separated by spaces"
	default:
		return t.String()
	}
}
