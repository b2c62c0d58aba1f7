import { checkEnd, decodeHttpAccessLogEntry, decodeWith, delimitedEnd, extAuthzNamespace, type HttpLogEntries, r, skip, truncated, varint32, varint64 } from '../grpc/index.js';
import { writeInteger } from '../kernel/index.js';
import { encodeEventRow } from './event-rows.js';
import { durationMicros, epochMs, planRules, toUsageEvent, whyNotBillable, type MeteringContext, type PlanRules } from './event.js';

/**
 * A message's access-log entries as spool rows (COPY text, event-rows.ts), read where they lie in the message's bytes.
 *
 * The common entry, an allowed call whose signature verifies and whose plan captures nothing, is read in one pass over
 * its bytes: its fields are located, its signature checked over those bytes (UsageIdentity.verifiesBytes), and its row
 * written by copying them, with no strings or objects per entry. Decoding into objects, toUsageEvent and
 * encodeEventRow cost about three times as much. Every other entry, and any entry with something unusual (a byte
 * that needs escaping, a repeated message field, a number out of the plain range), takes that general path, which
 * also gives a malformed entry its error. test/als-decoder.test.ts proves both give the same rows.
 */
export function encodeEntryRows(entries: HttpLogEntries, context: MeteringContext, notBillable?: (reason: string) => void): Buffer {
  const { bytes, spans } = entries;
  const plan: PlanCache = { start: -1, end: -1, rules: undefined };
  out.at = 0; // a malformed entry may have thrown in the middle of the last message
  for (let i = 0; i < spans.length; i += 2) {
    const start = spans[i]!;
    const end = spans[i + 1]!;
    ensureRoom(end - start + maxNumbersBytes);
    const rowStart = out.at;
    if (readEntry(bytes, start, end) && writeRow(bytes, context, plan)) {
      if (fastReason !== null) notBillable?.(fastReason);
      continue;
    }
    out.at = rowStart;
    const event = toUsageEvent(decodeHttpAccessLogEntry(bytes, start, end), context);
    if (event.reason !== null) notBillable?.(event.decision === 'deny' ? 'denied' : event.reason);
    const row = encodeEventRow(event);
    ensureRoom(row.length * 3);
    out.at += out.bytes.write(row, out.at, 'utf8');
  }
  const rows = Buffer.allocUnsafe(out.at);
  out.bytes.copy(rows, 0, 0, out.at);
  // A message of many tiny entries grows the buffer far past a usual message's rows: let that memory go.
  if (out.bytes.length > maxKeptBytes) out.bytes = Buffer.allocUnsafeSlow(initialBytes);
  return rows;
}

// --- what one entry holds, in module state (one entry is read at a time, synchronously) ---

/** Why the row writeRow just wrote is not billable; null when it is. */
let fastReason: string | null = null;

/** The ext_authz metadata keys read here; the first five in signing order, their spans passed to verifiesBytes. */
const authzKeys = ['usage_id', 'customer_id', 'subscription_id', 'plan_id', 'endpoint_id', 'usage_sig', 'decision', 'product_id', 'key_id', 'request_id', 'period_start', 'weight'];
const [USAGE_ID, CUSTOMER, SUBSCRIPTION, PLAN, ENDPOINT, SIGNATURE, DECISION, PRODUCT, KEY, AUTHZ_REQUEST_ID, PERIOD_START, WEIGHT] = authzKeys.map((_, i) => i) as number[] as [
  number, number, number, number, number, number, number, number, number, number, number, number,
];
/** What a Struct value held, as fromStruct reads it: its string, else number, else bool. */
const ABSENT = 0;
const STRING = 1;
const NUMBER = 2;
const BOOL = 3;
const authzKinds = new Uint8Array(authzKeys.length);
/** Start and end of each string value; the signed facts' five spans first, viewed as signedSpans. */
const authzSpans = new Int32Array(2 * authzKeys.length);
const signedSpans = authzSpans.subarray(0, 2 * (ENDPOINT + 1));
const authzNumbers = new Float64Array(authzKeys.length);
const signedFacts = { spans: signedSpans, periodStart: 0, weight: 0, signatureAt: 0 };

/** A key's index by its length and first byte (all differ), then checked byte for byte. */
const authzKeyBytes = authzKeys.map((key) => Buffer.from(key, 'latin1'));
const authzKeyIndex = new Int8Array(64 * 256).fill(-1);
authzKeyBytes.forEach((key, i) => {
  if (authzKeyIndex[key.length * 256 + key[0]!] !== -1) throw new Error(`authz keys ${authzKeys[i]} and another share a length and first byte`);
  authzKeyIndex[key.length * 256 + key[0]!] = i;
});
const namespaceBytes = Buffer.from(extAuthzNamespace, 'latin1');
const allowBytes = Buffer.from('allow', 'latin1');

const entry = {
  common: false,
  request: false,
  response: false,
  metadata: false,
  authz: false,
  startTime: false,
  startSeconds: 0,
  startNanos: 0,
  duration: false,
  durationSeconds: 0,
  durationNanos: 0,
  streamIdStart: -1,
  streamIdEnd: -1,
  requestIdStart: -1,
  requestIdEnd: -1,
  method: false,
  methodNumber: 0,
  /** response_code's value; -1 when absent. */
  status: -1,
  requestHeadersBytes: 0,
  requestBodyBytes: 0,
  responseHeadersBytes: 0,
  responseBodyBytes: 0,
  /** Set when a field's value takes the general path (seconds past 2106, negative ones). */
  unusual: false,
};

/** The last Value read: its kind, string span or number. */
const value = { kind: ABSENT, start: 0, end: 0, number: 0 };

/**
 * Reads the entry at bytes[start, end) into the module state; false when it has to take the general path (something
 * unusual, or malformed: that path gives the error).
 */
function readEntry(bytes: Buffer, start: number, end: number): boolean {
  entry.common = entry.request = entry.response = entry.metadata = entry.authz = false;
  entry.startTime = entry.duration = entry.method = entry.unusual = false;
  entry.streamIdStart = entry.streamIdEnd = entry.requestIdStart = entry.requestIdEnd = -1;
  entry.status = -1;
  entry.requestHeadersBytes = entry.requestBodyBytes = entry.responseHeadersBytes = entry.responseBodyBytes = 0;
  authzKinds.fill(ABSENT);
  try {
    return decodeWith(bytes, 'StreamAccessLogsMessage', httpEntry, start, end) && !entry.unusual;
  } catch {
    return false;
  }
}

/**
 * HTTPAccessLogEntry, as als-decoder.ts reads it (the same fields, the same checks). A message field given twice
 * (which replaces the first there) sends the entry down the general path.
 */
function httpEntry(end: number): boolean {
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) {
      if (entry.common || !common()) return false;
      entry.common = true;
    } else if (tag === 26) {
      if (entry.request || !request()) return false;
      entry.request = true;
    } else if (tag === 34) {
      if (entry.response) return false;
      entry.response = true;
      response();
    } else skip(tag & 7);
  }
  checkEnd(end);
  return true;
}

/** AccessLogCommon: start_time = 5, time_to_last_downstream_tx_byte = 12, metadata = 17, stream_id = 26. */
function common(): boolean {
  const end = delimitedEnd();
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 42) {
      entry.startTime = true;
      entry.startSeconds = secondsNanos();
      entry.startNanos = value.number;
    } else if (tag === 98) {
      entry.duration = true;
      entry.durationSeconds = secondsNanos();
      entry.durationNanos = value.number;
    } else if (tag === 138) {
      if (entry.metadata || !metadata()) return false;
      entry.metadata = true;
    } else if (tag === 210) {
      const stringEnd = delimitedEnd();
      entry.streamIdStart = r.pos;
      entry.streamIdEnd = r.pos = stringEnd;
    } else skip(tag & 7);
  }
  checkEnd(end);
  return true;
}

/** Timestamp or Duration: returns its seconds, leaves its nanos in value.number. */
function secondsNanos(): number {
  const end = delimitedEnd();
  let seconds = 0;
  let nanos = 0;
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 8) {
      seconds = varint64();
      if (r.high !== 0) entry.unusual = true;
    } else if (tag === 16) nanos = varint32() | 0;
    else skip(tag & 7);
  }
  checkEnd(end);
  value.number = nanos;
  return seconds;
}

/** Metadata: filter_metadata = 1, map entries (key = 1, value = 2); only the ext_authz filter's Struct is read. */
function metadata(): boolean {
  const end = delimitedEnd();
  while (r.pos < end) {
    const tag = varint32();
    if (tag !== 10) {
      skip(tag & 7);
      continue;
    }
    const entryEnd = delimitedEnd();
    let keyStart = -1;
    let keyEnd = -1;
    let valueAt = -1;
    while (r.pos < entryEnd) {
      const field = varint32();
      if (field === 10) {
        keyEnd = delimitedEnd();
        keyStart = r.pos;
        r.pos = keyEnd;
      } else if (field === 18) {
        valueAt = r.pos;
        r.pos = delimitedEnd();
      } else skip(field & 7);
    }
    checkEnd(entryEnd);
    if (!equalBytes(r.buf, keyStart, keyEnd, namespaceBytes)) continue;
    if (entry.authz) return false;
    entry.authz = true;
    if (valueAt === -1) continue;
    const after = r.pos;
    r.pos = valueAt;
    struct();
    r.pos = after;
  }
  checkEnd(end);
  return true;
}

/** Struct: fields = 1, map entries (key = 1, value = 2); the later of a repeated key wins, even holding no scalar. */
function struct(): void {
  const end = delimitedEnd();
  while (r.pos < end) {
    const tag = varint32();
    if (tag !== 10) {
      skip(tag & 7);
      continue;
    }
    const entryEnd = delimitedEnd();
    let keyStart = -1;
    let keyEnd = -1;
    let kind = ABSENT;
    while (r.pos < entryEnd) {
      const field = varint32();
      if (field === 10) {
        keyEnd = delimitedEnd();
        keyStart = r.pos;
        r.pos = keyEnd;
      } else if (field === 18) kind = scalarValue();
      else skip(field & 7);
    }
    checkEnd(entryEnd);
    const length = keyEnd - keyStart;
    if (keyStart === -1 || length >= 64 || length === 0) continue;
    const index = authzKeyIndex[length * 256 + r.buf[keyStart]!]!;
    if (index === -1 || !equalBytes(r.buf, keyStart, keyEnd, authzKeyBytes[index]!)) continue;
    authzKinds[index] = kind;
    authzSpans[2 * index] = value.start;
    authzSpans[2 * index + 1] = value.end;
    authzNumbers[index] = value.number;
  }
  checkEnd(end);
}

/** google.protobuf.Value: number_value = 2, string_value = 3, bool_value = 4; returns its kind, the rest in `value`. */
function scalarValue(): number {
  const end = delimitedEnd();
  let text = false;
  let number = false;
  let flag = false;
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 26) {
      const stringEnd = delimitedEnd();
      value.start = r.pos;
      value.end = r.pos = stringEnd;
      text = true;
    } else if (tag === 17) {
      if (r.pos + 8 > end) throw truncated();
      value.number = r.buf.readDoubleLE(r.pos);
      r.pos += 8;
      number = true;
    } else if (tag === 32) {
      flag = true;
      varint32();
    } else skip(tag & 7);
  }
  checkEnd(end);
  return text ? STRING : number ? NUMBER : flag ? BOOL : ABSENT;
}

/** HTTPRequestProperties: request_method = 1, request_id = 9, request_headers_bytes = 11, request_body_bytes = 12, request_headers = 13. */
function request(): boolean {
  const end = delimitedEnd();
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 8) {
      entry.method = true;
      entry.methodNumber = varint32() | 0;
    } else if (tag === 74) {
      const stringEnd = delimitedEnd();
      entry.requestIdStart = r.pos;
      entry.requestIdEnd = r.pos = stringEnd;
    } else if (tag === 88) entry.requestHeadersBytes = count();
    else if (tag === 96) entry.requestBodyBytes = count();
    else if (tag === 106) stringMapEntry();
    else skip(tag & 7);
  }
  checkEnd(end);
  return true;
}

/** HTTPResponseProperties: response_code = 1 (UInt32Value: value = 1), response_headers_bytes = 2, response_body_bytes = 3, response_headers = 4. */
function response(): void {
  const end = delimitedEnd();
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) {
      const codeEnd = delimitedEnd();
      entry.status = -1;
      while (r.pos < codeEnd) {
        const field = varint32();
        if (field === 8) entry.status = varint32();
        else skip(field & 7);
      }
      checkEnd(codeEnd);
    } else if (tag === 16) entry.responseHeadersBytes = count();
    else if (tag === 24) entry.responseBodyBytes = count();
    else if (tag === 34) stringMapEntry();
    else skip(tag & 7);
  }
  checkEnd(end);
}

/** A uint64 byte count as toUsageEvent counts it: 0 unless a safe integer. */
function count(): number {
  const low = varint64();
  return r.high < 0x200000 ? r.high * 2 ** 32 + low : 0;
}

/** A header map entry (key = 1, value = 2): checked, not read (only capture reads headers, on the general path). */
function stringMapEntry(): void {
  const end = delimitedEnd();
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10 || tag === 18) r.pos = delimitedEnd();
    else skip(tag & 7);
  }
  checkEnd(end);
}

function equalBytes(bytes: Buffer, start: number, end: number, expected: Buffer): boolean {
  if (start === -1 || end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[start + i] !== expected[i]) return false;
  return true;
}

// --- the row ---

/** The rules of the plan an earlier entry of the message named at bytes[start, end). */
interface PlanCache {
  start: number;
  end: number;
  rules: PlanRules | undefined;
}

/** The signed plan's rules, looked up again only when its bytes differ from the previous entry's. */
function rulesOf(bytes: Buffer, plan: PlanCache, context: MeteringContext): PlanRules | undefined {
  const start = authzSpans[2 * PLAN]!;
  const end = authzSpans[2 * PLAN + 1]!;
  if (plan.start === -1 || bytes.compare(bytes, plan.start, plan.end, start, end) !== 0) {
    plan.start = start;
    plan.end = end;
    plan.rules = planRules(context.catalog, bytes.toString('latin1', start, end));
  }
  return plan.rules;
}

const initialBytes = 1 << 16;
const maxKeptBytes = 1 << 20;
const out = { bytes: Buffer.allocUnsafeSlow(initialBytes), at: 0 };
/** Room for a row beyond the bytes it copies: its numbers, tabs and fixed words. */
const maxNumbersBytes = 512;

function ensureRoom(bytes: number): void {
  if (out.at + bytes <= out.bytes.length) return;
  const grown = Buffer.allocUnsafeSlow(Math.max(out.bytes.length * 2, out.at + bytes));
  out.bytes.copy(grown, 0, 0, out.at);
  out.bytes = grown;
}

const requiredTexts = [USAGE_ID, CUSTOMER, SUBSCRIPTION, PLAN, ENDPOINT, SIGNATURE, DECISION];
const customerSubscriptionPlan = [CUSTOMER, SUBSCRIPTION, PLAN];
const requestMethods = ['METHOD_UNSPECIFIED', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'].map((name) => Buffer.from(name, 'latin1'));
const TAB = 0x09;

/**
 * The row of an allowed call whose signature verifies and whose plan captures nothing, in stagingColumns' order, as
 * encodeEventRow(toUsageEvent(...)) writes it; false (nothing kept) for any other entry.
 */
function writeRow(bytes: Buffer, context: MeteringContext, plan: PlanCache): boolean {
  for (const index of requiredTexts) if (authzKinds[index] !== STRING) return false;
  if (authzKinds[PERIOD_START] !== NUMBER || authzKinds[WEIGHT] !== NUMBER) return false;
  if (!equalBytes(bytes, authzSpans[2 * DECISION]!, authzSpans[2 * DECISION + 1]!, allowBytes)) return false;
  const periodStart = authzNumbers[PERIOD_START]!;
  const weight = authzNumbers[WEIGHT]!;
  if (!Number.isSafeInteger(periodStart) || !Number.isSafeInteger(weight)) return false;
  const signatureAt = authzSpans[2 * SIGNATURE]!;
  if (authzSpans[2 * SIGNATURE + 1]! - signatureAt !== 22) return false;
  const requestBytes = entry.requestHeadersBytes + entry.requestBodyBytes;
  const responseBytes = entry.responseHeadersBytes + entry.responseBodyBytes;
  if (!Number.isSafeInteger(requestBytes) || !Number.isSafeInteger(responseBytes)) return false;
  signedFacts.periodStart = periodStart;
  signedFacts.weight = weight;
  signedFacts.signatureAt = signatureAt;
  // Checks that the signed ids are plain printable ASCII too: their bytes are then their row fields as they are.
  if (!context.usage.verifiesBytes(bytes, signedFacts)) return false;
  const rules = rulesOf(bytes, plan, context);
  if (rules?.capture.length) return false;

  const row = out.bytes;
  const status = entry.status >= 100 && entry.status <= 599 ? entry.status : null;
  const occurredAt = (entry.startTime ? epochMs(entry.startSeconds, entry.startNanos) : undefined) ?? context.now;
  const reason = whyNotBillable(rules, status);
  fastReason = reason;
  copy(bytes, USAGE_ID);
  row[out.at++] = TAB;
  // The client's x-request-id, else the Check's, else the stream id: the first that is not empty.
  let plain = true;
  if (entry.requestIdEnd > entry.requestIdStart) plain = copyPlain(bytes, entry.requestIdStart, entry.requestIdEnd);
  else if (authzKinds[AUTHZ_REQUEST_ID] === STRING && authzSpans[2 * AUTHZ_REQUEST_ID + 1]! > authzSpans[2 * AUTHZ_REQUEST_ID]!) {
    plain = copyPlain(bytes, authzSpans[2 * AUTHZ_REQUEST_ID]!, authzSpans[2 * AUTHZ_REQUEST_ID + 1]!);
  } else if (entry.streamIdEnd > entry.streamIdStart) plain = copyPlain(bytes, entry.streamIdStart, entry.streamIdEnd);
  else writeNull();
  if (!plain) return false;
  row[out.at++] = TAB;
  out.at = writeInteger(row, out.at, occurredAt);
  row[out.at++] = TAB;
  out.at = writeInteger(row, out.at, periodStart);
  for (const index of customerSubscriptionPlan) {
    row[out.at++] = TAB;
    copy(bytes, index);
  }
  row[out.at++] = TAB;
  if (!optionalText(bytes, PRODUCT)) return false;
  row[out.at++] = TAB;
  copy(bytes, ENDPOINT);
  row[out.at++] = TAB;
  if (!optionalText(bytes, KEY)) return false;
  row[out.at++] = TAB;
  const method = entry.methodNumber;
  if (!entry.method || method === 0) writeNull();
  else if (method > 0 && method < requestMethods.length) out.at += requestMethods[method]!.copy(row, out.at);
  else out.at = writeInteger(row, out.at, method);
  row[out.at++] = TAB;
  if (status === null) writeNull();
  else out.at = writeInteger(row, out.at, status);
  row[out.at++] = TAB;
  out.at = writeInteger(row, out.at, weight);
  row[out.at++] = TAB;
  out.at = writeInteger(row, out.at, requestBytes);
  row[out.at++] = TAB;
  out.at = writeInteger(row, out.at, responseBytes);
  row[out.at++] = TAB;
  const duration = entry.duration ? durationMicros(entry.durationSeconds, entry.durationNanos) : null;
  if (duration === null) writeNull();
  else out.at = writeInteger(row, out.at, duration);
  row[out.at++] = TAB;
  out.at += allowBytes.copy(row, out.at);
  row[out.at++] = TAB;
  if (reason === null) writeNull();
  else out.at += row.write(reason, out.at, 'latin1');
  row[out.at++] = TAB;
  row[out.at++] = reason === null ? 0x74 : 0x66; // t, f
  row[out.at++] = TAB;
  writeNull(); // captured: the plan captures nothing
  row[out.at++] = 0x0a;
  return true;
}

/** A signed id: already checked to be plain by verifiesBytes. */
function copy(bytes: Buffer, index: number): void {
  const row = out.bytes;
  for (let p = authzSpans[2 * index]!, end = authzSpans[2 * index + 1]!; p < end; p++) row[out.at++] = bytes[p]!;
}

/** Copies bytes[start, end) when every byte is printable ASCII other than '\' (nothing to escape in COPY text). */
function copyPlain(bytes: Buffer, start: number, end: number): boolean {
  const row = out.bytes;
  for (let p = start; p < end; p++) {
    const byte = bytes[p]!;
    if (byte < 0x20 || byte > 0x7e || byte === 0x5c) return false;
    row[out.at++] = byte;
  }
  return true;
}

/** A metadata string that is null when absent, empty or not a string. */
function optionalText(bytes: Buffer, index: number): boolean {
  const start = authzSpans[2 * index]!;
  const end = authzSpans[2 * index + 1]!;
  if (authzKinds[index] !== STRING || end === start) {
    writeNull();
    return true;
  }
  return copyPlain(bytes, start, end);
}

function writeNull(): void {
  out.bytes[out.at++] = 0x5c; // \N
  out.bytes[out.at++] = 0x4e;
}
