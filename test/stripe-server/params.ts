// Request parameter schemas (zod) that reject bad input the way Stripe does: unknown params, missing required params,
// malformed integers and enums, each reported with Stripe's message and the offending `param` in bracket notation.
import { z } from 'zod';
import { invalidParam, missingParam, type StripeApiError } from './errors.js';
import type { FormObject, FormValue } from './form.js';

type Issue = z.ZodError['issues'][number];

/** Params decoded from the request, validated against `schema`; throws Stripe's error for the first problem. */
export function parseParams<S extends z.ZodType>(schema: S, params: FormObject): z.output<S> {
  const result = schema.safeParse(params);
  if (result.success) return result.data;
  const issues = result.error.issues;
  // Stripe names an unknown parameter before anything else that is wrong with the request.
  const issue = issues.find((candidate) => candidate.code === 'unrecognized_keys') ?? issues[0];
  if (!issue) throw new Error('zod reported a failure without issues');
  throw toStripeError(issue, params);
}

function toStripeError(issue: Issue, params: FormObject): StripeApiError {
  const param = paramName(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const unknown = paramName([...issue.path, issue.keys[0] ?? '']);
      return invalidParam(
        unknown,
        `Received unknown parameter: ${unknown}. (The Tollgate Stripe test server only emulates the parameters ` +
          'Tollgate uses; extend test/stripe-server if Stripe documents this one.)',
        'parameter_unknown',
      );
    }
    case 'invalid_type': {
      if (valueAt(params, issue.path) === undefined) return missingParam(param);
      const expected = issue.expected === 'object' ? 'hash' : issue.expected;
      return invalidParam(param, `Invalid ${expected}: ${param}`);
    }
    case 'invalid_value':
      return invalidParam(param, `Invalid ${param}: must be one of ${issue.values.map(String).join(', ')}`);
    case 'custom':
      return invalidParam(param, issue.message, (issue.params as { code?: string } | undefined)?.code);
    default:
      return invalidParam(param, `Invalid value for ${param}.`);
  }
}

/** `['line_items', 0, 'quantity']` → `line_items[0][quantity]`, as Stripe names params in errors. */
function paramName(path: readonly PropertyKey[]): string {
  const [head, ...rest] = path.map(String);
  return `${head ?? ''}${rest.map((segment) => `[${segment}]`).join('')}`;
}

function valueAt(params: FormObject, path: readonly PropertyKey[]): FormValue | undefined {
  let value: FormValue | undefined = params;
  for (const segment of path) {
    if (value === undefined || typeof value === 'string') return undefined;
    value = Array.isArray(value) ? value[Number(segment)] : value[String(segment)];
  }
  return value;
}

type Parsed<T> = { value: T } | { error: string; code?: string };

/** A scalar param: a string on the wire, parsed into `T`. */
function scalar<T>(parse: (raw: string) => Parsed<T>) {
  return z.string().transform((raw, ctx): T => {
    const parsed = parse(raw);
    if ('value' in parsed) return parsed.value;
    ctx.addIssue({ code: 'custom', message: parsed.error, params: { code: parsed.code } });
    return z.NEVER;
  });
}

export const text = () => z.string();

export const integer = () =>
  scalar<number>((raw) =>
    /^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw))
      ? { value: Number(raw) }
      : { error: `Invalid integer: ${raw}`, code: 'parameter_invalid_integer' },
  );

export const positiveInteger = () =>
  integer().pipe(
    z.number().refine((value) => value > 0, { message: 'This value must be greater than 0.' }),
  );

export const boolean = () =>
  scalar<boolean>((raw) =>
    raw === 'true' || raw === 'false' ? { value: raw === 'true' } : { error: `Invalid boolean: ${raw}` },
  );

/** A decimal string such as `unit_amount_decimal=0.5`, kept as a string: amounts are never JS floats here. */
export const decimal = () =>
  scalar<string>((raw) => (/^-?\d+(\.\d+)?$/.test(raw) ? { value: raw } : { error: `Invalid decimal: ${raw}` }));

/** ISO 4217 code; Stripe accepts any case and answers in lower case. */
export const currency = () =>
  scalar<string>((raw) =>
    /^[a-zA-Z]{3}$/.test(raw) ? { value: raw.toLowerCase() } : { error: `Invalid currency: ${raw.toLowerCase()}` },
  );

export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values);

/** `''` unsets an optional field on update (`description=`), as in Stripe. */
export const emptyable = <T extends z.ZodType>(schema: T) => z.union([z.literal(''), schema]);

/** Stripe's limits: at most 50 keys, keys up to 40 characters, values up to 500. `metadata=` clears all keys. */
export const metadata = () =>
  emptyable(
    z.record(z.string(), z.string()).superRefine((entries, ctx) => {
      const keys = Object.keys(entries);
      if (keys.length > 50) ctx.addIssue({ code: 'custom', message: 'You can only specify up to 50 metadata keys.' });
      for (const key of keys) {
        if (key.length > 40) {
          ctx.addIssue({ code: 'custom', message: `Metadata keys can have up to 40 characters; ${key} is longer.` });
        } else if ((entries[key] ?? '').length > 500) {
          ctx.addIssue({ code: 'custom', message: `Metadata values can have up to 500 characters; ${key}'s is longer.` });
        }
      }
    }),
  );

/** An array param; the `stripe` package sends arrays with explicit indexes (`items[0][price]=…`). */
export const formArray = <T extends z.ZodType>(item: T) =>
  z.preprocess((raw) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
    const entries = Object.entries(raw);
    if (!entries.every(([index]) => /^\d+$/.test(index))) return raw;
    return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, value]) => value as unknown);
  }, z.array(item));

/** The params of one endpoint: anything not listed is an unknown parameter. Every endpoint takes `expand`. */
export const endpoint = <Shape extends z.ZodRawShape>(shape: Shape) =>
  z.strictObject({ ...shape, expand: formArray(z.string()).optional() });

/** The `expand` paths of a request whose params are otherwise validated by its endpoint. */
export function expandPaths(params: FormObject): string[] {
  return parseParams(z.object({ expand: formArray(z.string()).optional() }), params).expand ?? [];
}

/** Params of a retrieve or delete: only `expand`. */
export const noParams = endpoint({});

export const listParams = {
  limit: integer()
    .pipe(z.number().refine((limit) => limit >= 1 && limit <= 100, { message: 'Invalid limit: must be between 1 and 100.' }))
    .optional(),
  starting_after: text().optional(),
  ending_before: text().optional(),
};
