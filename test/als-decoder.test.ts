import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageIdentity, type SignedFactSpans } from '../src/check/usage-identity.js';
import { loadCatalogFile, parseCatalog } from '../src/catalog/load.js';
import { loaderOptions } from '../src/grpc/protos.js';
import { fromStruct } from '../src/grpc/wire.js';
import { decodeStreamAccessLogsMessage } from '../src/grpc/als-decoder.js';
import { extAuthzNamespace, type HttpAccessLogEntryWire, type StreamAccessLogsMessageWire } from '../src/grpc/als-wire.js';
import { encodeEntryRows } from '../src/metering/entry-rows.js';
import { encodeEventRow } from '../src/metering/event-rows.js';
import { toUsageEvent, type MeteringContext } from '../src/metering/event.js';
import { delimited, encodeUnknown, readVarint, unknownField, type UnknownField } from './support/protobuf-bytes.js';
import { decodedEntries } from './support/access-log.js';
import { toStruct } from './support/envoy-wire.js';
import { signedAllow, testUsageIdentity, testUsageSigningKey } from './support/usage.js';

/** The ingest path's hand-written StreamAccessLogsMessage decoder must read exactly what protobufjs's decoding gives. */

const definition = protoLoader.loadSync('envoy/service/accesslog/v3/als.proto', loaderOptions);
const method = (definition['envoy.service.accesslog.v3.AccessLogService'] as unknown as Record<string, { requestSerialize(value: unknown): Buffer; requestDeserialize(bytes: Buffer): unknown }>)
  .StreamAccessLogs!;
const reference = (bytes: Buffer) => asOurs(method.requestDeserialize(bytes) as Parameters<typeof asOurs>[0]);

const petstore = loadCatalogFile('examples/petstore.yaml');
const context: MeteringContext = { catalog: petstore, periodStartOf: () => 1_700_000_000_000, usage: testUsageIdentity, now: 1_750_000_000_000, newUsageId: () => 'generated-id' };

/** An HTTPAccessLogEntry's own encoding: protobufjs encodes it inside http_logs, whose two headers are stripped. */
function encodeEntry(entry: unknown): Buffer {
  const bytes = method.requestSerialize({ http_logs: { log_entry: [entry] } });
  const [, afterOuter] = readVarint(bytes, 1);
  const [, afterInner] = readVarint(bytes, afterOuter + 1);
  return bytes.subarray(afterInner);
}

// --- arbitrary Envoy-shaped messages, as proto-loader accepts them ---

const text = fc.string({ unit: 'binary', maxLength: 24 });
const key = fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }).filter((name) => name !== '__proto__');
const uint64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 100_000n })).map(String);
const int64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: 0n, max: 4_000_000_000n })).map(String);
const secondsNanos = fc.record({ seconds: int64, nanos: fc.oneof(fc.integer({ min: 0, max: 999_999_999 }), fc.integer()) }, { requiredKeys: [] });
const scalar = fc.oneof(
  text.map((stringValue) => ({ stringValue })),
  fc.oneof(fc.double(), fc.integer({ min: 0, max: 100 })).map((numberValue) => ({ numberValue })),
  fc.boolean().map((boolValue) => ({ boolValue })),
  fc.constant({ nullValue: 'NULL_VALUE' }),
);
const value = fc.oneof(
  { weight: 6, arbitrary: scalar },
  fc.array(scalar, { maxLength: 3 }).map((values) => ({ listValue: { values } })),
  fc.dictionary(key, scalar, { maxKeys: 3 }).map((fields) => ({ structValue: { fields } })),
);
const struct = fc.dictionary(key, value, { maxKeys: 8 }).map((fields) => ({ fields }));
const authzKeys = fc.constantFrom('customer_id', 'subscription_id', 'plan_id', 'product_id', 'endpoint_id', 'key_id', 'decision', 'reason', 'request_id', 'weight');
const authzValue = fc.oneof(
  fc.constantFrom('cus_1', 'sub_1', 'pro', 'free', 'petstore', 'list-pets', 'allow', 'deny', 'rate_limited', '').map((stringValue) => ({ stringValue })),
  text.map((stringValue) => ({ stringValue })),
  fc.oneof(fc.integer({ min: 0, max: 20 }), fc.double()).map((numberValue) => ({ numberValue })),
  fc.boolean().map((boolValue) => ({ boolValue })),
  // Values metering cannot use (null, list, struct): read past, and absent from what it sees.
  value,
);
const authz = fc.dictionary(authzKeys, authzValue, { maxKeys: 10 }).map((fields) => ({ fields }));
const headers = fc.dictionary(fc.oneof(key, fc.constantFrom('x-units', 'x-model', 'content-type')), fc.oneof(text, fc.constantFrom(' 42 ', '3.25', 'gpt')), { maxKeys: 5 });
const method_ = fc.constantFrom('METHOD_UNSPECIFIED', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 42);

const common = fc.record(
  {
    start_time: secondsNanos,
    time_to_last_downstream_tx_byte: secondsNanos,
    stream_id: text,
    metadata: fc.record(
      {
        filter_metadata: fc.oneof(
          authz.map((struct) => ({ [extAuthzNamespace]: struct })),
          fc.record({ [extAuthzNamespace]: authz, other: struct }, { requiredKeys: [] }),
          // Another filter's metadata before the ext_authz filter's.
          fc.record({ other: struct, [extAuthzNamespace]: authz }, { requiredKeys: [] }),
          fc.dictionary(key, struct, { maxKeys: 2 }),
        ),
        typed_filter_metadata: fc.dictionary(key, fc.record({ type_url: text, value: fc.uint8Array({ maxLength: 8 }) }), { maxKeys: 2 }),
      },
      { requiredKeys: [] },
    ),
    // Fields Tollgate does not read, of every wire type.
    sample_rate: fc.double(),
    upstream_cluster: text,
    route_name: text,
    upstream_request_attempt_count: fc.nat(),
    custom_tags: headers,
    response_flags: fc.record({ rate_limited: fc.boolean(), no_route_found: fc.boolean() }, { requiredKeys: [] }),
    downstream_remote_address: fc.record({ socket_address: fc.record({ address: text, port_value: fc.nat(65535) }) }),
    tls_properties: fc.record({ tls_sni_hostname: text, tls_cipher_suite: fc.record({ value: fc.nat() }), tls_version: fc.constantFrom('TLSv1_2', 'TLSv1_3') }, { requiredKeys: [] }),
    duration: secondsNanos,
    downstream_wire_bytes_sent: uint64,
    access_log_type: fc.constantFrom('NotSet', 'DownstreamEnd'),
  },
  { requiredKeys: [] },
);
const request = fc.record(
  {
    request_method: method_,
    request_id: text,
    request_headers_bytes: uint64,
    request_body_bytes: uint64,
    request_headers: headers,
    scheme: text,
    authority: text,
    path: text,
    port: fc.record({ value: fc.nat() }),
    user_agent: text,
    upstream_header_bytes_sent: uint64,
  },
  { requiredKeys: [] },
);
const response = fc.record(
  {
    response_code: fc.record({ value: fc.oneof(fc.integer({ min: 100, max: 599 }), fc.nat({ max: 2 ** 32 - 1 })) }, { requiredKeys: [] }),
    response_headers_bytes: uint64,
    response_body_bytes: uint64,
    response_headers: headers,
    response_trailers: headers,
    response_code_details: text,
    upstream_header_bytes_received: uint64,
  },
  { requiredKeys: [] },
);
const entry = fc.record(
  { common_properties: common, protocol_version: fc.constantFrom('HTTP11', 'HTTP2'), request, response },
  { requiredKeys: [] },
);
const identifier = fc.record(
  {
    node: fc.record({ id: text, cluster: text, user_agent_name: text, metadata: struct, locality: fc.record({ region: text, zone: text }) }, { requiredKeys: [] }),
    log_name: text,
  },
  { requiredKeys: [] },
);
const tcpEntry = fc.record(
  { common_properties: fc.record({ upstream_cluster: text, start_time: secondsNanos }, { requiredKeys: [] }), connection_properties: fc.record({ received_bytes: uint64, sent_bytes: uint64 }) },
  { requiredKeys: [] },
);
const noUnknown = fc.constant([] as UnknownField[]);
const unknowns = fc.oneof(noUnknown, fc.array(unknownField, { minLength: 1, maxLength: 3 }));
const httpMessage = fc.record({
  kind: fc.constant('http' as const),
  entries: fc.array(fc.record({ entry, unknown: unknowns }), { minLength: 1, maxLength: 6 }),
  unknownInLogs: unknowns,
  unknown: unknowns,
});
const tcpMessage = fc.record({ kind: fc.constant('tcp' as const), entries: fc.array(tcpEntry, { maxLength: 3 }), unknown: unknowns });
/** A stream: the identifier only in the first message, then HTTP batches and TCP batches (Envoy sends either). */
const stream = fc.record({
  identifier,
  first: fc.oneof(httpMessage, fc.constant(null)),
  rest: fc.array(fc.oneof({ weight: 4, arbitrary: httpMessage }, { weight: 1, arbitrary: tcpMessage }), { maxLength: 4 }),
});

type MessageSpec = typeof httpMessage extends fc.Arbitrary<infer H> ? (typeof tcpMessage extends fc.Arbitrary<infer T> ? H | T : never) : never;

function encodeMessage(spec: MessageSpec | null, withIdentifier?: unknown): Buffer {
  const parts: Buffer[] = [];
  if (withIdentifier) parts.push(method.requestSerialize({ identifier: withIdentifier }));
  if (spec?.kind === 'http') {
    const logs = Buffer.concat([
      ...spec.entries.map(({ entry, unknown }) => delimited(1, Buffer.concat([encodeEntry(entry), encodeUnknown(unknown)]))),
      encodeUnknown(spec.unknownInLogs),
    ]);
    parts.push(delimited(2, logs));
  } else if (spec?.kind === 'tcp') {
    parts.push(method.requestSerialize({ tcp_logs: { log_entry: spec.entries } }));
  }
  if (spec) parts.push(encodeUnknown(spec.unknown));
  return Buffer.concat(parts);
}

// --- what metering reads (als-wire.ts), from either decoding ---

const picked = <T extends object>(object: T | undefined, keys: (keyof T)[]) =>
  object === undefined ? undefined : Object.fromEntries(keys.filter((name) => object[name] !== undefined).map((name) => [name, object[name]]));

function readEntry(entry: HttpAccessLogEntryWire) {
  const common = entry.common_properties;
  return {
    common: common && picked(common, ['start_time', 'time_to_last_downstream_tx_byte', 'stream_id', 'authz']),
    request: picked(entry.request, ['request_method', 'request_id', 'request_headers_bytes', 'request_body_bytes', 'request_headers']),
    response: picked(entry.response, ['response_code', 'response_headers_bytes', 'response_body_bytes', 'response_headers']),
    event: toUsageEvent(entry, context),
  };
}

type ReferenceEntry = Omit<HttpAccessLogEntryWire, 'common_properties'> & {
  common_properties?: Omit<NonNullable<HttpAccessLogEntryWire['common_properties']>, 'authz'> & {
    metadata?: { filter_metadata?: Record<string, Parameters<typeof fromStruct>[0]> };
  };
};

/** A message with its HTTP entries decoded: protobufjs's shape. */
type DecodedMessage = Omit<StreamAccessLogsMessageWire, 'http_logs'> & { http_logs?: { log_entry?: HttpAccessLogEntryWire[] } };

/** Our decoding, each located entry decoded as metering's general path decodes it. */
function ours(bytes: Buffer): DecodedMessage {
  const message = decodeStreamAccessLogsMessage(bytes);
  const entries = decodedEntries(message.http_logs);
  return { ...message, http_logs: message.http_logs && (entries ? { log_entry: entries } : {}) };
}

/** protobufjs's decoding in our decoder's shape: the ext_authz Struct as fromStruct reads it, other metadata dropped. */
function asOurs(message: Omit<StreamAccessLogsMessageWire, 'http_logs'> & { http_logs?: { log_entry?: ReferenceEntry[] } }): DecodedMessage {
  const entries = message.http_logs?.log_entry?.map(({ common_properties, ...entry }): HttpAccessLogEntryWire => {
    if (!common_properties) return entry;
    const { metadata, ...common } = common_properties;
    const authz = metadata?.filter_metadata?.[extAuthzNamespace];
    return { ...entry, common_properties: authz ? { ...common, authz: fromStruct(authz) } : common };
  });
  return { ...message, http_logs: message.http_logs && (entries ? { log_entry: entries } : {}) };
}

function read(message: DecodedMessage) {
  return {
    identifier: message.identifier && { node: picked(message.identifier.node, ['id', 'cluster']), log_name: message.identifier.log_name },
    httpLogs: message.http_logs && { entries: message.http_logs.log_entry?.map(readEntry) },
    tcpLogs: message.tcp_logs !== undefined,
  };
}

const expectSameReading = (bytes: Buffer) => expect(read(ours(bytes))).toEqual(read(reference(bytes)));

describe('decodeStreamAccessLogsMessage', () => {
  it('reads any Envoy stream (identifier first, HTTP and TCP batches, unknown fields) as protobufjs does', () => {
    fc.assert(
      fc.property(stream, ({ identifier, first, rest }) => {
        expectSameReading(encodeMessage(first, identifier));
        for (const spec of rest) expectSameReading(encodeMessage(spec));
      }),
      { numRuns: 300 },
    );
  });

  it('reads a typical Envoy entry, including large uint64 byte counts as exact strings and non-ASCII text', () => {
    const entry = {
      common_properties: {
        start_time: { seconds: '1763202030', nanos: 456_000_000 },
        time_to_last_downstream_tx_byte: { seconds: '0', nanos: 8_500_000 },
        stream_id: 'strëam-😀',
        metadata: { filter_metadata: { [extAuthzNamespace]: { fields: { customer_id: { stringValue: 'cus_ü' }, plan_id: { stringValue: 'pro' }, weight: { numberValue: 2 } } } } },
      },
      request: { request_method: 'POST', request_id: 'req-é', request_headers_bytes: '18446744073709551615', request_body_bytes: '9007199254740993' },
      response: { response_code: { value: 201 }, response_headers_bytes: '180', response_body_bytes: '0', response_headers: { 'x-units': '日本' } },
    };
    const bytes = method.requestSerialize({ identifier: { node: { id: 'envoy-1', cluster: 'edge' }, log_name: 'tollgate' }, http_logs: { log_entry: [entry, {}, entry] } });
    const decoded = ours(bytes);
    expect(read(decoded)).toEqual(read(reference(bytes)));
    const first = decoded.http_logs!.log_entry![0]!;
    expect(first.request?.request_headers_bytes).toBe('18446744073709551615');
    expect(first.request?.request_body_bytes).toBe('9007199254740993');
    expect(first.common_properties?.stream_id).toBe('strëam-😀');
    expect(decoded.http_logs!.log_entry![1]).toEqual({});
    expect(decoded.identifier).toEqual({ node: { id: 'envoy-1', cluster: 'edge' }, log_name: 'tollgate' });
  });

  it('decodes negative int64 seconds and empty messages as protobufjs does', () => {
    for (const message of [
      {},
      { identifier: { log_name: 'x' } },
      { http_logs: {} },
      { tcp_logs: { log_entry: [{}] } },
      { http_logs: { log_entry: [{ common_properties: { start_time: { seconds: '-9223372036854775808', nanos: -1 } } }] } },
    ]) {
      expectSameReading(method.requestSerialize(message));
    }
  });

  it('tells apart map keys that differ only in bytes its key cache does not hash', () => {
    for (let round = 0; round < 3; round++) {
      const fields = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`a${i}bc`, { stringValue: `v${i}-${round}` }]));
      const headers = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`x${9 - i}yz`, String(i)]));
      const bytes = method.requestSerialize({
        http_logs: { log_entry: [{ common_properties: { metadata: { filter_metadata: { [extAuthzNamespace]: { fields } } } }, response: { response_headers: headers } }] },
      });
      expectSameReading(bytes);
      const entry = ours(bytes).http_logs!.log_entry![0]!;
      expect(Object.keys(entry.common_properties!.authz!)).toEqual(Object.keys(fields));
      expect(entry.response!.response_headers).toEqual(headers);
    }
  });

  it("reads the ext_authz metadata whatever the order of a map entry's key and value, and repeated keys as protobufjs does", () => {
    const value = (scalar: Buffer) => delimited(2, scalar);
    const field = (name: string, valueBytes: Buffer, keyFirst = true) => {
      const parts = [delimited(1, Buffer.from(name)), valueBytes];
      return delimited(1, Buffer.concat(keyFirst ? parts : parts.reverse()));
    };
    const text = (content: string) => delimited(3, Buffer.from(content));
    const struct = Buffer.concat([
      field('customer_id', value(text('cus_1')), false),
      field('plan_id', value(text('free'))),
      field('plan_id', value(text('pro'))), // the later entry wins
      field('weight', value(text('dropped'))),
      field('weight', value(Buffer.alloc(0))), // ...even when it holds no scalar
    ]);
    const authzEntry = delimited(1, Buffer.concat([delimited(2, struct), delimited(1, Buffer.from(extAuthzNamespace))]));
    const otherEntry = delimited(1, Buffer.concat([delimited(1, Buffer.from('other.filter')), delimited(2, field('customer_id', value(text('spoofed'))))]));
    const common = delimited(17, Buffer.concat([authzEntry, otherEntry]));
    const bytes = delimited(2, delimited(1, delimited(1, common)));
    expectSameReading(bytes);
    expect(ours(bytes).http_logs!.log_entry![0]!.common_properties!.authz).toEqual({ customer_id: 'cus_1', plan_id: 'pro' });
  });

  it('rejects truncated messages instead of misreading them', () => {
    const bytes = method.requestSerialize({ http_logs: { log_entry: [{ request: { request_id: 'abcdef' } }] } });
    expect(() => decodeStreamAccessLogsMessage(bytes.subarray(0, bytes.length - 2))).toThrow();
  });
});

// --- metering's fast path: rows read straight from the bytes equal the general path's ---

const captureCatalog = parseCatalog(`version: 1
products:
  - id: api
    name: API
    endpoints:
      - { id: search, method: GET, path: /api/v1/search, tags: [basic] }
plans:
  - id: custom
    product: api
    name: Custom prices
    entitlements: [basic]
    capture:
      - { name: price, from: response_header, header: x-custom-price, type: decimal }
    pricing: { currency: USD, recurring_fee: "10.00" }
`);
const rotatedIdentity = new UsageIdentity(['a-newer-usage-signing-key-0123456789', testUsageSigningKey]);

const plainId = fc.oneof(fc.constantFrom('cus_1', 'sub_1', 'list-pets', 'x'), fc.stringMatching(/^[\x20-\x7e]{0,12}$/));
const anyId = fc.oneof({ weight: 4, arbitrary: plainId }, { weight: 1, arbitrary: text });
const signedFactsArbitrary = fc.record({
  customer_id: anyId,
  subscription_id: anyId,
  plan_id: fc.oneof(fc.constantFrom('pro', 'free', 'custom', 'no-such-plan', ''), anyId),
  endpoint_id: anyId,
  weight: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: -3, max: -1 }), fc.maxSafeInteger()),
  period_start: fc.oneof(fc.constant(Date.UTC(2026, 10, 1)), fc.integer({ min: -1e12, max: 4e12 })),
});
/** How the entry's metadata differs from what the Check signed, if at all. */
const tampering = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
  fc.record({ kind: fc.constant('fact' as const), name: fc.constantFrom('customer_id', 'plan_id', 'weight', 'period_start', 'usage_id', 'decision'), value: fc.oneof(plainId, fc.double(), fc.boolean()) }),
  fc.record({ kind: fc.constant('signature' as const), at: fc.nat(21), to: fc.constantFrom('A', '+', '/', '_', '-', '=', 'é') }),
  fc.record({ kind: fc.constant('drop' as const), name: fc.constantFrom('usage_sig', 'usage_id', 'weight', 'decision') }),
);
const signedEntry = fc.record({
  facts: signedFactsArbitrary,
  rotatedKey: fc.boolean(),
  extra: fc.dictionary(fc.constantFrom('product_id', 'key_id', 'request_id', 'reason'), fc.oneof(anyId, fc.integer(), fc.boolean()), { maxKeys: 4 }),
  tampering,
  entry,
  headers: fc.option(fc.dictionary(fc.constantFrom('x-custom-price', 'x-other'), fc.constantFrom('1.25', ' 7 ', 'x'), { maxKeys: 2 }), { nil: undefined }),
});

type SignedEntrySpec = typeof signedEntry extends fc.Arbitrary<infer T> ? T : never;

/** An arbitrary Envoy entry carrying ext_authz metadata the Check signed, then perhaps altered. */
function signedEntryOf(spec: SignedEntrySpec): unknown {
  const metadata: Record<string, string | number | boolean> = signedAllow(spec.facts, spec.rotatedKey ? rotatedIdentity : testUsageIdentity);
  Object.assign(metadata, spec.extra);
  const { tampering: change } = spec;
  if (change.kind === 'fact') metadata[change.name] = change.value;
  if (change.kind === 'signature') {
    const signature = metadata.usage_sig as string;
    metadata.usage_sig = signature.slice(0, change.at) + change.to + signature.slice(change.at + 1);
  }
  if (change.kind === 'drop') delete metadata[change.name];
  const generated = spec.entry as { common_properties?: { metadata?: unknown }; response?: Record<string, unknown> };
  return {
    ...generated,
    common_properties: { ...generated.common_properties, metadata: { filter_metadata: { [extAuthzNamespace]: toStruct(metadata) } } },
    ...(spec.headers ? { response: { ...generated.response, response_headers: spec.headers } } : {}),
  };
}

describe('encodeEntryRows', () => {
  const generalRows = (entries: HttpAccessLogEntryWire[], rowContext: MeteringContext) => entries.map((each) => encodeEventRow(toUsageEvent(each, rowContext))).join('');

  it('writes the rows the general path writes, for signed, altered and arbitrary entries, taking the fast path for most signed ones', () => {
    const taken = { fast: 0, general: 0 };
    const counting = {
      verify: (metadata: Parameters<UsageIdentity['verify']>[0]) => (taken.general++, rotatedIdentity.verify(metadata)),
      verifiesBytes: (bytes: Uint8Array, facts: SignedFactSpans) => {
        const verified = rotatedIdentity.verifiesBytes(bytes, facts);
        if (verified) taken.fast++;
        return verified;
      },
    };
    fc.assert(
      fc.property(fc.array(fc.oneof({ weight: 3, arbitrary: signedEntry.map(signedEntryOf) }, entry), { minLength: 1, maxLength: 6 }), fc.boolean(), (entries, capturing) => {
        const rowContext: MeteringContext = { ...context, catalog: capturing ? captureCatalog : petstore, usage: counting };
        const bytes = method.requestSerialize({ http_logs: { log_entry: entries } });
        const rows = encodeEntryRows(decodeStreamAccessLogsMessage(bytes).http_logs!, rowContext).toString('utf8');
        expect(rows).toBe(generalRows(reference(bytes).http_logs!.log_entry!, rowContext));
      }),
      { numRuns: 1_000 },
    );
    expect(taken.fast).toBeGreaterThan(200);
    expect(taken.general).toBeGreaterThan(100);
  });

  it('refuses exactly the entries the general decoder refuses, with its error', () => {
    const sample = fc.sample(signedEntry.map(signedEntryOf), { numRuns: 20, seed: 7 });
    fc.assert(
      fc.property(fc.constantFrom(...sample), fc.array(fc.record({ at: fc.nat(), value: fc.nat(255) }), { minLength: 1, maxLength: 3 }), (one, edits) => {
        const bytes = Buffer.from(method.requestSerialize({ http_logs: { log_entry: [one, one] } }));
        for (const edit of edits) bytes[edit.at % bytes.length] = edit.value;
        let logs;
        try {
          logs = decodeStreamAccessLogsMessage(bytes).http_logs;
        } catch {
          return; // the message itself does not decode: no entry is read
        }
        if (!logs) return;
        let expected: string | Error;
        try {
          expected = generalRows(decodedEntries(logs) ?? [], context);
        } catch (error) {
          expected = error as Error;
        }
        if (expected instanceof Error) expect(() => encodeEntryRows(logs, context)).toThrow(expected.message);
        else expect(encodeEntryRows(logs, context).toString('utf8')).toBe(expected);
      }),
      { numRuns: 3_000 },
    );
  });
});
