import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCheckRequest, maxCheckHeaders } from '../src/check/check-request-decoder.js';
import { loaderOptions } from '../src/grpc/protos.js';
import type { CheckRequestWire } from '../src/grpc/wire.js';
import { delimited, encodeUnknown, readVarint, unknownField, type UnknownField } from './support/protobuf-bytes.js';

/** The hot path's hand-written CheckRequest decoder must read exactly what protobufjs's decoding gives. */

const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', loaderOptions);
const check = (definition['envoy.service.auth.v3.Authorization'] as unknown as Record<string, { requestSerialize(value: unknown): Buffer; requestDeserialize(bytes: Buffer): unknown }>)
  .Check!;

/** What the Check reads of a request, as protobufjs decodes it: the fields CheckRequestWire declares. */
function readByReference(bytes: Buffer): CheckRequestWire {
  const full = check.requestDeserialize(bytes) as { attributes?: { request?: { http?: Record<string, unknown> } } };
  const http = full.attributes?.request?.http;
  if (!full.attributes) return {};
  if (!full.attributes.request) return { attributes: {} };
  if (!http) return { attributes: { request: {} } };
  const read = Object.fromEntries(['id', 'method', 'headers', 'path', 'host', 'header_map'].filter((name) => name in http).map((name) => [name, http[name]]));
  return { attributes: { request: { http: read } } };
}

/** The content of a message nested `depth` levels down in what protobufjs encoded: its enclosing tags stripped. */
function innerBytes(bytes: Buffer, depth: number): Buffer {
  let at = 0;
  for (let level = 0; level < depth; level++) [, at] = readVarint(bytes, at + 1);
  return bytes.subarray(at);
}

const text = fc.string({ unit: 'binary', maxLength: 24 });
const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }).filter((header) => header !== '__proto__');
const headers = fc.dictionary(fc.oneof(name, fc.constantFrom(':path', 'x-api-key', 'authorization', 'x-request-id')), text, { maxKeys: 8 });
const address = fc.record({ socket_address: fc.record({ address: text, port_value: fc.nat(65535) }) });
const peer = fc.record({ address, service: text, labels: fc.dictionary(name, text, { maxKeys: 2 }), principal: text, certificate: text }, { requiredKeys: [] });
const http = fc.record(
  {
    id: text,
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', ''),
    headers,
    path: text,
    host: text,
    header_map: fc.record(
      { headers: fc.array(fc.record({ key: text, value: text, raw_value: fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)) }, { requiredKeys: [] }), { maxLength: 5 }) },
      { requiredKeys: [] },
    ),
    // Fields the Check does not read, of every wire type.
    scheme: text,
    query: text,
    fragment: text,
    size: fc.bigInt({ min: -1n, max: 2n ** 40n }).map(String),
    protocol: fc.constantFrom('HTTP/1.1', 'HTTP/2'),
    body: text,
    raw_body: fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  },
  { requiredKeys: [] },
);
const otherAttributes = fc.record(
  {
    source: peer,
    destination: peer,
    context_extensions: fc.dictionary(name, text, { maxKeys: 3 }),
    metadata_context: fc.record({ filter_metadata: fc.dictionary(name, fc.record({ fields: fc.dictionary(name, text.map((stringValue) => ({ stringValue }))) }), { maxKeys: 2 }) }),
    tls_session: fc.record({ sni: text }),
  },
  { requiredKeys: [] },
);
const unknowns = fc.oneof(fc.constant([] as UnknownField[]), fc.array(unknownField, { minLength: 1, maxLength: 3 }));
const request = fc.record({
  http: fc.option(http, { nil: undefined }),
  time: fc.option(fc.record({ seconds: fc.nat().map(String), nanos: fc.nat(999_999_999) }), { nil: undefined }),
  other: otherAttributes,
  unknownInHttp: unknowns,
  unknownInRequest: unknowns,
  unknownInAttributes: unknowns,
  unknown: unknowns,
});

/** Encodes with protobufjs, then adds unknown fields inside each message on the path to the HTTP request. */
function encode(spec: typeof request extends fc.Arbitrary<infer T> ? T : never): Buffer {
  const httpBytes = spec.http ? innerBytes(check.requestSerialize({ attributes: { request: { http: spec.http } } }), 3) : Buffer.alloc(0);
  const timeBytes = spec.time ? innerBytes(check.requestSerialize({ attributes: { request: { time: spec.time } } }), 2) : Buffer.alloc(0);
  const requestBytes = Buffer.concat([timeBytes, ...(spec.http ? [delimited(2, Buffer.concat([httpBytes, encodeUnknown(spec.unknownInHttp)]))] : []), encodeUnknown(spec.unknownInRequest)]);
  const otherBytes = innerBytes(check.requestSerialize({ attributes: spec.other }), 1);
  const attributes = Buffer.concat([otherBytes, delimited(4, requestBytes), encodeUnknown(spec.unknownInAttributes)]);
  return Buffer.concat([delimited(1, attributes), encodeUnknown(spec.unknown)]);
}

describe('decodeCheckRequest', () => {
  it('reads what protobufjs reads from any CheckRequest, skipping every other field and unknown ones', () => {
    fc.assert(
      fc.property(request, (spec) => {
        const bytes = encode(spec);
        expect(decodeCheckRequest(bytes)).toEqual(readByReference(bytes));
      }),
      { numRuns: 400 },
    );
  });

  it('reads an empty request as one without attributes, as protobufjs does', () => {
    expect(decodeCheckRequest(Buffer.alloc(0))).toEqual(readByReference(Buffer.alloc(0)));
  });

  it('refuses more headers than a request may carry, in headers and header_map together, before building them all', () => {
    const half = maxCheckHeaders / 2;
    const request = (extra: number) => {
      const headers = Object.fromEntries(Array.from({ length: half }, (_, i) => [`x-h${i}`, 'v']));
      const entries = Array.from({ length: half + extra }, (_, i) => ({ key: `x-m${i}`, value: 'v' }));
      return check.requestSerialize({ attributes: { request: { http: { method: 'GET', path: '/', headers, header_map: { headers: entries } } } } });
    };
    expect(Object.keys(decodeCheckRequest(request(0)).attributes!.request!.http!.headers!)).toHaveLength(half);
    expect(() => decodeCheckRequest(request(1))).toThrow(`more than ${maxCheckHeaders} headers`);
  });

  it('refuses truncated input with an error naming the message', () => {
    const bytes = check.requestSerialize({ attributes: { request: { http: { method: 'GET', path: '/api/v1/pets', headers: { 'x-api-key': 'k' } } } } });
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(() => decodeCheckRequest(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(/invalid CheckRequest/);
    }
  });
});
