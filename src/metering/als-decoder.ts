import type { HttpAccessLogEntryWire, SecondsNanosWire, StreamAccessLogsMessageWire, StructWire } from './als-wire.js';

/**
 * A direct protobuf decoder for envoy.service.accesslog.v3.StreamAccessLogsMessage, the one message on the ingest
 * path. It reads only the fields metering uses (see als-wire.ts) and skips every other field by its wire type, giving
 * them the shape @grpc/proto-loader gives them with the options in src/grpc/protos.ts (keepCase, longs as strings,
 * enums by name, defaults off, maps absent when empty, Struct Values camelCase). protobufjs's reflective decode plus
 * toObject was ~40% of ingest CPU. test/als-decoder.test.ts proves it agrees with protobufjs on what metering reads.
 * Field numbers: envoy/service/accesslog/v3/als.proto, envoy/data/accesslog/v3/accesslog.proto,
 * envoy/config/core/v3/base.proto, google/protobuf/{struct,timestamp,duration,wrappers}.proto.
 */

// The decoder is synchronous and never re-entered, so the input and read position live in module state.
const empty = Buffer.alloc(0);
/** The input and read position; high holds the high 32 bits of the last varint read by varint64(). */
const r: { buf: Buffer; pos: number; high: number } = { buf: empty, pos: 0, high: 0 };

const truncated = () => new Error('invalid StreamAccessLogsMessage: truncated');

/** A varint's low 32 bits, unsigned (protobufjs's uint32: lengths, tags, uint32 fields). */
function varint32(): number {
  let byte = r.buf[r.pos++]!;
  if (byte < 0x80) return byte;
  let value = byte & 0x7f;
  byte = r.buf[r.pos++]!;
  value |= (byte & 0x7f) << 7;
  if (byte < 0x80) return value;
  byte = r.buf[r.pos++]!;
  value |= (byte & 0x7f) << 14;
  if (byte < 0x80) return value;
  byte = r.buf[r.pos++]!;
  value |= (byte & 0x7f) << 21;
  if (byte < 0x80) return value;
  byte = r.buf[r.pos++]!;
  value = (value | ((byte & 0x0f) << 28)) >>> 0;
  if (byte < 0x80) return value;
  // Bits 32..63 do not fit: skip up to five more bytes.
  for (let i = 0; i < 5; i++) if (r.buf[r.pos++]! < 0x80) return value;
  throw new Error('invalid StreamAccessLogsMessage: varint too long');
}

/** A varint's low 32 bits, unsigned; its high 32 bits are left in `r.high`. */
function varint64(): number {
  let low = 0;
  let shift = 0;
  let byte: number;
  for (; shift < 28; shift += 7) {
    byte = r.buf[r.pos++]!;
    low |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      r.high = 0;
      return low >>> 0;
    }
  }
  byte = r.buf[r.pos++]!;
  low |= (byte & 0x0f) << 28;
  let hi = (byte & 0x7f) >> 4;
  if (byte < 0x80) {
    r.high = hi;
    return low >>> 0;
  }
  for (shift = 3; shift < 32; shift += 7) {
    byte = r.buf[r.pos++]!;
    hi |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      r.high = hi >>> 0;
      return low >>> 0;
    }
  }
  throw new Error('invalid StreamAccessLogsMessage: varint too long');
}

const twoTo32 = 4294967296;

function uint64String(): string {
  const low = varint64();
  if (r.high === 0) return String(low);
  if (r.high < 0x200000) return String(r.high * twoTo32 + low);
  return BigInt.asUintN(64, (BigInt(r.high) << BigInt(32)) | BigInt(low)).toString();
}

function int64String(): string {
  const low = varint64();
  if (r.high === 0) return String(low);
  if (r.high < 0x200000) return String(r.high * twoTo32 + low);
  return BigInt.asIntN(64, (BigInt(r.high) << BigInt(32)) | BigInt(low)).toString();
}

/** End of a length-delimited field whose length comes next. */
function delimitedEnd(): number {
  const length = varint32();
  const end = r.pos + length;
  if (end > r.buf.length) throw truncated();
  return end;
}

const utf8Slice = (Buffer.prototype as unknown as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;

function string(): string {
  const end = delimitedEnd();
  const start = r.pos;
  r.pos = end;
  return text(start, end);
}

/**
 * Short ASCII strings (names, enum-like values) are built by hand, which beats a native call; up to 12 characters V8
 * keeps a concatenation flat, so longer ones go to utf8Slice.
 */
function text(start: number, end: number): string {
  if (end - start > 12) return slice(start, end);
  let out = '';
  for (let i = start; i < end; i++) {
    const byte = r.buf[i]!;
    if (byte >= 0x80) return slice(start, end);
    out += String.fromCharCode(byte);
  }
  return out;
}

const slice = (start: number, end: number) => (utf8Slice ? utf8Slice.call(r.buf, start, end) : r.buf.toString('utf8', start, end));

/**
 * Map keys (Struct field names, filter namespaces, header names) repeat in every entry. A fresh string used as a
 * property key must be hashed and internalised on every store; handing back the string from a previous entry skips
 * both the decoding and that. A fixed direct-mapped table, so arbitrary keys cannot grow it.
 */
const cacheSlots = 512;
const maxCachedLength = 32;
const cachedBytes = new Uint8Array(cacheSlots * maxCachedLength);
const cachedLengths = new Int32Array(cacheSlots).fill(-1);
const cachedStrings: string[] = new Array<string>(cacheSlots).fill('');

/** A length-delimited string, from the cache when its bytes were seen recently. */
function cachedString(): string {
  const end = delimitedEnd();
  const { buf } = r;
  const start = r.pos;
  const length = end - start;
  r.pos = end;
  if (length === 0) return '';
  if (length > maxCachedLength) return slice(start, end);
  // Direct-mapped on length and three bytes; a miss replaces the slot.
  const slot = (length * 31 + buf[start]! * 7 + buf[end - 1]! * 3 + buf[start + (length >> 1)]!) & (cacheSlots - 1);
  const base = slot * maxCachedLength;
  if (cachedLengths[slot] === length) {
    let i = 0;
    while (i < length && cachedBytes[base + i] === buf[start + i]) i++;
    if (i === length) return cachedStrings[slot]!;
  }
  const decoded = text(start, end);
  for (let i = 0; i < length; i++) cachedBytes[base + i] = buf[start + i]!;
  cachedLengths[slot] = length;
  cachedStrings[slot] = decoded;
  return decoded;
}

function skip(wireType: number): void {
  switch (wireType) {
    case 0:
      varint64();
      return;
    case 1:
      r.pos += 8;
      return;
    case 2:
      r.pos = delimitedEnd();
      return;
    case 5:
      r.pos += 4;
      return;
    default:
      throw new Error(`invalid StreamAccessLogsMessage: unsupported wire type ${wireType}`);
  }
}

/** After a message's fields: reading past `end` means a field overran its enclosing message. */
function checkEnd(end: number): void {
  if (r.pos !== end) throw truncated();
}

// Tags: (field << 3) | wire type, 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
const requestMethods = ['METHOD_UNSPECIFIED', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];
const nullValue = 'NULL_VALUE';

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

type ValueWire = Record<string, unknown>;

/** google.protobuf.Value: null_value = 1, number_value = 2, string_value = 3, bool_value = 4, struct_value = 5, list_value = 6. */
function value(): ValueWire {
  const end = delimitedEnd();
  const out: ValueWire = {};
  while (r.pos < end) {
    const tag = varint32();
    switch (tag) {
      case 26:
        out.stringValue = string();
        break;
      case 17:
        if (r.pos + 8 > end) throw truncated();
        out.numberValue = r.buf.readDoubleLE(r.pos);
        r.pos += 8;
        break;
      case 32:
        out.boolValue = varint32() !== 0;
        break;
      case 8: {
        const n = varint32() | 0;
        out.nullValue = n === 0 ? nullValue : n;
        break;
      }
      case 42:
        out.structValue = struct();
        break;
      case 50:
        out.listValue = listValue();
        break;
      default:
        skip(tag & 7);
    }
  }
  checkEnd(end);
  return out;
}

/** google.protobuf.ListValue: repeated Value values = 1. */
function listValue(): { values?: ValueWire[] } {
  const end = delimitedEnd();
  const out: { values?: ValueWire[] } = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) (out.values ??= []).push(value());
    else skip(tag & 7);
  }
  checkEnd(end);
  return out;
}

/** google.protobuf.Struct: map<string, Value> fields = 1 (entries: key = 1, value = 2). */
function struct(): StructWire {
  const end = delimitedEnd();
  const out: StructWire = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag !== 10) {
      skip(tag & 7);
      continue;
    }
    const entryEnd = delimitedEnd();
    let name = '';
    let entry: ValueWire | undefined;
    while (r.pos < entryEnd) {
      const entryTag = varint32();
      if (entryTag === 10) name = cachedString();
      else if (entryTag === 18) entry = value();
      else skip(entryTag & 7);
    }
    checkEnd(entryEnd);
    // protobufjs assigns "__proto__" as a prototype, so it never shows up as a field.
    if (name !== '__proto__') (out.fields ??= {})[name] = (entry ?? {}) as NonNullable<StructWire['fields']>[string];
  }
  checkEnd(end);
  return out;
}

/** config.core.v3.Metadata: map<string, Struct> filter_metadata = 1. */
function metadata(): { filter_metadata?: Record<string, StructWire> } {
  const end = delimitedEnd();
  const out: { filter_metadata?: Record<string, StructWire> } = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag !== 10) {
      skip(tag & 7);
      continue;
    }
    const entryEnd = delimitedEnd();
    let name = '';
    let entry: StructWire | undefined;
    while (r.pos < entryEnd) {
      const entryTag = varint32();
      if (entryTag === 10) name = cachedString();
      else if (entryTag === 18) entry = struct();
      else skip(entryTag & 7);
    }
    checkEnd(entryEnd);
    if (name !== '__proto__') (out.filter_metadata ??= {})[name] = entry ?? {};
  }
  checkEnd(end);
  return out;
}

/** A map<string, string> entry (key = 1, value = 2), added to `map`; returns the map, created on first use. */
function stringMapEntry(map: Record<string, string> | undefined): Record<string, string> | undefined {
  const end = delimitedEnd();
  let name = '';
  let entry = '';
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) name = cachedString();
    else if (tag === 18) entry = string();
    else skip(tag & 7);
  }
  checkEnd(end);
  if (name === '__proto__') return map;
  map ??= {};
  map[name] = entry;
  return map;
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
      case 138: // 17 << 3 | 2, a two-byte tag
        out.metadata = metadata();
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
  const end = delimitedEnd();
  const out: { value?: number } = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 8) out.value = varint32();
    else skip(tag & 7);
  }
  checkEnd(end);
  return out;
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

/** HTTPAccessLogEntry: common_properties = 1, request = 3, response = 4. */
function httpEntry(): HttpAccessLogEntryWire {
  const end = delimitedEnd();
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

/** HTTPAccessLogEntries: repeated HTTPAccessLogEntry log_entry = 1. */
function httpLogs(): { log_entry?: HttpAccessLogEntryWire[] } {
  const end = delimitedEnd();
  const out: { log_entry?: HttpAccessLogEntryWire[] } = {};
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) (out.log_entry ??= []).push(httpEntry());
    else skip(tag & 7);
  }
  checkEnd(end);
  return out;
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

/**
 * StreamAccessLogsMessage: identifier = 1, http_logs = 2, tcp_logs = 3. TCP entries are not metered: tcp_logs is
 * recognised but its entries are skipped (it is given as an empty object).
 */
export function decodeStreamAccessLogsMessage(bytes: Buffer): StreamAccessLogsMessageWire {
  r.buf = bytes;
  r.pos = 0;
  try {
    const out: StreamAccessLogsMessageWire = {};
    const end = bytes.length;
    while (r.pos < end) {
      const tag = varint32();
      switch (tag) {
        case 10:
          out.identifier = identifier();
          break;
        case 18:
          out.http_logs = httpLogs();
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
  } finally {
    r.buf = empty; // do not keep the last message alive
  }
}
