// Routes of the emulated API and Stripe's generic `expand[]` handling of responses.
import { invalidRequest } from './errors.js';
import type { FormObject } from './form.js';
import { findObject, type StripeState } from './state.js';

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

export interface ApiRequest {
  method: HttpMethod;
  path: string;
  /** Named segments of the route pattern, e.g. `id` in `/v1/invoices/:id`. */
  pathParams: Record<string, string>;
  /** The decoded form body (POST) or query string (GET, DELETE). */
  params: FormObject;
  state: StripeState;
  /** Unix seconds, from the server's clock. */
  now: number;
}

/** Applies the request to the state and returns the response object (Stripe answers 200 on success). */
export type Handler = (request: ApiRequest) => object;

export interface Route {
  method: HttpMethod;
  pattern: RegExp;
  paramNames: string[];
  handler: Handler;
}

/** A named segment of the matched route (`id` in `/v1/invoices/:id`). */
export function pathParam(request: ApiRequest, name = 'id'): string {
  const value = request.pathParams[name];
  if (value === undefined) throw new Error(`route has no :${name} segment`);
  return value;
}

export function route(method: HttpMethod, path: string, handler: Handler): Route {
  const paramNames: string[] = [];
  const source = path.replace(/:(\w+)/g, (_match, name: string) => {
    paramNames.push(name);
    return '([^/]+)';
  });
  return { method, pattern: new RegExp(`^${source}$`), paramNames, handler };
}

export interface RouteMatch {
  method: HttpMethod;
  handler: Handler;
  pathParams: Record<string, string>;
}

export function matchRoute(routes: readonly Route[], method: string, path: string): RouteMatch | undefined {
  for (const candidate of routes) {
    if (candidate.method !== method) continue;
    const match = candidate.pattern.exec(path);
    if (!match) continue;
    const pathParams = Object.fromEntries(
      candidate.paramNames.map((name, index) => [name, decodeURIComponent(match[index + 1] ?? '')]),
    );
    return { method: candidate.method, handler: candidate.handler, pathParams };
  }
  return undefined;
}

/** Replaces each id named by an `expand` path (`customer`, `data.customer`, `payment_intent.customer`) with the
 * stored object, in place. Fields that are already objects (or null) are left as they are, as Stripe does. */
export function expandResponse(body: object, expandPaths: readonly string[], state: StripeState): void {
  for (const path of expandPaths) {
    const [first = '', ...rest] = path.split('.');
    const isList = (body as { object?: unknown }).object === 'list' && first === 'data';
    const targets = isList ? ((body as { data: object[] }).data ?? []) : [body];
    for (const target of targets) expandPath(target, isList ? rest : [first, ...rest], path, state);
  }
}

function expandPath(target: object, segments: string[], fullPath: string, state: StripeState): void {
  const [field = '', ...rest] = segments;
  const container = target as Record<string, unknown>;
  if (!Object.hasOwn(container, field)) {
    throw invalidRequest(`This property cannot be expanded (${fullPath}).`, { param: 'expand' });
  }
  let value = container[field];
  if (typeof value === 'string') {
    const stored = findObject(state, value);
    if (stored) value = container[field] = structuredClone(stored);
  }
  if (rest.length > 0 && value !== null && typeof value === 'object') expandPath(value, rest, fullPath, state);
}
