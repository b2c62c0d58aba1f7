/**
 * Tracing's settings from the standard OpenTelemetry environment variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). Pure: it reads the
 * environment object it is given and throws an error naming the variable for a bad value, as the rest of the
 * configuration does.
 *
 * Off by default. On when OTEL_TRACES_EXPORTER names `otlp`, or when it is unset and an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT) is set; OTEL_SDK_DISABLED=true and
 * OTEL_TRACES_EXPORTER=none turn it off whatever else is set.
 */

export type TracesProtocol = 'http/protobuf' | 'http/json';

export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

export interface TracingSettings {
  /** Where spans are POSTed: the full URL, `/v1/traces` included. */
  url: string;
  protocol: TracesProtocol;
  /** Resource attributes: OTEL_RESOURCE_ATTRIBUTES, with service.name from OTEL_SERVICE_NAME (default `tollgate`). */
  resource: Record<string, string>;
  sampler: { name: SamplerName; ratio: number };
  /** The batch span processor's settings (OTEL_BSP_*). */
  batch: { scheduledDelayMs: number; exportTimeoutMs: number; maxQueueSize: number; maxExportBatchSize: number };
}

type Env = Readonly<Record<string, string | undefined>>;

const samplers: readonly SamplerName[] = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];
const protocols: readonly string[] = ['http/protobuf', 'http/json'];
export const defaultTracesUrl = 'http://localhost:4318/v1/traces';

/** The settings when tracing is on, undefined when it is off. */
export function tracingSettings(env: Env): TracingSettings | undefined {
  const value = (name: string) => {
    const raw = env[name]?.trim();
    return raw ? raw : undefined;
  };
  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const exporters = value('OTEL_TRACES_EXPORTER')?.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean);
  for (const name of exporters ?? []) {
    if (name !== 'otlp' && name !== 'none') fail('OTEL_TRACES_EXPORTER', `Tollgate exports traces over OTLP: "otlp" or "none", not "${name}"`);
  }
  const specificUrl = value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const baseUrl = value('OTEL_EXPORTER_OTLP_ENDPOINT');
  const on = exporters ? exporters.includes('otlp') && !exporters.includes('none') : specificUrl !== undefined || baseUrl !== undefined;
  if (!on) return undefined;

  const protocolVariable = value('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = value(protocolVariable) ?? 'http/protobuf';
  if (!protocols.includes(protocol)) {
    fail(protocolVariable, `must be http/protobuf or http/json${protocol === 'grpc' ? ' (OTLP over gRPC is not supported: point it at the collector\'s OTLP/HTTP port, 4318)' : ''}, not "${protocol}"`);
  }
  return {
    url: specificUrl ? httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specificUrl).toString() : baseUrl ? withTracesPath(httpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', baseUrl)) : defaultTracesUrl,
    protocol: protocol as TracesProtocol,
    resource: resourceAttributes(value('OTEL_RESOURCE_ATTRIBUTES'), value('OTEL_SERVICE_NAME')),
    sampler: sampler(value('OTEL_TRACES_SAMPLER'), value('OTEL_TRACES_SAMPLER_ARG')),
    batch: batchSettings(value),
  };
}

function fail(variable: string, message: string): never {
  throw new Error(`invalid configuration:\n  ${variable}: ${message}`);
}

function httpUrl(variable: string, raw: string): URL {
  if (!URL.canParse(raw)) fail(variable, `must be an http:// or https:// URL, not "${raw}"`);
  const url = new URL(raw);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(variable, `must be an http:// or https:// URL, not "${raw}"`);
  return url;
}

/** OTEL_EXPORTER_OTLP_ENDPOINT is a base: the signal's path is appended to whatever path it has. */
function withTracesPath(base: URL): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

/** `key=value` pairs, comma-separated, values percent-encoded (the W3C Baggage format the specification names). */
function resourceAttributes(raw: string | undefined, serviceName: string | undefined): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const pair of (raw ?? '').split(',')) {
    if (!pair.trim()) continue;
    const separator = pair.indexOf('=');
    const key = separator > 0 ? pair.slice(0, separator).trim() : '';
    if (!key) fail('OTEL_RESOURCE_ATTRIBUTES', `each entry must be key=value, not "${pair.trim()}"`);
    let decoded: string;
    try {
      decoded = decodeURIComponent(pair.slice(separator + 1).trim());
    } catch {
      fail('OTEL_RESOURCE_ATTRIBUTES', `the value of ${key} is not valid percent-encoding`);
    }
    attributes[key] = decoded;
  }
  attributes['service.name'] = serviceName ?? attributes['service.name'] ?? 'tollgate';
  return attributes;
}

function sampler(rawName: string | undefined, rawArg: string | undefined): TracingSettings['sampler'] {
  const name = (rawName?.toLowerCase() ?? 'parentbased_always_on') as SamplerName;
  if (!samplers.includes(name)) fail('OTEL_TRACES_SAMPLER', `must be one of ${samplers.join(', ')}, not "${rawName}"`);
  if (!name.endsWith('traceidratio') || rawArg === undefined) return { name, ratio: 1 };
  const ratio = Number(rawArg);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) fail('OTEL_TRACES_SAMPLER_ARG', `must be a sampling ratio from 0 to 1, not "${rawArg}"`);
  return { name, ratio };
}

function batchSettings(value: (name: string) => string | undefined): TracingSettings['batch'] {
  const count = (variable: string, fallback: number, allowZero = false) => {
    const raw = value(variable);
    if (raw === undefined) return fallback;
    const parsed = Number(raw);
    if (!Number.isInteger(parsed) || parsed < (allowZero ? 0 : 1)) fail(variable, `must be a${allowZero ? ' non-negative' : ' positive'} integer, not "${raw}"`);
    return parsed;
  };
  const batch = {
    scheduledDelayMs: count('OTEL_BSP_SCHEDULE_DELAY', 5_000, true),
    exportTimeoutMs: count('OTEL_BSP_EXPORT_TIMEOUT', 30_000),
    maxQueueSize: count('OTEL_BSP_MAX_QUEUE_SIZE', 2_048),
    maxExportBatchSize: count('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512),
  };
  if (batch.maxExportBatchSize > batch.maxQueueSize) fail('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', `must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${batch.maxQueueSize})`);
  return batch;
}
