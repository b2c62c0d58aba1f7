import type { Decision, DenialStatus, PreEncodedAllowParts } from './decision.js';

/**
 * Encodes a Check decision straight to envoy.service.auth.v3.CheckResponse bytes: the one message on the hot path.
 * protobufjs's reflective encoder, fed from an intermediate object, spent ~19 µs on a typical allow response (as
 * much as the whole Redis round trip). This writes each field once into a reused buffer, reserving one byte for
 * each nested message's length and moving the bytes only in the rare case it needs more. The parts an allowed call
 * shares with a key's other calls (identity headers, metadata facts) come pre-encoded in the decision
 * (preEncodeAllowParts, called when a compiled plan is bound to a key: check-plan.ts), and are copied.
 * test/check-response-encoder.test.ts proves the bytes decode, with the canonical protos, to what protobufjs makes
 * of the same response.
 * Field numbers: envoy/service/auth/v3/external_auth.proto, envoy/config/core/v3/base.proto,
 * envoy/type/v3/http_status.proto, google/rpc/status.proto, google/protobuf/{struct,wrappers}.proto.
 */

/** google.rpc.Code for each denial status: any non-zero code denies, the HTTP status is what the client sees. */
export const grpcCodeFor: Record<DenialStatus, number> = { 400: 3, 401: 16, 402: 9, 403: 7, 429: 8, 503: 14 };

// Tags are (field << 3) | wire type; all our fields are below 16, so every tag is one byte.
const tag = (field: number, wireType: 0 | 1 | 2) => (field << 3) | wireType;

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

class Writer {
  buffer: Buffer;
  position = 0;

  constructor(size = 16 * 1024) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  /** Makes room for `bytes` more. */
  reserve(bytes: number): void {
    if (this.position + bytes <= this.buffer.length) return;
    const larger = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.position + bytes));
    this.buffer.copy(larger, 0, 0, this.position);
    this.buffer = larger;
  }

  varint(value: number): void {
    this.reserve(10);
    this.position = this.varintAt(this.position, value);
  }

  /** Writes a varint where there is known to be room; returns the position after it. */
  private varintAt(at: number, value: number): number {
    while (value >= 0x80) {
      this.buffer[at++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buffer[at++] = value;
    return at;
  }

  /** Starts a nested message: its tag and one byte for its length; returns where its content starts. */
  begin(field: number): number {
    this.reserve(2);
    this.buffer[this.position++] = tag(field, 2);
    this.position++;
    return this.position;
  }

  /** Writes the length of the message begun at `start`, moving its content when the length needs more than a byte. */
  end(start: number): void {
    const length = this.position - start;
    if (length < 0x80) {
      this.buffer[start - 1] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.reserve(extra);
    this.buffer.copyWithin(start + extra, start, this.position);
    this.varintAt(start - 1, length);
    this.position += extra;
  }

  string(field: number, text: string): void {
    if (text.length === 0) return;
    // Up to three bytes per UTF-16 unit, plus the tag and a five-byte length.
    this.reserve(3 * text.length + 6);
    const { buffer } = this;
    if (text.length < 0x80) {
      // Short ASCII, the usual case, is copied by hand; anything else falls through to the UTF-8 encoder.
      const start = this.position;
      buffer[start] = tag(field, 2);
      buffer[start + 1] = text.length;
      let at = start + 2;
      let i = 0;
      for (; i < text.length; i++) {
        const unit = text.charCodeAt(i);
        if (unit > 0x7f) break;
        buffer[at++] = unit;
      }
      if (i === text.length) {
        this.position = at;
        return;
      }
    }
    const size = Buffer.byteLength(text, 'utf8');
    buffer[this.position++] = tag(field, 2);
    this.varint(size);
    this.position += this.buffer.write(text, this.position, 'utf8');
  }

  /** A HeaderValueOption that overwrites any client-sent header of that name (append=false), against spoofing. */
  overwritingHeader(field: number, name: string, value: string): void {
    const option = this.begin(field);
    const header = this.begin(1);
    this.string(1, name);
    this.string(2, value);
    this.end(header);
    // google.protobuf.BoolValue append=false: present but empty, which Envoy reads as "overwrite".
    this.reserve(2);
    this.buffer[this.position++] = tag(2, 2);
    this.buffer[this.position++] = 0;
    this.end(option);
  }

  headers(field: number, headers: Readonly<Record<string, string>>): void {
    for (const name in headers) this.overwritingHeader(field, name, headers[name]!);
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.position);
    this.position += bytes.length;
  }

  /**
   * google.protobuf.Struct of string and number values: `shared`'s entries (or their bytes, pre-encoded), then `own`'s.
   * A Struct is a map, so an entry of `own` wins over one of `shared` with the same name.
   */
  struct(field: number, shared: Readonly<Record<string, string | number>> | Uint8Array, own?: Readonly<Record<string, string | number>>): void {
    const struct = this.begin(field);
    if (shared instanceof Uint8Array) this.bytes(shared);
    else this.structEntries(shared);
    if (own) this.structEntries(own);
    this.end(struct);
  }

  structEntries(values: Readonly<Record<string, string | number>>): void {
    for (const key in values) {
      const entry = this.begin(1);
      this.string(1, key);
      const value = values[key]!;
      const wrapper = this.begin(2);
      if (typeof value === 'number') {
        this.reserve(9);
        this.buffer[this.position++] = tag(2, 1);
        this.position = this.buffer.writeDoubleLE(value, this.position);
      } else if (value === '') {
        // A oneof member is written even when empty: an empty string_value is set, an absent one is a null Value.
        this.reserve(2);
        this.buffer[this.position++] = tag(3, 2);
        this.buffer[this.position++] = 0;
      } else {
        this.string(3, value);
      }
      this.end(wrapper);
      this.end(entry);
    }
  }

  /** What was written as one uncompressed gRPC message: the 5-byte prefix, then the bytes (one copy). */
  takeFramed(): Buffer {
    const framed = Buffer.allocUnsafe(5 + this.position);
    framed[0] = 0;
    framed.writeUInt32BE(this.position, 1);
    this.buffer.copy(framed, 5, 0, this.position);
    this.position = 0;
    return framed;
  }
}

const writer = new Writer();

/** Writes pre-encoded parts; apart from `writer`, which may be part-way through a response. */
const partsWriter = new Writer(1024);

/**
 * An allowed call's shared parts as protobuf bytes: the upstream headers as CheckResponse.ok_response.headers entries,
 * the metadata as google.protobuf.Struct entries. The encoder copies them in place of encoding the records again.
 * Both lie in one allocation of their own, not in a slice of Node's shared buffer pool, which a long-held slice would
 * keep whole.
 */
export function preEncodeAllowParts(upstreamHeaders: Readonly<Record<string, string>>, metadata: Readonly<Record<string, string | number>>): PreEncodedAllowParts {
  partsWriter.position = 0;
  partsWriter.headers(2, upstreamHeaders);
  const headersEnd = partsWriter.position;
  partsWriter.structEntries(metadata);
  const bytes = new Uint8Array(partsWriter.buffer.subarray(0, partsWriter.position));
  return { upstreamHeaders: bytes.subarray(0, headersEnd), metadataEntries: bytes.subarray(headersEnd) };
}

/** The CheckResponse as the gRPC server sends it: framed, in one allocation. */
export function encodeCheckResponseFrame(decision: Decision): Buffer {
  writeCheckResponse(decision);
  return writer.takeFramed();
}

function writeCheckResponse(decision: Decision): void {
  writer.position = 0;
  const status = writer.begin(1);
  if (decision.allowed) {
    writer.end(status);
    const ok = writer.begin(3);
    if (decision.preEncoded) writer.bytes(decision.preEncoded.upstreamHeaders);
    else writer.headers(2, decision.upstreamHeaders);
    for (const name of decision.removeHeaders) writer.string(5, name);
    writer.headers(6, decision.responseHeaders);
    writer.end(ok);
  } else {
    writer.reserve(1);
    writer.buffer[writer.position++] = tag(1, 0);
    writer.varint(grpcCodeFor[decision.status]);
    writer.string(2, decision.code);
    writer.end(status);
    const denied = writer.begin(2);
    const httpStatus = writer.begin(1);
    writer.reserve(1);
    writer.buffer[writer.position++] = tag(1, 0);
    writer.varint(decision.status);
    writer.end(httpStatus);
    writer.overwritingHeader(2, 'content-type', 'application/json');
    writer.headers(2, decision.headers);
    writer.string(3, JSON.stringify(decision.body));
    writer.end(denied);
  }
  if (decision.allowed) writer.struct(4, decision.preEncoded?.metadataEntries ?? decision.metadata, decision.requestMetadata);
  else writer.struct(4, decision.metadata);
}
