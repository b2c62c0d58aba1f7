import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Logger, TlsServerOptions } from '../kernel/index.js';
import type { Registry } from 'prom-client';
import { openApiDocument } from './openapi.js';
import { route, Router, type Route } from './router.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** HTTPS instead of plain HTTP. */
  tls?: TlsServerOptions | undefined;
  adminToken: string;
  /** Also opens /metrics/business (besides the admin token). */
  metricsToken?: string | undefined;
  routes: Route[];
  /** Operational metrics, public on /metrics. */
  registry: Registry;
  /** Business metrics, on /metrics/business for the admin or metrics token. */
  businessRegistry: Registry;
  /** Readiness: each named check must hold for /readyz to answer 200. */
  readiness: () => Record<string, boolean>;
  version: string;
  logger: Logger;
}

export interface RunningHttpServer {
  port: number;
  server: Server;
  /** Swaps the TLS certificate for new connections; open ones keep theirs. */
  setSecureContext(tls: TlsServerOptions): void;
  /** Stops accepting, ends idle connections, and ends the busy ones too at `deadline` (epoch ms) if given. */
  close(deadline?: number): Promise<void>;
}

export function systemRoutes(options: Pick<HttpServerOptions, 'registry' | 'businessRegistry' | 'readiness' | 'version'>, apiRoutes: () => Route[]): Route[] {
  return [
    route({
      method: 'GET',
      path: '/healthz',
      operationId: 'getHealth',
      summary: 'Liveness: the process is up',
      tag: 'system',
      auth: 'public',
      handle: async () => ({ status: 200, body: { status: 'ok' } }),
    }),
    route({
      method: 'GET',
      path: '/readyz',
      operationId: 'getReadiness',
      summary: 'Readiness: catalog loaded, identities synced, counter store reachable (closed failure mode), servers listening',
      tag: 'system',
      auth: 'public',
      handle: async () => {
        const checks = options.readiness();
        const ready = Object.values(checks).every(Boolean);
        return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not_ready', checks } };
      },
    }),
    route({
      method: 'GET',
      path: '/metrics',
      operationId: 'getMetrics',
      summary: 'Prometheus metrics: operational only (no revenue figures)',
      tag: 'system',
      auth: 'public',
      handle: async () => ({ status: 200, body: await options.registry.metrics(), contentType: options.registry.contentType }),
    }),
    route({
      method: 'GET',
      path: '/metrics/business',
      operationId: 'getBusinessMetrics',
      summary: 'Prometheus business gauges (MRR, churn, activation); admin or metrics bearer token',
      tag: 'system',
      auth: 'metrics',
      handle: async () => ({ status: 200, body: await options.businessRegistry.metrics(), contentType: options.businessRegistry.contentType }),
    }),
    route({
      method: 'GET',
      path: '/openapi.json',
      operationId: 'getOpenApiDocument',
      summary: 'This OpenAPI document',
      tag: 'system',
      auth: 'public',
      handle: async () => ({ status: 200, body: openApiDocument(apiRoutes(), options.version) }),
    }),
  ];
}

export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const all: Route[] = [];
  all.push(...systemRoutes(options, () => all), ...options.routes);
  const router = new Router(all, options.adminToken, options.logger, options.metricsToken);
  const handle = (request: Parameters<Router['handle']>[0], response: Parameters<Router['handle']>[1]) => void router.handle(request, response);
  const server: Server = options.tls ? createTlsServer(options.tls, handle) : createServer(handle);
  // /webhooks/stripe is public: a client trickling a body (1 MB at most) may hold its connection and buffer this long
  // only, not Node's 5 minutes; as the portal's port.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    server,
    setSecureContext: (tls) => (server as Server & { setSecureContext?(tls: TlsServerOptions): void }).setSecureContext?.(tls),
    close: (deadline) => drainHttpServer(server, deadline),
  };
}

/**
 * Stops accepting, closes idle connections, lets requests in flight finish, and at `deadline` (epoch ms) cuts the
 * rest: a request whose body never finishes would otherwise keep the server, and the stop, open forever.
 */
export function drainHttpServer(server: Pick<Server, 'close' | 'closeAllConnections' | 'closeIdleConnections'>, deadline?: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const cutOff = deadline === undefined ? undefined : setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
    server.close(() => {
      clearTimeout(cutOff);
      resolve();
    });
    server.closeIdleConnections();
  });
}
