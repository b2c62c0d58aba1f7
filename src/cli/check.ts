import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { type CheckRequestWire, type CheckResponseWire, extAuthzNamespace, fromStruct, type HeaderValueOption, loadEnvoyServices, toStruct } from '../grpc/index.js';
import { GatewayError } from './command.js';

export interface CheckCall {
  method: string;
  path: string;
  host: string;
  headers: Record<string, string>;
  timeoutMs?: number;
}

export interface CheckOutcome {
  allowed: boolean;
  /** The HTTP status Envoy would send the client on a denial (200 when allowed). */
  httpStatus: number;
  grpcCode: number;
  upstreamHeaders: Record<string, string>;
  headersToRemove: string[];
  responseHeaders: Record<string, string>;
  body: unknown;
  metadata: Record<string, string | number | boolean>;
}

/** A call as the CLI checked it, with what its access-log entry needs. */
export interface CheckedCall {
  call: CheckCall;
  requestId: string;
  /** The headers the Check carried, as Envoy would have received them. */
  requestHeaders: Record<string, string>;
  startedAt: number;
  durationMs: number;
  outcome: CheckOutcome;
}

type AuthorizationStub = grpc.Client & {
  Check(request: CheckRequestWire, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: CheckResponseWire) => void): void;
};
type AccessLogStub = grpc.Client & {
  StreamAccessLogs(metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null) => void): grpc.ClientWritableStream<unknown>;
};

/**
 * Plays Envoy towards Tollgate's gRPC port: a Check exactly as the ext_authz filter sends it, then (for `check
 * --meter`) the access-log entries Envoy's gRPC access logger would stream for those calls, carrying each Check's
 * dynamic metadata, so usage is metered without an Envoy.
 */
export class EnvoyClient {
  private readonly authorization: AuthorizationStub;
  private readonly accessLog: AccessLogStub;
  private readonly metadata = new grpc.Metadata();

  constructor(
    private readonly address: string,
    callerToken?: string,
  ) {
    const { AuthorizationClient, AccessLogServiceClient } = loadEnvoyServices();
    this.authorization = new AuthorizationClient(address, grpc.credentials.createInsecure()) as unknown as AuthorizationStub;
    this.accessLog = new AccessLogServiceClient(address, grpc.credentials.createInsecure()) as unknown as AccessLogStub;
    if (callerToken) this.metadata.set('authorization', `Bearer ${callerToken}`);
  }

  async check(call: CheckCall): Promise<CheckedCall> {
    const requestId = randomUUID();
    const requestHeaders = {
      ':method': call.method,
      ':path': call.path,
      ':authority': call.host,
      'x-request-id': requestId,
      ...Object.fromEntries(Object.entries(call.headers).map(([k, v]) => [k.toLowerCase(), v])),
    };
    const request: CheckRequestWire = {
      attributes: { request: { http: { id: requestId, method: call.method, path: call.path, host: call.host, headers: requestHeaders, scheme: 'http', protocol: 'HTTP/1.1' } } },
    };
    const startedAt = Date.now();
    const response = await new Promise<CheckResponseWire>((resolve, reject) =>
      this.authorization.Check(request, this.metadata, { deadline: Date.now() + (call.timeoutMs ?? 5_000) }, (error, reply) =>
        error ? reject(this.failure(error, 'the Check')) : resolve(reply),
      ),
    );
    return { call, requestId, requestHeaders, startedAt, durationMs: Date.now() - startedAt, outcome: summarise(response) };
  }

  /**
   * Streams the calls' access-log entries on one StreamAccessLogs stream, in messages of Envoy's size, and waits until
   * Tollgate has answered: it answers once it has spooled them.
   */
  async sendAccessLogs(entries: Record<string, unknown>[]): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const stream = this.accessLog.StreamAccessLogs(this.metadata, (error) => (error ? reject(this.failure(error, 'the access log')) : resolve()));
      stream.on('error', () => {}); // the callback has it
      for (let i = 0; i < entries.length; i += entriesPerMessage) {
        const identifier = i === 0 ? { identifier: { node: { id: 'tollgate-cli', cluster: 'tollgate-cli' }, log_name: 'tollgate' } } : {};
        stream.write({ ...identifier, http_logs: { log_entry: entries.slice(i, i + entriesPerMessage) } });
      }
      stream.end();
    });
  }

  close(): void {
    this.authorization.close();
    this.accessLog.close();
  }

  private failure(error: grpc.ServiceError, what: string): GatewayError {
    if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED) {
      return new GatewayError(`cannot reach the gRPC port at ${this.address} (${error.details}): is \`tollgate serve\` running? Set TOLLGATE_GRPC_ADDR to another server's`);
    }
    if (error.code === grpc.status.UNAUTHENTICATED) {
      return new GatewayError(`the gRPC port at ${this.address} refused ${what}: it takes known callers only; set TOLLGATE_GRPC_CALLER_TOKEN to one of its TOLLGATE_GRPC_CALLER_TOKENS`);
    }
    return new GatewayError(`${what} failed at ${this.address}: ${error.details || error.message}`);
  }
}

/** About Envoy's 16 KiB access-log buffer. */
const entriesPerMessage = 32;

const requestMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/**
 * The HTTPAccessLogEntry Envoy would log for a checked call (as a proto-loader object): the Check's dynamic metadata
 * under the ext_authz namespace, the request, and the status the client got: `upstreamStatus` when the Check allowed
 * it, the denial's status otherwise.
 */
export function accessLogEntry(checked: CheckedCall, upstreamStatus: number): Record<string, unknown> {
  const { call, outcome } = checked;
  const duration = Math.max(1, checked.durationMs);
  const headerBytes = Object.entries(checked.requestHeaders).reduce((sum, [name, value]) => sum + name.length + value.length + 4, 0);
  const body = typeof outcome.body === 'string' ? outcome.body : outcome.body === undefined ? '' : JSON.stringify(outcome.body);
  return {
    common_properties: {
      start_time: { seconds: String(Math.floor(checked.startedAt / 1000)), nanos: (checked.startedAt % 1000) * 1e6 },
      time_to_last_downstream_tx_byte: { seconds: String(Math.floor(duration / 1000)), nanos: (duration % 1000) * 1e6 },
      metadata: { filter_metadata: { [extAuthzNamespace]: toStruct(outcome.metadata) } },
    },
    protocol_version: 'HTTP11',
    request: {
      request_method: requestMethods.has(call.method) ? call.method : 'METHOD_UNSPECIFIED',
      scheme: 'http',
      authority: call.host,
      path: call.path,
      request_id: checked.requestId,
      request_headers_bytes: String(headerBytes),
      request_body_bytes: '0',
    },
    response: {
      response_code: { value: outcome.allowed ? upstreamStatus : outcome.httpStatus },
      response_headers_bytes: String(Object.entries(outcome.responseHeaders).reduce((sum, [name, value]) => sum + name.length + value.length + 4, 0)),
      response_body_bytes: String(outcome.allowed ? 0 : Buffer.byteLength(body)),
    },
  };
}

export function summarise(response: CheckResponseWire): CheckOutcome {
  const pairs = (options: HeaderValueOption[] | undefined) =>
    Object.fromEntries((options ?? []).map((option) => [option.header.key ?? '', option.header.value ?? '']));
  const allowed = (response.status?.code ?? 0) === 0;
  const denied = response.denied_response;
  let body: unknown = denied?.body;
  try {
    body = denied?.body ? JSON.parse(denied.body) : undefined;
  } catch {
    // Not JSON: keep the text.
  }
  return {
    allowed,
    httpStatus: allowed ? 200 : statusNumber(denied?.status?.code) ?? 403,
    grpcCode: response.status?.code ?? 0,
    upstreamHeaders: pairs(response.ok_response?.headers),
    headersToRemove: response.ok_response?.headers_to_remove ?? [],
    responseHeaders: allowed ? pairs(response.ok_response?.response_headers_to_add) : pairs(denied?.headers),
    body,
    metadata: fromStruct(response.dynamic_metadata),
  };
}

/** envoy.type.v3.StatusCode arrives as its enum name with `enums: String` (e.g. "TooManyRequests"). */
const statusNames: Record<string, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  PaymentRequired: 402,
  Forbidden: 403,
  NotFound: 404,
  TooManyRequests: 429,
  InternalServerError: 500,
  ServiceUnavailable: 503,
};

function statusNumber(code: number | string | undefined): number | undefined {
  if (code === undefined) return undefined;
  return typeof code === 'number' ? code : statusNames[code] ?? Number(code);
}
