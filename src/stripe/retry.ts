import Stripe from 'stripe';
import { TollgateError } from '../kernel/index.js';
import { StoreError } from '../store/index.js';

export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  maxAttempts: number;
}

/** What to do with a work item after a failed attempt. */
export type FailureDecision =
  | {
      action: 'retry';
      delayMs: number;
      /** Stripe saved this failure as the final result of the idempotency key: the next attempt needs new keys. */
      renewKeys: boolean;
      reason: string;
    }
  | { action: 'bury'; reason: string };

/** Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries never bunch up. */
export function backoffDelay(attempt: number, policy: Pick<RetryPolicy, 'baseMs' | 'maxMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Classifies the failure of attempt number `attempt` (1-based). Transient failures (connection, timeout, 5xx, 409,
 * 429, and anything Stripe marks `Stripe-Should-Retry: true`) are retried with backoff, no sooner than Retry-After;
 * requests Stripe or Tollgate refuses for good (a 4xx, `Stripe-Should-Retry: false` on a 4xx, a record that is gone)
 * go to the dead letters at once. Other errors (the database, say) are retried like transient ones.
 */
export function decideAfterFailure(error: unknown, attempt: number, policy: RetryPolicy, random: () => number = Math.random): FailureDecision {
  const reason = describeFailure(error);
  if (!isRetryable(error)) return { action: 'bury', reason };
  if (attempt >= policy.maxAttempts) return { action: 'bury', reason: `gave up after ${attempt} attempts: ${reason}` };
  const delayMs = Math.max(backoffDelay(attempt, policy, random), retryAfterMs(error));
  return { action: 'retry', delayMs, renewKeys: isFinalSavedFailure(error), reason };
}

/** Whether a failure is transient: another attempt may succeed. */
export function isRetryable(error: unknown): boolean {
  // Our own refusals (the record is gone, say) are final; an unavailable database is not.
  if (error instanceof TollgateError && !(error instanceof StoreError)) return error.code === 'unavailable';
  // The database's refusals too are retried: a unique key hit may be a race that the next attempt reads as done.
  if (!(error instanceof Stripe.errors.StripeError)) return true;
  const shouldRetry = header(error, 'stripe-should-retry');
  const status = error.statusCode;
  if (error instanceof Stripe.errors.StripeConnectionError || status === undefined) return true;
  // A 5xx is retried even when Stripe says not to re-send it: the work item's next attempt first looks up what
  // the failed request did, then sends only what is still missing, under new keys.
  if (status >= 500) return true;
  if (shouldRetry !== undefined) return shouldRetry === 'true';
  // 401/403: a key or permission problem the operator fixes; the work waits rather than being lost.
  return status === 429 || status === 409 || status === 401 || status === 403;
}

/** A 5xx with Stripe-Should-Retry: false is saved under its idempotency key: re-sending the key replays it. */
function isFinalSavedFailure(error: unknown): boolean {
  return (
    error instanceof Stripe.errors.StripeError &&
    (error.statusCode ?? 0) >= 500 &&
    header(error, 'stripe-should-retry') === 'false'
  );
}

/** How long the failed request's answer asked us to wait: a Stripe error's Retry-After, or an error's own retryAfterMs. */
function retryAfterMs(error: unknown): number {
  if (error instanceof Stripe.errors.StripeError) return parseRetryAfter(header(error, 'retry-after'), Date.now());
  const own = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof own === 'number' && own > 0 ? own : 0;
}

/** At most a day: a receiver cannot park a retry indefinitely; maxMs still bounds the backoff itself. */
const maxRetryAfterMs = 86_400_000;

/** A Retry-After header (RFC 9110: delay seconds or an HTTP date) in milliseconds from `now`; 0 when absent or invalid. */
export function parseRetryAfter(value: string | null | undefined, now: number): number {
  if (!value) return 0;
  const trimmed = value.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - now;
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, maxRetryAfterMs) : 0;
}

function header(error: InstanceType<typeof Stripe.errors.StripeError>, name: string): string | undefined {
  const headers = error.headers ?? {};
  const found = Object.keys(headers).find((key) => key.toLowerCase() === name);
  return found === undefined ? undefined : headers[found];
}

export function describeFailure(error: unknown): string {
  if (error instanceof Stripe.errors.StripeError) {
    const status = error.statusCode === undefined ? 'connection' : String(error.statusCode);
    return `Stripe ${status} ${error.type}${error.code ? ` (${error.code})` : ''}: ${error.message}`.slice(0, 1000);
  }
  // A database failure is described by the driver's own words, which name the constraint or the connection.
  const described = error instanceof StoreError && error.cause !== undefined ? error.cause : error;
  return (described instanceof Error ? described.message : String(described)).slice(0, 1000);
}
