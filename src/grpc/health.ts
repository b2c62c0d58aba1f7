import { frame, serverStreamMethod, Status, unaryMethod, type Method, type ServerStreamCall } from './transport.js';

/**
 * grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md), which Kubernetes' gRPC
 * probes and Envoy's health checker call: Check answers a service's status (NOT_FOUND for an unknown one), Watch
 * streams it and every change, List gives them all. Three tiny messages, encoded here by hand.
 */

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

const statusNumber = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

/** HealthCheckRequest { string service = 1; }: the service name, '' for the server as a whole. */
export function decodeHealthCheckRequest(bytes: Buffer): string {
  let service = '';
  let at = 0;
  while (at < bytes.length) {
    const [tag, afterTag] = varint(bytes, at);
    const wireType = tag & 7;
    if (wireType === 2) {
      const [length, start] = varint(bytes, afterTag);
      if (start + length > bytes.length) throw new Error('invalid HealthCheckRequest: truncated');
      if (tag >>> 3 === 1) service = bytes.toString('utf8', start, start + length);
      at = start + length;
    } else if (wireType === 0) {
      at = varint(bytes, afterTag)[1];
    } else if (wireType === 1 || wireType === 5) {
      at = afterTag + (wireType === 1 ? 8 : 4);
      if (at > bytes.length) throw new Error('invalid HealthCheckRequest: truncated');
    } else {
      throw new Error(`invalid HealthCheckRequest: wire type ${wireType}`);
    }
  }
  return service;
}

function varint(bytes: Buffer, at: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= bytes.length) throw new Error('invalid HealthCheckRequest: truncated');
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
  }
  throw new Error('invalid HealthCheckRequest: varint too long');
}

/** HealthCheckResponse { ServingStatus status = 1; }, framed. */
const encodedResponse = (status: keyof typeof statusNumber) => frame(Buffer.from([0x08, statusNumber[status]]));
const framedResponses = {
  SERVING: encodedResponse('SERVING'),
  NOT_SERVING: encodedResponse('NOT_SERVING'),
  SERVICE_UNKNOWN: encodedResponse('SERVICE_UNKNOWN'),
};

/** HealthListResponse { map<string, HealthCheckResponse> statuses = 1; }, framed. */
function encodeListResponse(statuses: ReadonlyMap<string, ServingStatus>): Buffer {
  const entries: Buffer[] = [];
  for (const [service, status] of statuses) {
    const name = Buffer.from(service, 'utf8');
    const value = Buffer.from([0x08, statusNumber[status]]);
    const entry = Buffer.concat([Buffer.from([0x0a]), lengthOf(name.length), name, Buffer.from([0x12, value.length]), value]);
    entries.push(Buffer.from([0x0a]), lengthOf(entry.length), entry);
  }
  return frame(Buffer.concat(entries));
}

function lengthOf(value: number): Buffer {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** A HealthCheckRequest is a service name: anything longer is not one (the health methods answer anyone). */
const maxHealthRequestBytes = 1024;

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<ServerStreamCall<Buffer>>>();

  constructor(initial: Record<string, ServingStatus>) {
    for (const [service, status] of Object.entries(initial)) this.statuses.set(service, status);
  }

  setStatus(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const watcher of this.watchers.get(service) ?? []) watcher.send(framedResponses[status]);
  }

  /** Ends every Watch (a stopping server): the watchers reconnect, to this server or another. */
  endWatches(): void {
    for (const watchers of this.watchers.values()) for (const watcher of watchers) watcher.finish(Status.OK);
    this.watchers.clear();
  }

  /** The methods to serve, by path. The answers are framed already: `encode` passes them through. */
  methods(): [string, Method][] {
    const passThrough = (framed: Buffer) => framed;
    return [
      [
        '/grpc.health.v1.Health/Check',
        unaryMethod<string, Buffer>({
          authenticated: false,
          maxMessageBytes: maxHealthRequestBytes,
          decode: decodeHealthCheckRequest,
          encode: passThrough,
          handle: (service, call) => {
            const status = this.statuses.get(service);
            if (status) call.respond(framedResponses[status]);
            else call.fail(Status.NOT_FOUND, `unknown service ${service}`);
          },
        }),
      ],
      [
        '/grpc.health.v1.Health/Watch',
        serverStreamMethod<string, Buffer>({
          authenticated: false,
          maxMessageBytes: maxHealthRequestBytes,
          decode: decodeHealthCheckRequest,
          encode: passThrough,
          handle: (service, call) => {
            call.send(framedResponses[this.statuses.get(service) ?? 'SERVICE_UNKNOWN']);
            let watchers = this.watchers.get(service);
            if (!watchers) this.watchers.set(service, (watchers = new Set()));
            watchers.add(call);
            call.onCancel(() => {
              watchers.delete(call);
              // Service names are the caller's to choose: an emptied set goes with its name.
              if (watchers.size === 0 && this.watchers.get(service) === watchers) this.watchers.delete(service);
            });
          },
        }),
      ],
      [
        '/grpc.health.v1.Health/List',
        unaryMethod<string, Buffer>({
          authenticated: false,
          maxMessageBytes: maxHealthRequestBytes,
          decode: () => '',
          encode: passThrough,
          handle: (_, call) => call.respond(encodeListResponse(this.statuses)),
        }),
      ],
    ];
  }
}
