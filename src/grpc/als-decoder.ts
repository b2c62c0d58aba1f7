import {
  cachedString,
  checkEnd,
  decodeWith,
  delimitedEnd,
  int64String,
  mapEntry,
  onlyField,
  r,
  skip,
  string,
  stringMapEntry,
  truncated,
  uint64String,
  varint32,
} from './protobuf-reader.js';
import { extAuthzNamespace, type AuthzMetadata, type HttpAccessLogEntryWire, type HttpLogEntries, type SecondsNanosWire, type StreamAccessLogsMessageWire, type UndecodableMessageWire } from './als-wire.js';

/**
 * A direct protobuf decoder for envoy.service.accesslog.v3.StreamAccessLogsMessage, the one message on the ingest
 * path. It reads only the fields metering uses (see als-wire.ts) and skips every other field by its wire type, giving
 * them the shape @grpc/proto-loader gives them with the options in src/grpc/protos.ts (keepCase, longs as strings,
 * enums by name, defaults off, maps absent when empty), except the entry's metadata: only the ext_authz filter's is
 * read, straight into the flat record fromStruct would make of it (`authz`). protobufjs's reflective decode plus
 * toObject was ~40% of ingest CPU. test/als-decoder.test.ts proves it agrees with protobufjs on what metering reads
 * from well-formed input. What it skips (other filters' metadata, non-scalar metadata values, unread fields) is
 * stepped over by its length and not validated inside.
 * Field numbers: envoy/service/accesslog/v3/als.proto, envoy/data/accesslog/v3/accesslog.proto,
 * envoy/config/core/v3/base.proto, google/protobuf/{struct,timestamp,duration,wrappers}.proto.
 */

// Tags: (field << 3) | wire type, 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
const requestMethods = ['METHOD_UNSPECIFIED', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

/** google.protobuf.Timestamp / Duration: seconds = 1 (int64), nanos = 2 (int32). */
function secondsNanos(): SecondsNanosWire {
  const end = delimitedEnd();
  const out: SecondsNanosWire = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 8) out.seconds = int64String();
    else if (tag === 16) out.nanos = varint32() | 0;
    else skip(tag & 7);
  }
  checkEnd(end);
  return out;
}

/**
 * google.protobuf.Value (null_value = 1, number_value = 2, string_value = 3, bool_value = 4, struct_value = 5,
 * list_value = 6) as fromStruct reads it: its string, else number, else bool value; undefined for the rest.
 */
function scalarValue(): string | number | boolean | undefined {
  const end = delimitedEnd();
  let text: string | undefined;
  let number: number | undefined;
  let flag: boolean | undefined;
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 26) text = cachedString();
    else if (tag === 17) {
      if (r.pos + 8 > end) throw truncated();
      number = r.buf.readDoubleLE(r.pos);
      r.pos += 8;
    } else if (tag === 32) flag = varint32() !== 0;
    else skip(tag & 7);
  }
  checkEnd(end);
  return text ?? number ?? flag;
}

/** google.protobuf.Struct (map<string, Value> fields = 1; entries: key = 1, value = 2), flattened as fromStruct does. */
function flatStruct(): AuthzMetadata {
  const out: AuthzMetadata = {};
  onlyField(delimitedEnd(), 10, () => {
    const value = mapEntry(scalarValue);
    // A repeated key: the last entry wins, as in a decoded map, even when it holds no scalar. "__proto__" is never a
    // field of fromStruct's plain-object result (assigning it sets the prototype), so it is not one here either.
    if (r.key === '__proto__') return;
    if (value === undefined) delete out[r.key];
    else out[r.key] = value;
  });
  return out;
}

/** Where a length-delimited value starts, stepping over it: for a map value read only once its key is known. */
function locate(): number {
  const at = r.pos;
  r.pos = delimitedEnd();
  return at;
}

/**
 * config.core.v3.Metadata (map<string, Struct> filter_metadata = 1): only the ext_authz filter's Struct is read, the
 * other filters' are skipped. A map entry may give its value before its key, so the value is located first.
 */
function authzMetadata(): AuthzMetadata | undefined {
  let out: AuthzMetadata | undefined;
  onlyField(delimitedEnd(), 10, () => {
    const valueAt = mapEntry(locate);
    if (r.key !== extAuthzNamespace) return;
    if (valueAt === undefined) {
      out = {};
      return;
    }
    const after = r.pos;
    r.pos = valueAt;
    out = flatStruct();
    r.pos = after;
  });
  return out;
}

type Common = NonNullable<HttpAccessLogEntryWire['common_properties']>;
type Request = NonNullable<HttpAccessLogEntryWire['request']>;
type Response = NonNullable<HttpAccessLogEntryWire['response']>;

/** AccessLogCommon: start_time = 5, time_to_last_downstream_tx_byte = 12, metadata = 17, stream_id = 26. */
function common(): Common {
  const end = delimitedEnd();
  const out: Common = {};
  while (r.pos < end) {
    const tag = varint32();
    switch (tag) {
      case 42:
        out.start_time = secondsNanos();
        break;
      case 98:
        out.time_to_last_downstream_tx_byte = secondsNanos();
        break;
      case 138: // metadata = 17: 17 << 3 | 2, a two-byte tag
        out.authz = authzMetadata();
        break;
      case 210: // 26 << 3 | 2
        out.stream_id = string();
        break;
      default:
        skip(tag & 7);
    }
  }
  checkEnd(end);
  return out;
}

/** HTTPRequestProperties: request_method = 1, request_id = 9, request_headers_bytes = 11, request_body_bytes = 12, request_headers = 13. */
function request(): Request {
  const end = delimitedEnd();
  const out: Request = {};
  let headers: Record<string, string> | undefined;
  while (r.pos < end) {
    const tag = varint32();
    switch (tag) {
      case 8: {
        const method = varint32() | 0;
        out.request_method = requestMethods[method] ?? (method as unknown as string);
        break;
      }
      case 74:
        out.request_id = string();
        break;
      case 88:
        out.request_headers_bytes = uint64String();
        break;
      case 96:
        out.request_body_bytes = uint64String();
        break;
      case 106:
        headers = stringMapEntry(headers);
        break;
      default:
        skip(tag & 7);
    }
  }
  checkEnd(end);
  if (headers) out.request_headers = headers;
  return out;
}

/** google.protobuf.UInt32Value: value = 1. */
function uint32Value(): { value?: number } {
  const value = onlyField(delimitedEnd(), 8, varint32);
  return value === undefined ? {} : { value };
}

/** HTTPResponseProperties: response_code = 1, response_headers_bytes = 2, response_body_bytes = 3, response_headers = 4. */
function response(): Response {
  const end = delimitedEnd();
  const out: Response = {};
  let headers: Record<string, string> | undefined;
  while (r.pos < end) {
    const tag = varint32();
    switch (tag) {
      case 10:
        out.response_code = uint32Value();
        break;
      case 16:
        out.response_headers_bytes = uint64String();
        break;
      case 24:
        out.response_body_bytes = uint64String();
        break;
      case 34:
        headers = stringMapEntry(headers);
        break;
      default:
        skip(tag & 7);
    }
  }
  checkEnd(end);
  if (headers) out.response_headers = headers;
  return out;
}

/** HTTPAccessLogEntry (common_properties = 1, request = 3, response = 4), up to `end`. */
function httpEntry(end: number): HttpAccessLogEntryWire {
  const out: HttpAccessLogEntryWire = {};
  while (r.pos < end) {
    const tag = varint32();
    switch (tag) {
      case 10:
        out.common_properties = common();
        break;
      case 26:
        out.request = request();
        break;
      case 34:
        out.response = response();
        break;
      default:
        skip(tag & 7);
    }
  }
  checkEnd(end);
  return out;
}

/**
 * HTTPAccessLogEntries (repeated HTTPAccessLogEntry log_entry = 1): each entry located, not decoded. Metering reads
 * them from the message's bytes (entry-rows.ts), or decodes one with decodeHttpAccessLogEntry.
 */
function httpLogs(bytes: Buffer): HttpLogEntries {
  const spans: number[] = [];
  onlyField(delimitedEnd(), 10, () => {
    const end = delimitedEnd();
    spans.push(r.pos, end);
    r.pos = end;
  });
  return { bytes, spans };
}

/** The HTTPAccessLogEntry at bytes[start, end) (located by decodeStreamAccessLogsMessage); throws if malformed. */
export function decodeHttpAccessLogEntry(bytes: Buffer, start: number, end: number): HttpAccessLogEntryWire {
  return decodeWith(bytes, 'StreamAccessLogsMessage', httpEntry, start, end);
}

/** config.core.v3.Node: id = 1, cluster = 2. */
function node(): { id?: string; cluster?: string } {
  const end = delimitedEnd();
  const out: { id?: string; cluster?: string } = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) out.id = string();
    else if (tag === 18) out.cluster = string();
    else skip(tag & 7);
  }
  checkEnd(end);
  return out;
}

type Identifier = NonNullable<StreamAccessLogsMessageWire['identifier']>;

/** Identifier: node = 1, log_name = 2. */
function identifier(): Identifier {
  const end = delimitedEnd();
  const out: Identifier = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) out.node = node();
    else if (tag === 18) out.log_name = string();
    else skip(tag & 7);
  }
  checkEnd(end);
  return out;
}

/** The ALS method's requestDeserialize: never throws, so that the handler answers a message that does not decode. */
export function deserializeStreamAccessLogsMessage(bytes: Buffer): StreamAccessLogsMessageWire | UndecodableMessageWire {
  try {
    return decodeStreamAccessLogsMessage(bytes);
  } catch (error) {
    return { undecodable: (error as Error).message };
  }
}

/**
 * StreamAccessLogsMessage: identifier = 1, http_logs = 2, tcp_logs = 3. HTTP entries are located, to be read where
 * they lie (see httpLogs). TCP entries are not metered: tcp_logs is recognised but its entries are skipped (it is
 * given as an empty object).
 */
export function decodeStreamAccessLogsMessage(bytes: Buffer): StreamAccessLogsMessageWire {
  return decodeWith(bytes, 'StreamAccessLogsMessage', (end) => {
    const out: StreamAccessLogsMessageWire = {};
    while (r.pos < end) {
      const tag = varint32();
      switch (tag) {
        case 10:
          out.identifier = identifier();
          break;
        case 18:
          out.http_logs = httpLogs(bytes);
          break;
        case 26:
          r.pos = delimitedEnd();
          out.tcp_logs = {};
          break;
        default:
          skip(tag & 7);
      }
    }
    checkEnd(end);
    return out;
  });
}
