import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { errorStatus, type Logger, TollgateError } from '../kernel/index.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface RequestContext<Body, Query> {
  params: Record<string, string>;
  body: Body;
  query: Query;
  headers: IncomingMessage['headers'];
  rawBody: Buffer;
  requestId: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  /** Plain text replies (e.g. /metrics) set the content type themselves. */
  contentType?: string;
  headers?: Record<string, string>;
}

export interface Route<Body = unknown, Query = unknown> {
  method: Method;
  /** Path with :name parameters, e.g. /v1/customers/:id. */
  path: string;
  /** The operation's name in the OpenAPI document (client generators name their methods after it): unique, camelCase. */
  operationId: string;
  summary: string;
  tag: string;
  /**
   * admin: needs the admin bearer token; metrics: the admin or the metrics bearer token; public: no authentication
   * (health, operational metrics, webhooks verify their own).
   */
  auth: 'admin' | 'metrics' | 'public';
  body?: z.ZodType<Body>;
  query?: z.ZodType<Query>;
  /** Schema of the success body, for the OpenAPI document. */
  response?: z.ZodType;
  successStatus?: number;
  handle(context: RequestContext<Body, Query>): Promise<Reply>;
}

/** Whether text is a row id of a bigserial column: digits, within PostgreSQL's bigint (a larger one is an error there). */
export const isRowId = (text: string) => /^\d{1,19}$/.test(text) && BigInt(text) <= 9_223_372_036_854_775_807n;

/** An `after` cursor: the last row id of the previous page. */
export const afterRowIdSchema = z.string().refine(isRowId, 'must be a row id, a whole number up to 9223372036854775807').optional();

/** Declares a route with its body and query types inferred from their schemas. */
export const route = <Body = undefined, Query = Record<string, string>>(definition: Route<Body, Query>) =>
  definition as unknown as Route;

const maxBodyBytes = 1024 * 1024;

interface CompiledRoute {
  route: Route;
  pattern: RegExp;
  names: string[];
}

export class Router {
  private readonly compiled: CompiledRoute[];

  constructor(
    readonly routes: Route[],
    private readonly adminToken: string,
    private readonly logger: Logger,
    private readonly metricsToken?: string,
  ) {
    this.compiled = routes.map((r) => {
      const names: string[] = [];
      const source = r.path.replace(/:([A-Za-z_]+)/g, (_, name: string) => {
        names.push(name);
        return '([^/]+)';
      });
      return { route: r, pattern: new RegExp(`^${source}$`), names };
    });
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // Taken now: once an oversized body is abandoned the request no longer holds it.
    const { socket } = request;
    const requestId = headerValue(request.headers['x-request-id']) ?? crypto.randomUUID();
    const url = new URL(request.url ?? '/', 'http://localhost');
    let reply: Reply;
    try {
      reply = await this.dispatch(request, url, requestId);
    } catch (error) {
      reply = errorReply(error, requestId, this.logger);
    }
    const body = reply.body === undefined ? '' : reply.contentType ? String(reply.body) : JSON.stringify(reply.body);
    // The rest of an oversized body is not read: the connection closes once the answer is out.
    const unreadBody = reply.status === 413;
    response.writeHead(reply.status, {
      'content-type': reply.contentType ?? 'application/json',
      'x-request-id': requestId,
      ...reply.headers,
      ...(unreadBody ? { connection: 'close' } : {}),
    });
    response.end(body, unreadBody ? () => socket.destroy() : undefined);
  }

  private async dispatch(request: IncomingMessage, url: URL, requestId: string): Promise<Reply> {
    const candidates = this.compiled.filter((c) => c.pattern.test(url.pathname));
    if (candidates.length === 0) throw new TollgateError('not_found', `no route for ${url.pathname}`);
    const match = candidates.find((c) => c.route.method === request.method);
    if (!match) {
      return {
        status: 405,
        body: { error: { code: 'method_not_allowed', message: `${request.method} is not allowed on ${url.pathname}`, request_id: requestId } },
        headers: { allow: candidates.map((c) => c.route.method).join(', ') },
      };
    }
    const { route: r } = match;
    if (r.auth === 'admin') this.authenticate(request, [this.adminToken]);
    if (r.auth === 'metrics') this.authenticate(request, [this.adminToken, this.metricsToken ?? '']);
    const values = match.pattern.exec(url.pathname)!.slice(1);
    const params = Object.fromEntries(match.names.map((name, i) => [name, decodePathParam(values[i]!, name)]));
    const rawBody = await readBody(request);
    const body = r.body ? validate(r.body, parseJson(rawBody), 'body') : undefined;
    const query = r.query ? validate(r.query, Object.fromEntries(url.searchParams), 'query') : Object.fromEntries(url.searchParams);
    return r.handle({ params, body, query, headers: request.headers, rawBody, requestId });
  }

  private authenticate(request: IncomingMessage, accepted: string[]): void {
    const match = /^Bearer\s+(\S+)$/i.exec(headerValue(request.headers.authorization) ?? '');
    const given = Buffer.from(match?.[1] ?? '');
    const matches = (token: string) => {
      const expected = Buffer.from(token);
      return expected.length > 0 && given.length === expected.length && timingSafeEqual(given, expected);
    };
    // Every token is compared, so the time taken does not tell which one came close.
    if (!accepted.map(matches).includes(true)) {
      throw new TollgateError('unauthorized', accepted.length > 1 ? 'a valid admin or metrics bearer token is required' : 'a valid admin bearer token is required');
    }
  }
}

function validate<T>(schema: z.ZodType<T>, value: unknown, where: 'body' | 'query'): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = [...issue.path, ...(issue.code === 'unrecognized_keys' ? [issue.keys[0]] : [])].join('.') || where;
  throw new TollgateError('invalid_request', `${field}: ${issue.message}`, field);
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return {};
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new TollgateError('invalid_request', `body is not valid JSON: ${(error as Error).message}`, 'body');
  }
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const tooLarge = () => new TollgateError('payload_too_large', `body larger than ${maxBodyBytes} bytes`, 'body');
  if (Number(request.headers['content-length']) > maxBodyBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function errorReply(error: unknown, requestId: string, logger: Logger): Reply {
  if (error instanceof TollgateError) {
    // A dependency that failed under the error (the database unreachable, say) is the operator's to see, not the caller's.
    if (error.code === 'unavailable' && error.cause !== undefined) logger.warn({ err: error.cause instanceof Error ? error.cause.message : String(error.cause), requestId }, error.message);
    return {
      status: errorStatus[error.code],
      body: { error: { code: error.code, message: error.message, ...(error.field ? { field: error.field } : {}), request_id: requestId } },
      ...(error.retryAfterSeconds !== undefined ? { headers: { 'retry-after': String(error.retryAfterSeconds) } } : {}),
    };
  }
  logger.error({ err: error instanceof Error ? error.stack : String(error), requestId }, 'admin request failed');
  return { status: 500, body: { error: { code: 'internal', message: 'internal error', request_id: requestId } } };
}

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function decodePathParam(value: string, name: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    throw new TollgateError('invalid_request', `${name}: malformed percent-encoding in the path`, name);
  }
  // PostgreSQL text cannot hold a NUL byte; the query would fail with an encoding error.
  if (decoded.includes('\u0000')) throw new TollgateError('invalid_request', `${name}: must not contain a NUL byte`, name);
  return decoded;
}
