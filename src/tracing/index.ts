/**
 * OpenTelemetry tracing: settings from the standard OTEL_* variables, an OTLP/HTTP exporter, the Check's spans
 * (continuing the caller's W3C trace) and spans for background work. Off by default; see docs/TRACING.md.
 */
export { startTracing, type TracingContext } from './otel.js';
export { spanNames } from './span-names.js';
export { tracingSettings, type TracingSettings } from './settings.js';
export { noTracing, SpanKind, type CheckOutcome, type CheckTrace, type CheckTracer, type SpanAttributes, type SpanScope, type Tracing } from './tracing.js';
