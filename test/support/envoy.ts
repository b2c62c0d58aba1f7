import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyServices } from '../../src/grpc/protos.js';
import type { CheckRequestWire, CheckResponseWire } from '../../src/grpc/wire.js';
import { summarise, type CheckOutcome } from '../../src/cli/check.js';

/**
 * Plays Envoy's ext_authz filter: a gRPC client built from the canonical protos sends CheckRequests shaped like
 * Envoy's, and `forwardedHeaders` applies an OkHttpResponse to the request headers the way Envoy does.
 */
export interface EnvoyConnection {
  /** TLS towards Tollgate (Envoy's upstream transport socket); plaintext without. */
  credentials?: grpc.ChannelCredentials;
  /** Sent with every call, as Envoy's grpc_service.initial_metadata (e.g. a caller token). */
  metadata?: Record<string, string>;
}

export class FakeEnvoy {
  private readonly client: grpc.Client & {
    Check(
      request: CheckRequestWire,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, response: CheckResponseWire) => void,
    ): void;
  };
  private readonly metadata: grpc.Metadata;

  constructor(address: string, connection: EnvoyConnection = {}) {
    const { AuthorizationClient } = loadEnvoyServices();
    this.client = new AuthorizationClient(address, connection.credentials ?? grpc.credentials.createInsecure()) as never;
    this.metadata = callMetadata(connection.metadata);
  }

  async checkRaw(request: CheckRequestWire): Promise<CheckResponseWire> {
    return new Promise((resolve, reject) =>
      // Envoy's usual deadline is far shorter; this one only keeps a lost call from hanging a test on a busy machine.
      this.client.Check(request, this.metadata, { deadline: Date.now() + 30_000 }, (error, response) => (error ? reject(error) : resolve(response))),
    );
  }

  async check(call: { method: string; path: string; key?: string; host?: string; headers?: Record<string, string> }): Promise<CheckOutcome & { requestHeaders: Record<string, string> }> {
    const requestHeaders: Record<string, string> = {
      ':method': call.method,
      ':path': call.path,
      ':authority': call.host ?? 'api.petstore.example.com',
      'x-request-id': randomUUID(),
      ...(call.key ? { 'x-api-key': call.key } : {}),
      ...call.headers,
    };
    const response = await this.checkRaw({
      attributes: {
        request: {
          http: {
            id: requestHeaders['x-request-id'],
            method: call.method,
            path: call.path,
            host: requestHeaders[':authority'],
            headers: requestHeaders,
            scheme: 'https',
            protocol: 'HTTP/1.1',
          },
        },
      },
    });
    return { ...summarise(response), requestHeaders };
  }

  close(): void {
    this.client.close();
  }
}

export function callMetadata(values: Record<string, string> = {}): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(values)) metadata.set(key, value);
  return metadata;
}

/**
 * What the upstream receives after Envoy applies an allowed Check: `headers` with append=false overwrite, then
 * `headers_to_remove` (Envoy's ext_authz filter order).
 */
export function forwardedHeaders(request: Record<string, string>, outcome: CheckOutcome): Record<string, string> {
  const headers = { ...request };
  for (const [name, value] of Object.entries(outcome.upstreamHeaders)) headers[name] = value;
  for (const name of outcome.headersToRemove) delete headers[name];
  return headers;
}
