// Decoding of Stripe's request encoding: `application/x-www-form-urlencoded` with bracket notation, as the `stripe`
// package produces it (`metadata[plan]=pro`, `line_items[0][price_data][unit_amount]=100`, `expand[0]=lines`).
import { invalidRequest } from './errors.js';

export type FormValue = string | FormValue[] | FormObject;
export interface FormObject {
  [key: string]: FormValue;
}

/** Nested params from a form body or query string. `a[]=x` appends to an array of strings; `a[0]=x` stays an
 * object keyed `"0"` until a schema asks for an array (see `formArray` in params.ts): metadata keys may be digits. */
export function decodeForm(encoded: string): FormObject {
  const root: FormObject = {};
  for (const [key, value] of new URLSearchParams(encoded)) {
    assign(root, keySegments(key), value, key);
  }
  return root;
}

function keySegments(key: string): string[] {
  const match = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
  if (!match) return [key];
  const [, head = key, brackets = ''] = match;
  return [head, ...[...brackets.matchAll(/\[([^[\]]*)\]/g)].map((m) => m[1] ?? '')];
}

function assign(container: FormObject | FormValue[], segments: string[], value: string, fullKey: string): void {
  const [segment = '', ...rest] = segments;
  if (Array.isArray(container)) {
    // Only `key[]=value` appends; nested objects in arrays are sent with explicit indexes.
    if (segment !== '' || rest.length > 0) throw invalidRequest(`Invalid array: ${fullKey}`);
    container.push(value);
    return;
  }
  if (rest.length === 0) {
    // Repeated scalar keys: the last one wins, as Rack's parser does.
    if (typeof container[segment] === 'object') throw invalidRequest(`Invalid hash: ${fullKey}`);
    container[segment] = value;
    return;
  }
  const existing = container[segment];
  const wantsArray = rest[0] === '';
  if (existing === undefined) {
    const child: FormObject | FormValue[] = wantsArray ? [] : {};
    container[segment] = child;
    assign(child, rest, value, fullKey);
    return;
  }
  if (typeof existing === 'string' || Array.isArray(existing) !== wantsArray) {
    throw invalidRequest(`Invalid ${wantsArray ? 'array' : 'hash'}: ${fullKey}`);
  }
  assign(existing, rest, value, fullKey);
}

/** JSON with object keys sorted, so two encodings of the same params compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner,
  );
}
