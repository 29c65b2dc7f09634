// Package tracing turns OpenTelemetry tracing on when the operator asks for
// it (OTEL_EXPORTER_OTLP_ENDPOINT, or its traces-only form): an OTLP/HTTP
// exporter and an SDK tracer provider installed as the global one. Off, it
// creates nothing: the global tracer stays OpenTelemetry's no-op, so the
// spans started across the daemon cost a context lookup each.
package tracing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// DefaultServiceName is the service.name spans carry unless
// OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "atis-scheduler"

// Config says whether and how to trace. The exporter, sampler and batching
// are configured by the standard OTEL_* variables, which the SDK reads.
type Config struct {
	// Enabled turns tracing on. Defaults to false.
	Enabled bool

	// ServiceName is the resource's service.name. Defaults to
	// DefaultServiceName.
	ServiceName string

	// Version is the resource's service.version. Defaults to none.
	Version string

	// Logger receives the SDK's errors (a collector that does not answer),
	// redacted, in place of the standard library's log. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Provider is the tracer provider Start installed, or nothing when tracing
// is off. Its zero value is off.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Start installs the global tracer provider when cfg.Enabled, exporting
// with OTLP/HTTP protobuf to where the OTEL_EXPORTER_OTLP_* variables say.
// Off, it returns an off Provider and leaves the global no-op alone.
func Start(ctx context.Context, cfg Config) (*Provider, error) {
	if !cfg.Enabled {
		return &Provider{}, nil
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("create the OTLP trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cmp.Or(cfg.ServiceName, DefaultServiceName))}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override ours.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, errors.Join(fmt.Errorf("describe the traced service: %w", err), exporter.Shutdown(ctx))
	}
	logger := cmp.Or(cfg.Logger, slog.Default())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: could not export spans", slog.String("error", redact.Text(err.Error())))
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return &Provider{tp: tp}, nil
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p != nil && p.tp != nil }

// ForceFlush exports the spans ended so far; a no-op when tracing is off.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	if err := p.tp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// Shutdown exports the spans still buffered and stops the exporter; a
// no-op when tracing is off. Safe to call twice.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}
