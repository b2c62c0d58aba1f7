import * as grpc from '@grpc/grpc-js';
import { loadEnvoyServices } from '../../src/grpc/protos.js';
import { callMetadata, type EnvoyConnection } from './envoy.js';
import { toStruct } from './envoy-wire.js';
import { decodeHttpAccessLogEntry } from '../../src/grpc/als-decoder.js';
import { extAuthzNamespace, type HttpAccessLogEntryWire, type HttpLogEntries } from '../../src/grpc/als-wire.js';

/**
 * Plays Envoy's HTTP gRPC access logger: a client built from the canonical protos opens StreamAccessLogs streams
 * and sends HTTPAccessLogEntry batches shaped like Envoy's.
 */

export interface EntryFacts {
  requestId: string;
  /** The Check's dynamic metadata (as CheckOutcome.metadata holds it); omit for calls that had no Check. */
  authz?: Record<string, string | number | boolean>;
  method?: string;
  status?: number;
  startMs?: number;
  durationMs?: number;
  requestHeadersBytes?: number;
  requestBodyBytes?: number;
  responseHeadersBytes?: number;
  responseBodyBytes?: number;
  responseHeaders?: Record<string, string>;
}

/** An HTTPAccessLogEntry as Envoy fills it in, ready for the proto-loader encoder. */
export function httpEntry(facts: EntryFacts): Record<string, unknown> {
  const startMs = facts.startMs ?? Date.now();
  const durationMs = facts.durationMs ?? 12;
  return {
    common_properties: {
      start_time: { seconds: String(Math.floor(startMs / 1000)), nanos: (startMs % 1000) * 1e6 },
      time_to_last_downstream_tx_byte: { seconds: String(Math.floor(durationMs / 1000)), nanos: (durationMs % 1000) * 1e6 },
      upstream_cluster: 'petstore',
      route_name: 'api',
      ...(facts.authz ? { metadata: { filter_metadata: { [extAuthzNamespace]: toStruct(facts.authz) } } } : {}),
    },
    protocol_version: 'HTTP11',
    request: {
      request_method: facts.method ?? 'GET',
      scheme: 'https',
      authority: 'api.petstore.example.com',
      path: '/api/v1/pets',
      request_id: facts.requestId,
      request_headers_bytes: String(facts.requestHeadersBytes ?? 200),
      request_body_bytes: String(facts.requestBodyBytes ?? 0),
    },
    response: {
      response_code: { value: facts.status ?? 200 },
      response_headers_bytes: String(facts.responseHeadersBytes ?? 100),
      response_body_bytes: String(facts.responseBodyBytes ?? 1000),
      response_headers: facts.responseHeaders ?? {},
    },
  };
}

type StreamCall = grpc.ClientWritableStream<unknown>;

export class AccessLogStream {
  private sentIdentifier = false;
  /** The server's answer: an empty response, or the error that ended the stream. */
  readonly answer: Promise<unknown>;
  private readonly call: StreamCall;

  constructor(
    client: grpc.Client & { StreamAccessLogs(metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null, response: unknown) => void): StreamCall },
    metadata: grpc.Metadata,
  ) {
    let settle!: (result: unknown) => void;
    this.answer = new Promise((resolve) => (settle = resolve));
    this.call = client.StreamAccessLogs(metadata, (error, response) => settle(error ?? response));
    this.call.on('error', () => {});
  }

  /** One StreamAccessLogsMessage; the identifier rides only on the stream's first, as Envoy sends it. */
  async send(entries: Record<string, unknown>[]): Promise<void> {
    const message = {
      ...(this.sentIdentifier ? {} : { identifier: { node: { id: 'envoy-test', cluster: 'edge' }, log_name: 'tollgate' } }),
      http_logs: { log_entry: entries },
    };
    this.sentIdentifier = true;
    // Once the server has answered, the stream takes no more data and 'drain' never comes.
    if (!this.call.write(message)) await Promise.race([new Promise((resolve) => this.call.once('drain', resolve)), this.answer]);
  }

  async sendTcp(): Promise<void> {
    this.call.write({ tcp_logs: { log_entry: [{ connection_properties: { received_bytes: '10', sent_bytes: '20' } }] } });
  }

  /** Half-closes the stream and waits for the server's answer. */
  async end(): Promise<unknown> {
    this.call.end();
    return this.answer;
  }
}

export class AccessLogClient {
  private readonly client: ConstructorParameters<typeof AccessLogStream>[0];
  private readonly metadata: grpc.Metadata;

  constructor(address: string, connection: EnvoyConnection = {}) {
    const { AccessLogServiceClient } = loadEnvoyServices();
    this.client = new AccessLogServiceClient(address, connection.credentials ?? grpc.credentials.createInsecure()) as never;
    this.metadata = callMetadata(connection.metadata);
  }

  open(): AccessLogStream {
    return new AccessLogStream(this.client, this.metadata);
  }

  close(): void {
    this.client.close();
  }
}

/** A decoded message's HTTP entries as objects, as metering's general path decodes each (undefined when it has none). */
export function decodedEntries(logs: HttpLogEntries | undefined): HttpAccessLogEntryWire[] | undefined {
  if (!logs || logs.spans.length === 0) return undefined;
  const entries: HttpAccessLogEntryWire[] = [];
  for (let i = 0; i < logs.spans.length; i += 2) entries.push(decodeHttpAccessLogEntry(logs.bytes, logs.spans[i]!, logs.spans[i + 1]!));
  return entries;
}
