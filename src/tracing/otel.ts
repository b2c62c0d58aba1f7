import { randomUUID } from 'node:crypto';
import { ROOT_CONTEXT, SpanKind, type Tracer } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Logger } from '../kernel/index.js';
import { W3CCheckTracer } from './check-trace.js';
import type { TracingSettings } from './settings.js';
import { runInSpan } from './spans.js';
import { noTracing, type SpanAttributes, type SpanScope, type Tracing } from './tracing.js';

/**
 * Attribute values are cut to this many characters: a request id is the client's own header, and what waits in the
 * export queue (OTEL_BSP_MAX_QUEUE_SIZE spans) must stay small whatever clients send.
 */
export const attributeValueLengthLimit = 256;

export interface TracingContext {
  /** Tollgate's version, recorded as service.version. */
  version: string;
  logger: Logger;
}

/**
 * Tracing for the settings (tracing/settings.ts): the OpenTelemetry SDK exporting over OTLP/HTTP in batches, or
 * `noTracing` when they are undefined (off). Nothing is registered globally: the provider is handed to what it
 * traces, so several instances can live in one process (tests) and no library traces behind Tollgate's back.
 */
export function startTracing(settings: TracingSettings | undefined, context: TracingContext): Tracing {
  if (!settings) return noTracing;
  const { logger } = context;
  const exporterOptions = { url: settings.url };
  const exporter = settings.protocol === 'http/json' ? new JsonTraceExporter(exporterOptions) : new ProtobufTraceExporter(exporterOptions);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_VERSION]: context.version, 'service.instance.id': randomUUID(), ...settings.resource }),
    sampler: samplerFor(settings.sampler),
    spanLimits: { attributeValueLengthLimit },
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: loggingFailures(exporter, logger),
        scheduledDelayMillis: settings.batch.scheduledDelayMs,
        exportTimeoutMillis: settings.batch.exportTimeoutMs,
        maxQueueSize: settings.batch.maxQueueSize,
        maxExportBatchSize: settings.batch.maxExportBatchSize,
      }),
    ],
  });
  const tracer = provider.getTracer('tollgate', context.version);
  logger.info(
    { endpoint: withoutCredentials(settings.url), protocol: settings.protocol, sampler: settings.sampler, service: settings.resource['service.name'] },
    'tracing on: exporting spans over OTLP',
  );
  return new OtelTracing(provider, tracer);
}

class OtelTracing implements Tracing {
  readonly enabled = true;
  readonly check: W3CCheckTracer;

  constructor(
    private readonly provider: TracerProvider,
    private readonly tracer: Tracer,
  ) {
    this.check = new W3CCheckTracer(tracer);
  }

  span<T>(name: string, attributes: SpanAttributes, work: (scope: SpanScope) => T, kind = SpanKind.INTERNAL): T {
    return runInSpan(this.tracer, ROOT_CONTEXT, name, attributes, work, kind);
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

function samplerFor({ name, ratio }: TracingSettings['sampler']): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/**
 * The SDK reports a failed export only to OpenTelemetry's own diagnostics, silent unless a global logger is set:
 * log the first failure and the recovery instead, once each, as the other outages are.
 */
function loggingFailures(exporter: SpanExporter, logger: Logger): SpanExporter {
  let failing = false;
  return {
    export: (spans, done) =>
      exporter.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS && !failing) {
          failing = true;
          logger.warn({ err: result.error?.message, spans: spans.length }, 'trace export failed; spans are dropped while the collector does not answer');
        } else if (result.code === ExportResultCode.SUCCESS && failing) {
          failing = false;
          logger.info('trace export resumed');
        }
        done(result);
      }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/** An endpoint as it may be logged: user and password (some collectors take them in the URL) removed. */
function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}
