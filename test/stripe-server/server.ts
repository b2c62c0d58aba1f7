// A local Stripe-compatible HTTP server for tests: point the `stripe` package at it with
// `new Stripe(key, { host: server.host, port: server.port, protocol: 'http' })`.
//
// Request pipeline, in Stripe's order: injected fault before anything → authentication → route → idempotency layer
// → (latency) → handler applies the request → injected fault after it was applied → response.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Stripe from 'stripe';
import { StripeApiError, invalidRequest } from './errors.js';
import { FaultInjector, type Fault, type FaultConfig } from './faults.js';
import { shapeDifference } from './fixtures.js';
import { canonicalJson, decodeForm, type FormObject } from './form.js';
import { IdempotencyLayer, type Execution, type SavedResponse } from './idempotency.js';
import { randomBase62 } from './ids.js';
import { expandPaths } from './params.js';
import { billingRoutes } from './resources/billing.js';
import { catalogRoutes } from './resources/catalog.js';
import { checkoutRoutes, completeCheckoutSession } from './resources/checkout.js';
import { customerRoutes } from './resources/customers.js';
import { eventRoutes } from './resources/events.js';
import {
  finalizeInvoice,
  invoiceRoutes,
  markInvoicePaid,
  markInvoicePaymentFailed,
  requireInvoice,
} from './resources/invoices.js';
import { paymentRoutes } from './resources/payments.js';
import {
  createSubscription,
  subscriptionRoutes,
  updateSubscription,
  type SubscriptionOptions,
} from './resources/subscriptions.js';
import { expandResponse, matchRoute, type RouteMatch } from './router.js';
import { createState, type StripeState } from './state.js';
import { createEventFactory, sendWebhook, type EventFactory } from './webhooks.js';

export type { FaultConfig } from './faults.js';
export type { FaultKind, FaultPhase, InjectedFault, LoggedRequest, StripeState } from './state.js';
export type { EventFactory, WebhookDelivery, WebhookOptions } from './webhooks.js';
export { signPayload } from './webhooks.js';

export interface StripeServerOptions {
  /** Secret keys accepted. By default any test-mode key (`sk_test_…`, `rk_test_…`) is. */
  apiKeys?: readonly string[];
  /** Epoch milliseconds. Drives `created` fields, meter-event windows and idempotency key expiry. */
  clock?: () => number;
  /** Time each request takes to apply; its idempotency key is in flight meanwhile (a concurrent retry gets 409). */
  latencyMs?: number;
  faults?: FaultConfig;
  /** `api_version` of built events and the `Stripe-Version` answered when a request names none. */
  apiVersion?: string;
}

export interface StripeServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  host: string;
  port: number;
  state: StripeState;
  /** `null` turns faults off. A new configuration restarts its seeded sequence. */
  setFaults(config: FaultConfig | null): void;
  setLatency(ms: number): void;
  events: EventFactory;
  sendWebhook: typeof sendWebhook;
  /** Stripe collected the invoice (a draft is finalized first, as automatic collection does). */
  markInvoicePaid(invoiceId: string): Stripe.Invoice;
  /** A collection attempt failed; the invoice stays open with a retry scheduled. */
  markInvoicePaymentFailed(invoiceId: string): Stripe.Invoice;
  /** The buyer paid on the Checkout page. */
  completeCheckoutSession(sessionId: string): Stripe.Checkout.Session;
  createSubscription(options: SubscriptionOptions, fields?: Partial<Stripe.Subscription>): Stripe.Subscription;
  /** Returns the previous values of the changed fields, for the event's `previous_attributes`. */
  updateSubscription(subscriptionId: string, changes: Partial<Stripe.Subscription>): Partial<Stripe.Subscription>;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const TEST_MODE_KEY = /^(sk|rk)_test_[A-Za-z0-9_]+$/;
const ROUTES = [
  ...customerRoutes,
  ...invoiceRoutes,
  ...billingRoutes,
  ...checkoutRoutes,
  ...paymentRoutes,
  ...catalogRoutes,
  ...subscriptionRoutes,
  ...eventRoutes,
];

function errorResponse(error: StripeApiError, requestId: string): SavedResponse {
  return {
    status: error.status,
    headers: error.shouldRetry === undefined ? {} : { 'Stripe-Should-Retry': String(error.shouldRetry) },
    body: JSON.stringify(error.toBody(), null, 2),
    requestId,
  };
}

/** An injected server error; `shouldRetry` tells the client whether retrying can help. */
function serverError(shouldRetry: boolean): StripeApiError {
  return new StripeApiError(500, 'api_error', 'An unknown error occurred while processing your request.', { shouldRetry });
}

/** The secret key of `Authorization: Bearer <key>`, or of Basic auth with the key as user name (`curl -u`). */
function presentedKey(request: IncomingMessage): string | undefined {
  const [scheme, credentials = ''] = (request.headers.authorization ?? '').split(' ');
  if (scheme === 'Bearer') return credentials;
  if (scheme === 'Basic') return Buffer.from(credentials, 'base64').toString('utf8').split(':')[0];
  return undefined;
}

function redactedKey(key: string): string {
  return key.length > 12 ? `${key.slice(0, 8)}${'*'.repeat(key.length - 12)}${key.slice(-4)}` : key;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startStripeServer(options: StripeServerOptions = {}): Promise<StripeServer> {
  const state = createState();
  const clock = options.clock ?? Date.now;
  const nowSeconds = () => Math.floor(clock() / 1000);
  const apiVersion = options.apiVersion ?? Stripe.API_VERSION;
  const faults = new FaultInjector();
  faults.configure(options.faults ?? null);
  const idempotency = new IdempotencyLayer(clock);
  let latencyMs = options.latencyMs ?? 0;

  function authenticate(request: IncomingMessage): string {
    const key = presentedKey(request);
    if (!key) {
      throw new StripeApiError(
        401,
        'invalid_request_error',
        'You did not provide an API key. You need to provide your API key in the Authorization header, using ' +
          "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
      );
    }
    const accepted = options.apiKeys ? options.apiKeys.includes(key) : TEST_MODE_KEY.test(key);
    if (!accepted) {
      throw new StripeApiError(401, 'invalid_request_error', `Invalid API Key provided: ${redactedKey(key)}`, {
        code: 'api_key_invalid',
      });
    }
    return key;
  }

  function decodeParams(request: IncomingMessage, method: string, url: URL, body: string): FormObject {
    if (method !== 'POST') return decodeForm(url.search.slice(1));
    const contentType = request.headers['content-type'] ?? '';
    if (body !== '' && !contentType.startsWith('application/x-www-form-urlencoded')) {
      throw invalidRequest(`Invalid request: unsupported Content-Type ${contentType}.`);
    }
    return decodeForm(body);
  }

  /** Runs the route's handler and renders its result (with `expand`), or the Stripe error it raised. */
  function apply(route: RouteMatch, url: URL, params: FormObject, requestId: string): Execution {
    try {
      const result = structuredClone(
        route.handler({
          method: route.method,
          path: url.pathname,
          pathParams: route.pathParams,
          params,
          state,
          now: nowSeconds(),
        }),
      );
      expandResponse(result, expandPaths(params), state);
      // The server's own answers are held to the pinned version's shapes: a drift is a bug here, not a response.
      const difference = shapeDifference(result);
      if (difference) throw new Error(`response does not match the pinned API version: ${difference}`);
      return { response: { status: 200, headers: {}, body: JSON.stringify(result, null, 2), requestId }, saved: true };
    } catch (error) {
      if (!(error instanceof StripeApiError)) throw error;
      return { response: errorResponse(error, requestId), saved: !error.beforeExecution };
    }
  }

  /** Authenticates, routes and applies the request (through the idempotency layer for keyed POSTs). With
   * `failAfterApply` the request is applied but answered with a 500. */
  async function respond(
    request: IncomingMessage,
    requestId: string,
    body: string,
    idempotencyKey: string | undefined,
    failAfterApply: boolean,
  ): Promise<{ response: SavedResponse; replayed: boolean }> {
    const method = request.method ?? 'GET';
    const url = new URL(request.url ?? '/', `http://${HOST}`);
    try {
      const account = authenticate(request);
      const params = decodeParams(request, method, url, body);
      const route = matchRoute(ROUTES, method, url.pathname);
      if (!route) {
        throw new StripeApiError(
          404,
          'invalid_request_error',
          `Unrecognized request URL (${method}: ${url.pathname}). ` +
            'Please see https://stripe.com/docs or we can help at https://support.stripe.com/.',
        );
      }
      const execute = async (): Promise<Execution> => {
        if (latencyMs > 0) await sleep(latencyMs);
        const execution = apply(route, url, params, requestId);
        // Stripe saves a 500 raised during execution like any result, so retrying with the key replays it.
        return failAfterApply ? { response: errorResponse(serverError(false), requestId), saved: true } : execution;
      };
      if (idempotencyKey === undefined) return { response: (await execute()).response, replayed: false };
      const endpoint = `${method} ${url.pathname}`;
      const outcome = await idempotency.run(account, idempotencyKey, endpoint, canonicalJson(params), execute);
      // A replay runs nothing, so a failure on its way back is transient: the saved result stays as it was.
      if (outcome.replayed && failAfterApply) {
        return { response: errorResponse(serverError(true), requestId), replayed: false };
      }
      return outcome;
    } catch (error) {
      if (error instanceof StripeApiError) return { response: errorResponse(error, requestId), replayed: false };
      console.error('stripe test server: unexpected error', error);
      const bug = new StripeApiError(500, 'api_error', `Tollgate Stripe test server bug: ${(error as Error).message}`);
      return { response: errorResponse(bug, requestId), replayed: false };
    }
  }

  function send(
    request: IncomingMessage,
    response: ServerResponse,
    requestId: string,
    reply: { response: SavedResponse; replayed: boolean },
  ): void {
    const idempotencyKey = request.headers['idempotency-key'];
    response.writeHead(reply.response.status, {
      'Content-Type': 'application/json',
      'Request-Id': requestId,
      'Stripe-Version': request.headers['stripe-version'] ?? apiVersion,
      ...(typeof idempotencyKey === 'string' && { 'Idempotency-Key': idempotencyKey }),
      ...reply.response.headers,
      ...(reply.replayed && { 'Idempotent-Replayed': 'true', 'Original-Request': reply.response.requestId }),
    });
    response.end(reply.response.body);
  }

  /** A transport-level fault: the socket is cut, or the request hangs until the client gives up (or close()). */
  function breakConnection(request: IncomingMessage, kind: 'timeout' | 'drop'): void {
    if (kind === 'drop') request.socket.destroy();
  }

  function injectBeforeApply(fault: Fault, request: IncomingMessage, response: ServerResponse, requestId: string): void {
    if (fault.kind === 'timeout' || fault.kind === 'drop') return breakConnection(request, fault.kind);
    const error =
      fault.kind === '429'
        ? new StripeApiError(
            429,
            'invalid_request_error',
            'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.',
            { code: 'rate_limit', shouldRetry: true },
          )
        : serverError(true);
    send(request, response, requestId, { response: errorResponse(error, requestId), replayed: false });
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = `req_${randomBase62(14)}`;
    const body = await readBody(request);
    state.stats.requestsReceived += 1;
    const idempotencyKey = request.method === 'POST' ? request.headers['idempotency-key'] : undefined;
    const key = typeof idempotencyKey === 'string' ? idempotencyKey : undefined;
    const stripeVersion = request.headers['stripe-version'];
    state.requestLog.push({
      method: request.method ?? 'GET',
      path: (request.url ?? '/').split('?')[0]!,
      idempotencyKey: key,
      stripeVersion: typeof stripeVersion === 'string' ? stripeVersion : undefined,
      apiKey: presentedKey(request),
    });
    const fault = faults.next();
    if (fault) {
      state.stats.faultsInjected += 1;
      state.faultLog.push({
        method: request.method ?? 'GET',
        path: request.url ?? '/',
        idempotencyKey: key,
        ...fault,
      });
      if (fault.phase === 'before') return injectBeforeApply(fault, request, response, requestId);
    }
    const reply = await respond(request, requestId, body, key, fault?.phase === 'after' && fault.kind === '500');
    if (reply.replayed) state.stats.idempotentReplays += 1;
    if (fault && (fault.kind === 'timeout' || fault.kind === 'drop')) return breakConnection(request, fault.kind);
    send(request, response, requestId, reply);
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      // A client that goes away mid-request (it timed out, say) is routine; anything else is a bug here.
      if (!request.destroyed) console.error('stripe test server: failed to handle a request', error);
      response.destroy();
    });
  });
  // Longer than any test's idle gaps, so a keep-alive socket the `stripe` package reuses is never closed under it.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;

  const invoiceReadyForCollection = (invoiceId: string): Stripe.Invoice => {
    const invoice = requireInvoice(state, invoiceId);
    if (invoice.status === 'draft') finalizeInvoice(state, invoice, nowSeconds());
    if (invoice.status !== 'open') throw new Error(`invoice ${invoiceId} is ${invoice.status}, not open`);
    return invoice;
  };

  return {
    url: `http://${HOST}:${port}`,
    host: HOST,
    port,
    state,
    setFaults: (config) => faults.configure(config),
    setLatency: (ms) => {
      latencyMs = ms;
    },
    events: createEventFactory(state, nowSeconds, apiVersion),
    sendWebhook,
    markInvoicePaid: (invoiceId) => {
      const invoice = invoiceReadyForCollection(invoiceId);
      markInvoicePaid(invoice, nowSeconds());
      return invoice;
    },
    markInvoicePaymentFailed: (invoiceId) => {
      const invoice = invoiceReadyForCollection(invoiceId);
      markInvoicePaymentFailed(invoice, nowSeconds());
      return invoice;
    },
    completeCheckoutSession: (sessionId) => completeCheckoutSession(state, sessionId, nowSeconds()),
    createSubscription: (subscriptionOptions, fields) =>
      createSubscription(state, nowSeconds(), subscriptionOptions, fields),
    updateSubscription: (subscriptionId, changes) => updateSubscription(state, subscriptionId, changes),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
