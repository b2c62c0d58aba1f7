import fc from 'fast-check';

/** Raw protobuf writing for decoder tests: unknown fields, and nesting messages that carry them. */

export function varint(value: bigint): number[] {
  const bytes: number[] = [];
  let rest = BigInt.asUintN(64, value);
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return bytes;
}
export const delimited = (field: number, content: Buffer) => Buffer.concat([Buffer.from(varint(BigInt((field << 3) | 2))), Buffer.from(varint(BigInt(content.length))), content]);

/** A field number no message here declares, with any wire type Envoy could use. */
export const unknownField = fc.oneof(
  fc.record({ field: fc.integer({ min: 1000, max: 536_870_911 }), wire: fc.constant(0 as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  fc.record({ field: fc.integer({ min: 1000, max: 536_870_911 }), wire: fc.constantFrom(1 as const, 2 as const, 5 as const), bytes: fc.uint8Array({ maxLength: 30 }) }),
);
export type UnknownField = typeof unknownField extends fc.Arbitrary<infer T> ? T : never;
export function encodeUnknown(fields: UnknownField[]): Buffer {
  return Buffer.concat(
    fields.map((unknown) => {
      const tag = Buffer.from(varint(BigInt(unknown.field) * 8n + BigInt(unknown.wire)));
      if ('value' in unknown) return Buffer.concat([tag, Buffer.from(varint(unknown.value))]);
      if (unknown.wire === 2) return Buffer.concat([tag, Buffer.from(varint(BigInt(unknown.bytes.length))), Buffer.from(unknown.bytes)]);
      const size = unknown.wire === 1 ? 8 : 4;
      const fixed = Buffer.alloc(size);
      Buffer.from(unknown.bytes).copy(fixed, 0, 0, size);
      return Buffer.concat([tag, fixed]);
    }),
  );
}

/** Reads one varint at `at`, returning [value, next offset]. */
export function readVarint(bytes: Buffer, at: number): [number, number] {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
  }
}
