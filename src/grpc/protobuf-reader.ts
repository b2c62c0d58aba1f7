/**
 * Reading primitives shared by the hand-written protobuf decoders of the hot paths (check/check-request-decoder.ts,
 * grpc/als-decoder.ts). Each decoder runs synchronously and is never re-entered, so the input and read position
 * live in module state rather than in an object passed to every call.
 */

const empty = Buffer.alloc(0);
/**
 * The input and read position; high holds the high 32 bits of the last varint read by varint64(); key the key of the
 * map entry mapEntry() read last; message names the message being decoded, for errors.
 */
export const r: { buf: Buffer; pos: number; high: number; key: string; message: string } = { buf: empty, pos: 0, high: 0, key: '', message: '' };

/** Decodes bytes[start, end) as (part of) the message named `message` with `read`, then lets go of the input. */
export function decodeWith<T>(bytes: Buffer, message: string, read: (end: number) => T, start = 0, end = bytes.length): T {
  r.buf = bytes;
  r.pos = start;
  r.message = message;
  try {
    return read(end);
  } finally {
    r.buf = empty; // do not keep the last message alive
  }
}

export const truncated = () => new Error(`invalid ${r.message}: truncated`);

/** A varint's low 32 bits, unsigned (protobufjs's uint32: lengths, tags, uint32 fields). */
export function varint32(): number {
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
  throw new Error(`invalid ${r.message}: varint too long`);
}

/** A varint's low 32 bits, unsigned; its high 32 bits are left in `r.high`. */
export function varint64(): number {
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
  throw new Error(`invalid ${r.message}: varint too long`);
}

const twoTo32 = 4294967296;

export function uint64String(): string {
  const low = varint64();
  if (r.high === 0) return String(low);
  if (r.high < 0x200000) return String(r.high * twoTo32 + low);
  return BigInt.asUintN(64, (BigInt(r.high) << BigInt(32)) | BigInt(low)).toString();
}

export function int64String(): string {
  const low = varint64();
  if (r.high === 0) return String(low);
  if (r.high < 0x200000) return String(r.high * twoTo32 + low);
  return BigInt.asIntN(64, (BigInt(r.high) << BigInt(32)) | BigInt(low)).toString();
}

/** End of a length-delimited field whose length comes next. */
export function delimitedEnd(): number {
  const length = varint32();
  const end = r.pos + length;
  if (end > r.buf.length) throw truncated();
  return end;
}

const utf8Slice = (Buffer.prototype as unknown as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;

export function string(): string {
  const end = delimitedEnd();
  const start = r.pos;
  r.pos = end;
  return text(start, end);
}

/**
 * Short ASCII strings (names, enum-like values) are built by hand, which beats a native call; up to 12 characters V8
 * keeps a concatenation flat, so longer ones go to utf8Slice.
 */
export function text(start: number, end: number): string {
  if (end - start > 12) return slice(start, end);
  let out = '';
  for (let i = start; i < end; i++) {
    const byte = r.buf[i]!;
    if (byte >= 0x80) return slice(start, end);
    out += String.fromCharCode(byte);
  }
  return out;
}

export const slice = (start: number, end: number) => (utf8Slice ? utf8Slice.call(r.buf, start, end) : r.buf.toString('utf8', start, end));

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
export function cachedString(): string {
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

export function skip(wireType: number): void {
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
      throw new Error(`invalid ${r.message}: unsupported wire type ${wireType}`);
  }
}

/**
 * The one field of interest, `tag`, of the message ending at `end`: each occurrence read with `read`, the last one
 * returned (undefined when there is none); every other field skipped.
 */
export function onlyField<T>(end: number, tag: number, read: () => T): T | undefined {
  let value: T | undefined;
  while (r.pos < end) {
    const next = varint32();
    if (next === tag) value = read();
    else skip(next & 7);
  }
  checkEnd(end);
  return value;
}

/**
 * A message whose one field of interest is `repeated <message> = 1` (HTTPAccessLogEntries, HeaderMap):
 * its items read with `read`, or undefined when there are none (proto-loader leaves an empty list out).
 */
export function repeatedFirstField<T>(read: () => T): T[] | undefined {
  let items: T[] | undefined;
  onlyField(delimitedEnd(), 10, () => (items ??= []).push(read()));
  return items;
}

/** A map entry (key = 1, value = 2): its value read with `read`, undefined when absent; its key is left in r.key. */
export function mapEntry<T>(read: () => T): T | undefined {
  const end = delimitedEnd();
  let key = '';
  let value: T | undefined;
  while (r.pos < end) {
    const tag = varint32();
    if (tag === 10) key = cachedString();
    else if (tag === 18) value = read();
    else skip(tag & 7);
  }
  checkEnd(end);
  r.key = key;
  return value;
}

/** After a message's fields: reading past `end` means a field overran its enclosing message. */
export function checkEnd(end: number): void {
  if (r.pos !== end) throw truncated();
}


/** A map<string, string> entry (key = 1, value = 2), added to `map`; returns the map, created on first use. */
export function stringMapEntry(map: Record<string, string> | undefined): Record<string, string> | undefined {
  const value = mapEntry(string) ?? '';
  if (r.key === '__proto__') return map;
  map ??= {};
  map[r.key] = value;
  return map;
}

