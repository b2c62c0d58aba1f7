import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { type CheckRequestWire, type CheckResponseWire, fromStruct, type HeaderValueOption, loadEnvoyServices } from '../grpc/index.js';

export interface CheckCall {
  address: string;
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

/** Sends one Check exactly as Envoy's ext_authz filter would, and summarises the answer. */
export async function sendCheck(call: CheckCall): Promise<CheckOutcome> {
  const { AuthorizationClient } = loadEnvoyServices();
  const client = new AuthorizationClient(call.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check(request: CheckRequestWire, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: CheckResponseWire) => void): void;
  };
  try {
    const headers = {
      ':method': call.method,
      ':path': call.path,
      ':authority': call.host,
      'x-request-id': randomUUID(),
      ...Object.fromEntries(Object.entries(call.headers).map(([k, v]) => [k.toLowerCase(), v])),
    };
    const request: CheckRequestWire = {
      attributes: { request: { http: { id: headers['x-request-id'], method: call.method, path: call.path, host: call.host, headers, scheme: 'http', protocol: 'HTTP/1.1' } } },
    };
    const response = await new Promise<CheckResponseWire>((resolve, reject) =>
      client.Check(request, { deadline: Date.now() + (call.timeoutMs ?? 5_000) }, (error, reply) => (error ? reject(error) : resolve(reply))),
    );
    return summarise(response);
  } finally {
    client.close();
  }
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
    metadata: fromStruct(response.dynamic_metadata as never),
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
