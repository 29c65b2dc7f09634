// Package config reads the daemon's configuration from environment variables,
// the only place in the program that does.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Defaults of Config.
const (
	DefaultHTTPAddr        = "127.0.0.1:9464"
	DefaultLogLevel        = slog.LevelInfo
	DefaultSoftStopTimeout = 30 * time.Second
	DefaultWorkers         = 10
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
	// (Docker secrets, systemd credentials); used when DATABASE_URL is empty.
	DatabaseURLFile string `env:"DATABASE_URL_FILE,file"`

	// HTTPAddr is the listen address of the health and metrics endpoints.
	// Defaults to 127.0.0.1:9464.
	HTTPAddr string `env:"ATIS_HTTP_ADDR"`

	// LogFormat is "text" (human-readable, coloured) or "json". Defaults to
	// text when stderr is a terminal, json otherwise.
	LogFormat string `env:"ATIS_LOG_FORMAT"`

	// LogLevel is debug, info, warn or error. Defaults to info.
	LogLevel *slog.Level `env:"ATIS_LOG_LEVEL"`

	// SoftStopTimeout is how long a shutdown waits for running jobs before
	// cancelling them (River then retries them). Defaults to 30 seconds.
	SoftStopTimeout time.Duration `env:"ATIS_SOFT_STOP_TIMEOUT"`

	// Workers is the most jobs this process runs at once. Defaults to 10.
	Workers int `env:"ATIS_WORKERS"`
}

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
	c = c.WithDefaults()
	return c, c.Validate()
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.DatabaseURL = cmp.Or(c.DatabaseURL, strings.TrimSpace(c.DatabaseURLFile))
	c.HTTPAddr = cmp.Or(c.HTTPAddr, DefaultHTTPAddr)
	if c.LogLevel == nil {
		level := DefaultLogLevel
		c.LogLevel = &level
	}
	c.SoftStopTimeout = cmp.Or(c.SoftStopTimeout, DefaultSoftStopTimeout)
	c.Workers = cmp.Or(c.Workers, DefaultWorkers)
	return c
}

// Validate checks every field and names the variable of the first bad one.
func (c Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
		return fmt.Errorf("ATIS_HTTP_ADDR=%q is not a host:port listen address (e.g. 127.0.0.1:9464)", c.HTTPAddr)
	}
	switch c.LogFormat {
	case LogFormatAuto, LogFormatJSON, LogFormatText:
	default:
		return fmt.Errorf("ATIS_LOG_FORMAT=%q is not one of text, json", c.LogFormat)
	}
	if c.Workers < 1 || c.Workers > 10000 {
		return fmt.Errorf("ATIS_WORKERS=%d is out of range: it must be between 1 and 10000", c.Workers)
	}
	if c.SoftStopTimeout < 0 {
		return fmt.Errorf("ATIS_SOFT_STOP_TIMEOUT=%s must not be negative", c.SoftStopTimeout)
	}
	return nil
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
var secretVars = map[string]bool{"DATABASE_URL": true}

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
		msgs = append(msgs, fmt.Sprintf("%s=%s is not a valid %s", name, value, describe(pe.Type)))
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
	default:
		return t.String()
	}
}
