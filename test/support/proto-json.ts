// Strict proto3 JSON decoding for config files (Envoy bootstrap YAML and the like). protobufjs' fromObject silently
// drops unknown fields and coerces wrong types, so a misspelt Envoy field would pass unnoticed; this reader walks the
// JSON against the reflected message types and rejects everything the proto3 JSON mapping does not accept.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

type JsonObject = Record<string, unknown>;

export const protoDir = fileURLToPath(new URL('../../proto', import.meta.url));

export class ProtoJsonError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'ProtoJsonError';
  }
}

export interface StrictDecodeResult {
  message: protobuf.Message;
  /** JSON paths of the deprecated fields and enum values the input uses. */
  deprecated: string[];
}

/** Loads every .proto under `dir` (keepCase, like @grpc/proto-loader), so that any type an Any names resolves. */
export function loadProtoRoot(dir = protoDir): protobuf.Root {
  // Envoy's annotations import descriptor.proto, which protobufjs ships as JSON but does not register by itself.
  const require = createRequire(import.meta.url);
  const descriptor = require('protobufjs/google/protobuf/descriptor.json') as {
    nested: { google: { nested: { protobuf: { nested: JsonObject } } } };
  };
  protobuf.common('descriptor', descriptor.nested.google.nested.protobuf.nested);

  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    const local = join(dir, target);
    return existsSync(local) ? local : target;
  };
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.proto'));
  root.loadSync(files.sort(), { keepCase: true });
  root.resolveAll();
  return root;
}

/**
 * Decodes proto3 JSON (as parsed from JSON or YAML) into a message of `typeName`, strictly: unknown fields, wrong
 * types, unknown enum names, unresolvable Any types, two members of one oneof and null (except for
 * google.protobuf.Value) all throw a ProtoJsonError naming the JSON path. The result has been through the binary
 * encoding, as Envoy would receive it.
 */
export function decodeProtoJson(root: protobuf.Root, typeName: string, json: unknown): StrictDecodeResult {
  const type = root.lookupType(typeName);
  const reader = new StrictReader(root);
  const object = reader.message(type, json, '$');
  return { message: type.decode(type.encode(type.fromObject(object)).finish()), deprecated: reader.deprecated };
}

/**
 * Plain object view of a decoded message for assertions: snake_case keys, enum names, 64-bit integers as strings, Any
 * values unpacked beside their "@type". Well-known types keep their field form (a Duration is {seconds, nanos}).
 */
export function messageToObject(message: protobuf.Message): JsonObject {
  return message.$type.toObject(message, { json: true, enums: String, longs: String });
}

class StrictReader {
  readonly deprecated: string[] = [];

  constructor(private readonly root: protobuf.Root) {}

  /** Converts `json` into the object form protobufjs' fromObject expects for `type`. */
  message(type: protobuf.Type, json: unknown, path: string): JsonObject {
    if (type.fullName === '.google.protobuf.Any') return this.any(json, path);
    const wellKnown = wellKnownReaders.get(type.fullName);
    if (wellKnown) return wellKnown(json, path, type);

    const object = expectObject(json, path, type);
    const fields = fieldsByJsonName(type);
    const present = new Set<protobuf.Field>();
    const converted: JsonObject = {};
    for (const [key, value] of Object.entries(object)) {
      const fieldPath = `${path}.${key}`;
      const field = fields.get(key);
      if (!field) throw new ProtoJsonError(fieldPath, `unknown field "${key}" in ${typeLabel(type)}`);
      if (present.has(field)) throw new ProtoJsonError(fieldPath, `field ${field.name} is given twice`);
      present.add(field);
      if (field.options?.['deprecated'] === true) this.deprecated.push(fieldPath);
      converted[field.name] = this.field(field, value, fieldPath);
    }
    for (const oneof of type.oneofsArray) {
      const members = oneof.fieldsArray.filter((member) => present.has(member));
      if (members.length > 1) {
        const names = members.map((member) => member.name).join(', ');
        throw new ProtoJsonError(path, `oneof ${oneof.name} allows one member, got ${names}`);
      }
    }
    return converted;
  }

  private field(field: protobuf.Field, json: unknown, path: string): unknown {
    if (field instanceof protobuf.MapField) {
      const entries = Object.entries(expectObject(json, path));
      return Object.fromEntries(
        entries.map(([key, value]) => [mapKey(field.keyType, key, path), this.single(field, value, `${path}.${key}`)]),
      );
    }
    if (field.repeated) {
      if (!Array.isArray(json)) throw new ProtoJsonError(path, `expected a list, got ${describe(json)}`);
      return json.map((item, index) => this.single(field, item, `${path}[${index}]`));
    }
    return this.single(field, json, path);
  }

  private single(field: protobuf.Field, json: unknown, path: string): unknown {
    const resolved = field.resolvedType;
    if (json === null && !nullableTypes.has(resolved?.fullName ?? '')) {
      throw new ProtoJsonError(path, 'null is not a value here: leave the field out, or write {} for an empty message');
    }
    if (resolved instanceof protobuf.Type) return this.message(resolved, json, path);
    if (resolved instanceof protobuf.Enum) return this.enumValue(resolved, json, path);
    return scalar(field.type, json, path);
  }

  private enumValue(type: protobuf.Enum, json: unknown, path: string): number {
    if (json === null) return 0; // google.protobuf.NullValue, the only enum that admits null
    const name = typeof json === 'string' ? json : Object.keys(type.values).find((key) => type.values[key] === json);
    if (name === undefined || !Object.hasOwn(type.values, name)) {
      const expected = `expected one of ${Object.keys(type.values).join(', ')}`;
      throw new ProtoJsonError(path, `${describe(json)} is not a value of ${typeLabel(type)} (${expected})`);
    }
    if (type.valuesOptions?.[name]?.['deprecated'] === true) this.deprecated.push(path);
    return type.values[name] as number;
  }

  /** An Any is `{"@type": url, ...fields}`, or `{"@type": url, "value": json}` for types with a special JSON form. */
  private any(json: unknown, path: string): JsonObject {
    const object = expectObject(json, path);
    const typeUrl = object['@type'];
    const typePath = `${path}["@type"]`;
    if (typeof typeUrl !== 'string') throw new ProtoJsonError(typePath, 'google.protobuf.Any needs a string "@type"');
    const typeName = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const packed = typeUrl.includes('/') && typeName !== '' ? this.root.lookup(typeName) : null;
    if (!(packed instanceof protobuf.Type)) {
      throw new ProtoJsonError(typePath, `type URL ${typeUrl} names no message type in the loaded protos`);
    }
    const rest = Object.fromEntries(Object.entries(object).filter(([key]) => key !== '@type'));
    const content = hasSpecialJson(packed) ? this.specialAnyValue(rest, path) : rest;
    const converted = this.message(packed, content, path);
    return { type_url: typeUrl, value: packed.encode(packed.fromObject(converted)).finish() };
  }

  private specialAnyValue(rest: JsonObject, path: string): unknown {
    const unexpected = Object.keys(rest).find((key) => key !== 'value');
    if (unexpected !== undefined) throw new ProtoJsonError(`${path}.${unexpected}`, `unknown field "${unexpected}"`);
    if (!('value' in rest)) throw new ProtoJsonError(path, 'an Any of a well-known type needs a "value"');
    return rest['value'];
  }
}

type WellKnownReader = (json: unknown, path: string, type: protobuf.Type) => JsonObject;

const wrapperTypes = ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
  (kind) => `.google.protobuf.${kind}Value`,
);

// Types whose proto3 JSON form is not an object of their fields.
const wellKnownReaders = new Map<string, WellKnownReader>([
  ['.google.protobuf.Duration', duration],
  ['.google.protobuf.Timestamp', timestamp],
  ['.google.protobuf.Struct', (json, path) => struct(json, path)],
  ['.google.protobuf.Value', (json, path) => value(json, path)],
  ['.google.protobuf.ListValue', (json, path) => listValue(json, path)],
  ...wrapperTypes.map((name): [string, WellKnownReader] => [name, wrapper]),
]);

const nullableTypes = new Set(['.google.protobuf.Value', '.google.protobuf.NullValue']);

function hasSpecialJson(type: protobuf.Type): boolean {
  return type.fullName === '.google.protobuf.Any' || wellKnownReaders.has(type.fullName);
}

const jsonNameCache = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

/** A field may be written under its proto name or its lowerCamel JSON name, as the proto3 JSON mapping allows. */
function fieldsByJsonName(type: protobuf.Type): Map<string, protobuf.Field> {
  let fields = jsonNameCache.get(type);
  if (!fields) {
    fields = new Map();
    for (const field of type.fieldsArray) {
      fields.set(field.name, field);
      fields.set(lowerCamel(field.name), field);
    }
    jsonNameCache.set(type, fields);
  }
  return fields;
}

/** protoc's JSON name: underscores dropped, the letter after them upper-cased. */
function lowerCamel(protoName: string): string {
  return protoName.replace(/_+(.?)/g, (_match, next: string) => next.toUpperCase());
}

const int32Range: [bigint, bigint] = [-(2n ** 31n), 2n ** 31n - 1n];
const uint32Range: [bigint, bigint] = [0n, 2n ** 32n - 1n];
const int64Range: [bigint, bigint] = [-(2n ** 63n), 2n ** 63n - 1n];
const uint64Range: [bigint, bigint] = [0n, 2n ** 64n - 1n];
const integerRanges = new Map<string, [bigint, bigint]>([
  ['int32', int32Range],
  ['sint32', int32Range],
  ['sfixed32', int32Range],
  ['uint32', uint32Range],
  ['fixed32', uint32Range],
  ['int64', int64Range],
  ['sint64', int64Range],
  ['sfixed64', int64Range],
  ['uint64', uint64Range],
  ['fixed64', uint64Range],
]);
const maxFloat = 3.4028234663852886e38;

function scalar(type: string, json: unknown, path: string): unknown {
  const range = integerRanges.get(type);
  if (range) return integer(json, path, type, range);
  switch (type) {
    case 'string':
      if (typeof json === 'string') return json;
      break;
    case 'bool':
      if (typeof json === 'boolean') return json;
      break;
    case 'double':
    case 'float':
      return floatingPoint(json, path, type);
    case 'bytes':
      // Standard or URL-safe base64; protobufjs decodes the standard alphabet.
      if (typeof json === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(json)) {
        return json.replace(/-/g, '+').replace(/_/g, '/');
      }
      break;
  }
  throw new ProtoJsonError(path, `expected ${type}, got ${describe(json)}`);
}

/** Integers are JSON numbers or decimal strings; 64-bit ones go on as strings to keep their precision. */
function integer(json: unknown, path: string, type: string, [min, max]: [bigint, bigint]): number | string {
  let parsed: bigint | undefined;
  if (typeof json === 'number' && Number.isSafeInteger(json)) parsed = BigInt(json);
  if (typeof json === 'string' && /^-?\d+$/.test(json)) parsed = BigInt(json);
  if (parsed === undefined) throw new ProtoJsonError(path, `expected ${type}, got ${describe(json)}`);
  if (parsed < min || parsed > max) throw new ProtoJsonError(path, `${parsed} is out of range for ${type}`);
  return type.endsWith('64') ? parsed.toString() : Number(parsed);
}

function floatingPoint(json: unknown, path: string, type: string): number {
  const special = new Set(['NaN', 'Infinity', '-Infinity']);
  let parsed: number | undefined;
  if (typeof json === 'number' && Number.isFinite(json)) parsed = json;
  if (typeof json === 'string' && (special.has(json) || (json.trim() !== '' && Number.isFinite(Number(json))))) {
    parsed = Number(json);
  }
  if (parsed === undefined) throw new ProtoJsonError(path, `expected ${type}, got ${describe(json)}`);
  if (type === 'float' && Number.isFinite(parsed) && Math.abs(parsed) > maxFloat) {
    throw new ProtoJsonError(path, `${parsed} is out of range for float`);
  }
  return parsed;
}

function mapKey(keyType: string, key: string, path: string): string {
  if (keyType === 'string') return key;
  if (keyType === 'bool') {
    if (key === 'true' || key === 'false') return key;
    throw new ProtoJsonError(path, `map key "${key}" is not a bool`);
  }
  return String(integer(key, `${path}.${key}`, keyType, integerRanges.get(keyType) as [bigint, bigint]));
}

const maxDurationSeconds = 315_576_000_000n;

/** "1.5s", "-0.25s", "300s": seconds with up to nine fractional digits. */
function duration(json: unknown, path: string): JsonObject {
  const match = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (!match) throw new ProtoJsonError(path, `expected a duration like "0.25s", got ${describe(json)}`);
  const [, minus, wholeSeconds = '0', fraction = ''] = match;
  const seconds = BigInt(wholeSeconds);
  if (seconds > maxDurationSeconds) throw new ProtoJsonError(path, `duration ${json as string} is out of range`);
  const sign = minus ? -1 : 1;
  return { seconds: (minus ? -seconds : seconds).toString(), nanos: sign * Number(fraction.padEnd(9, '0')) };
}

/** RFC 3339 with an explicit offset, e.g. "2025-01-31T12:00:00.5Z". */
function timestamp(json: unknown, path: string): JsonObject {
  const match =
    typeof json === 'string'
      ? /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(json)
      : null;
  const millis = match ? Date.parse(`${match[1]}${match[3]}`) : Number.NaN;
  if (!match || Number.isNaN(millis)) {
    throw new ProtoJsonError(path, `expected an RFC 3339 timestamp, got ${describe(json)}`);
  }
  return { seconds: String(millis / 1000), nanos: Number((match[2] ?? '').padEnd(9, '0')) };
}

function wrapper(json: unknown, path: string, type: protobuf.Type): JsonObject {
  const valueField = type.fields['value'] as protobuf.Field;
  return { value: scalar(valueField.type, json, path) };
}

// protobufjs defines Struct, Value and ListValue with camelCase field names even under keepCase.
function struct(json: unknown, path: string): JsonObject {
  const entries = Object.entries(expectObject(json, path));
  return { fields: Object.fromEntries(entries.map(([key, item]) => [key, value(item, `${path}.${key}`)])) };
}

function value(json: unknown, path: string): JsonObject {
  if (json === null) return { nullValue: 0 };
  if (typeof json === 'string') return { stringValue: json };
  if (typeof json === 'boolean') return { boolValue: json };
  if (typeof json === 'number') {
    if (Number.isFinite(json)) return { numberValue: json };
  } else if (Array.isArray(json)) {
    return { listValue: listValue(json, path) };
  } else if (isPlainObject(json)) {
    return { structValue: struct(json, path) };
  }
  throw new ProtoJsonError(path, `${describe(json)} is not a JSON value`);
}

function listValue(json: unknown, path: string): JsonObject {
  if (!Array.isArray(json)) throw new ProtoJsonError(path, `expected a list, got ${describe(json)}`);
  return { values: json.map((item, index) => value(item, `${path}[${index}]`)) };
}

function isPlainObject(json: unknown): json is JsonObject {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return false;
  const prototype: unknown = Object.getPrototypeOf(json);
  return prototype === Object.prototype || prototype === null;
}

function expectObject(json: unknown, path: string, type?: protobuf.Type): JsonObject {
  if (isPlainObject(json)) return json;
  const expected = type ? `an object for ${typeLabel(type)}` : 'an object';
  throw new ProtoJsonError(path, `expected ${expected}, got ${describe(json)}`);
}

function typeLabel(type: protobuf.ReflectionObject): string {
  return type.fullName.replace(/^\./, '');
}

function describe(json: unknown): string {
  if (json === null) return 'null';
  if (Array.isArray(json)) return 'a list';
  if (isPlainObject(json)) return 'an object';
  return `${typeof json} ${JSON.stringify(json)}`;
}
