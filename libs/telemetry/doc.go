// Package telemetry sets up what every b24hub process needs to be observable:
// OpenTelemetry tracing (OTLP exporter configured by the standard OTEL_*
// environment variables), metrics served in Prometheus format, JSON slog
// logs that carry the trace and span id of their context, and the admin
// endpoints /healthz, /readyz and /metrics.
package telemetry
