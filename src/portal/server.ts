/**
 * The portal's HTTP server: its own port, security headers on every answer, bounded form bodies, cookies, sessions,
 * the identity proxy's header, and CSRF checks before any POST reaches a page.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { drainHttpServer } from '../admin/index.js';
import { errorStatus, TollgateError } from '../kernel/index.js';
import type { Logger } from '../kernel/index.js';
import { script, stylesheet } from './assets.js';
import { csrfToken, csrfTokenMatches, newSecret, PortalAuthStore } from './auth-store.js';
import { SqlPortalSignInRecords } from './sql-sign-in-records.js';
import { clientAddress, isTrusted, rateLimitKey } from './client-address.js';
import { cookieNames, parseCookies, setCookie } from './cookies.js';
import type { Viewer } from './layout.js';
import { Portal, PortalError, type PortalDeps, type PortalReply } from './portal.js';
import { parseAddressList } from '../config/index.js';

/** Forms are small: a name, an email, a URL. Anything bigger is refused before it is read. */
export const maxFormBytes = 8 * 1024;

export type PortalServerDeps = Omit<PortalDeps, 'publicUrl' | 'auth'>;

export interface RunningPortal {
  port: number;
  /** Where customers reach it (the configured public URL, or http://localhost:<port>). */
  url: string;
  portal: Portal;
  auth: PortalAuthStore;
  /** Stops accepting, ends idle connections, and busy ones too at `deadline` (epoch ms) if given. */
  close(deadline?: number): Promise<void>;
}

export function securityHeaders(publicUrl: string, logoUrl: string | undefined): Record<string, string> {
  const images = ["'self'", 'data:', ...(logoUrl ? [new URL(logoUrl).origin] : [])].join(' ');
  return {
    'content-security-policy': `default-src 'none'; script-src 'self'; style-src 'self'; img-src ${images}; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    // Sign-in links carry their token in the URL: no page passes its address to another site. (no-referrer would
    // also make browsers send "Origin: null" with forms, which the origin check refuses.)
    'referrer-policy': 'same-origin',
    'x-content-type-options': 'nosniff',
    'cross-origin-opener-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
    ...(publicUrl.startsWith('https:') ? { 'strict-transport-security': 'max-age=31536000' } : {}),
  };
}

export async function startPortal(deps: PortalServerDeps): Promise<RunningPortal> {
  const { settings, logger } = deps;
  const auth = new PortalAuthStore(new SqlPortalSignInRecords(deps.db), deps.clock);
  const trusted = parseAddressList(settings.trustedProxies);
  let handler: (request: IncomingMessage, response: ServerResponse) => void = (_request, response) => response.writeHead(503).end();
  const server: Server = createServer((request, response) => handler(request, response));
  // A client trickling headers or a body must not hold a connection for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : settings.port;
  const publicUrl = settings.publicUrl ?? `http://localhost:${port}`;
  const secure = publicUrl.startsWith('https:');
  const names = cookieNames(secure);
  const headers = securityHeaders(publicUrl, settings.brand.logoUrl);
  const css = stylesheet(settings.brand.primaryColour);
  const portal = new Portal({ ...deps, publicUrl, auth });

  const send = (response: ServerResponse, method: string | undefined, status: number, body: string, extra: Record<string, string | string[]>) => {
    response.writeHead(status, { ...headers, ...extra });
    response.end(method === 'HEAD' ? undefined : body);
  };

  handler = (request, response) => {
    void serve(request, response).catch((error: unknown) => {
      logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'portal request failed');
      if (!response.headersSent) send(response, request.method, 500, 'internal error', { 'content-type': 'text/plain; charset=utf-8' });
      else response.destroy();
    });
  };

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // Taken now: once an oversized body is abandoned the request no longer holds it (request.socket is null then).
    const { socket } = request;
    const method = request.method ?? 'GET';
    const url = new URL(request.url ?? '/', 'http://portal.invalid');
    if (url.pathname === '/assets/portal.css' || url.pathname === '/assets/portal.js') {
      const isCss = url.pathname.endsWith('.css');
      send(response, method, 200, isCss ? css : script, {
        'content-type': isCss ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8',
        'cache-control': 'public, max-age=300',
      });
      return;
    }
    const cookies = parseCookies(request.headers.cookie);
    const setCookies: string[] = [];
    const peer = socket.remoteAddress ?? '';
    const proxyEmail = identityFrom(request, peer);
    const sessionId = cookies.get(names.session);
    let customerId: string | undefined;
    let viaProxy = false;
    if (proxyEmail !== undefined) {
      customerId = await auth.customerByEmail(proxyEmail);
      viaProxy = customerId !== undefined;
    } else if (sessionId) {
      customerId = await auth.sessionCustomer(sessionId);
      if (!customerId) setCookies.push(setCookie(names.session, '', { secure, maxAgeSeconds: 0 }));
    }
    let csrfSecret = customerId && !viaProxy ? sessionId! : cookies.get(names.csrf);
    if (!csrfSecret || !/^[A-Za-z0-9_-]{43}$/.test(csrfSecret)) {
      csrfSecret = newSecret();
      setCookies.push(setCookie(names.csrf, csrfSecret, { secure }));
    }
    const viewer: Viewer = { customerId, csrf: csrfToken(csrfSecret), viaProxy };

    let reply: PortalReply;
    try {
      if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') {
        reply = { ...portal.errorPage(viewer, 405, `${method} is not used here.`), headers: { allow: 'GET, HEAD, POST' } };
      } else {
        const form = method === 'POST' ? await readForm(request) : new URLSearchParams();
        if (method === 'POST') checkOrigin(request, publicUrl);
        if (method === 'POST' && !csrfTokenMatches(csrfSecret, form.get('csrf') ?? undefined)) {
          throw new PortalError(403, 'This form expired or did not come from this site. Go back, reload the page and try again.');
        }
        const forwarded = request.headers['x-forwarded-for'];
        const client = clientAddress(peer, Array.isArray(forwarded) ? forwarded.join(',') : forwarded, trusted);
        reply = (await portal.handle({ method, path: url.pathname, query: url.searchParams, form, clientKey: rateLimitKey(client), proxyEmail }, viewer)) ?? portal.errorPage(viewer, 404, 'There is no page here.');
      }
    } catch (error) {
      reply = portal.errorPage(viewer, ...failure(error, logger));
    }

    if (reply.signIn) {
      if (sessionId) await auth.endSession(sessionId);
      const id = await auth.createSession(reply.signIn, settings.sessionTtlMs);
      setCookies.push(setCookie(names.session, id, { secure, maxAgeSeconds: Math.floor(settings.sessionTtlMs / 1000) }));
    }
    if (reply.signOut && sessionId) {
      await auth.endSession(sessionId);
      setCookies.push(setCookie(names.session, '', { secure, maxAgeSeconds: 0 }));
    }
    const extra: Record<string, string | string[]> = { 'cache-control': 'no-store', ...reply.headers };
    if (setCookies.length > 0) extra['set-cookie'] = setCookies;
    if (reply.location) {
      send(response, method, reply.status, '', { ...extra, location: reply.location });
      return;
    }
    if (reply.status === 413) extra.connection = 'close';
    send(response, method, reply.status, reply.html ?? '', { ...extra, 'content-type': 'text/html; charset=utf-8' });
    if (reply.status === 413) response.once('finish', () => socket.destroy());
  }

  /** The identity proxy's email: only from a trusted proxy's own connection, and only if configured. */
  function identityFrom(request: IncomingMessage, peer: string): string | undefined {
    if (!settings.identityHeader || !isTrusted(peer, trusted)) return undefined;
    const value = request.headers[settings.identityHeader];
    const email = (Array.isArray(value) ? value[0] : value)?.trim();
    return email && email.length <= 254 ? email : undefined;
  }

  logger.info({ port, publicUrl, signUp: settings.signUp.open ? 'open' : 'closed', identityProxy: settings.identityHeader ?? 'off' }, 'portal listening');
  return {
    port,
    url: publicUrl,
    portal,
    auth,
    close: (deadline) => drainHttpServer(server, deadline),
  };
}

/** A POST from another origin is refused whatever it carries; browsers send Origin on every POST. */
function checkOrigin(request: IncomingMessage, publicUrl: string): void {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== new URL(publicUrl).origin) throw new PortalError(403, 'This form was sent from another site.');
}

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (Number(request.headers['content-length']) > maxFormBytes) throw new PortalError(413, `Forms are limited to ${maxFormBytes} bytes.`);
  if (type !== 'application/x-www-form-urlencoded') throw new PortalError(415, 'Send the form as application/x-www-form-urlencoded.');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxFormBytes) throw new PortalError(413, `Forms are limited to ${maxFormBytes} bytes.`);
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function failure(error: unknown, logger: Logger): [number, string] {
  if (error instanceof PortalError) return [error.status, error.message];
  if (error instanceof TollgateError) {
    if (error.code === 'unavailable') return [503, `${error.message}.`];
    return [errorStatus[error.code], error.code === 'not_found' ? 'There is nothing here.' : `${error.message}.`];
  }
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && (/^E[A-Z]+$/.test(code) || code.startsWith('08') || code.startsWith('57P'))) {
    logger.warn({ err: (error as Error).message }, 'portal: database unavailable');
    return [503, 'We cannot reach our records right now. Try again in a minute.'];
  }
  logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'portal page failed');
  return [500, 'Something went wrong on our side. Try again in a minute.'];
}
