import Stripe from 'stripe';
import type { StripeConfig } from '../config/index.js';

/**
 * The Stripe API version Tollgate is written and tested against, sent with every request: an upgrade of the `stripe`
 * package (whose default follows its own release) must not change the shapes Stripe answers with. Changing it is a
 * deliberate step: the type check then shows what moved.
 */
export const stripeApiVersion = '2026-10-28.endive' satisfies Stripe.LatestApiVersion;

/**
 * The `stripe` client for the configured API (Stripe, or a Stripe-compatible test server). Its own retries are
 * off: the outbox retries whole work items, with backoff that survives restarts and a dead-letter state.
 */
export function createStripeClient(config: Pick<StripeConfig, 'apiBase' | 'timeoutMs'>, secretKey: string, version: string): Stripe {
  const base = new URL(config.apiBase);
  const protocol = base.protocol === 'http:' ? 'http' : 'https';
  return new Stripe(secretKey, {
    host: base.hostname,
    port: base.port || (protocol === 'http' ? 80 : 443),
    protocol,
    apiVersion: stripeApiVersion,
    maxNetworkRetries: 0,
    timeout: config.timeoutMs,
    telemetry: false,
    appInfo: { name: 'tollgate', version },
  });
}
