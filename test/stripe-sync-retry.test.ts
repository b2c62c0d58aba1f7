import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { TollgateError } from '../src/kernel/errors.js';
import { backoffDelay, decideAfterFailure, parseRetryAfter } from '../src/stripe/retry.js';

const policy = { baseMs: 1_000, maxMs: 60_000, maxAttempts: 5 };
const lowest = () => 0;
const highest = () => 0.999_999;

const stripeError = (Kind: typeof Stripe.errors.StripeError, statusCode: number | undefined, headers: Record<string, string> = {}) =>
  new Kind({ message: 'boom', type: 'api_error', statusCode, headers } as never);

describe('Stripe retry policy', () => {
  it('backs off exponentially with jitter between half and all of the step, up to the cap', () => {
    expect([1, 2, 3, 4].map((attempt) => backoffDelay(attempt, policy, lowest))).toEqual([500, 1_000, 2_000, 4_000]);
    expect([1, 2, 3, 4].map((attempt) => backoffDelay(attempt, policy, highest))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(backoffDelay(30, policy, highest)).toBe(60_000);
  });

  it('retries a 429 no sooner than Retry-After says', () => {
    const decision = decideAfterFailure(stripeError(Stripe.errors.StripeRateLimitError, 429, { 'retry-after': '20' }), 1, policy, lowest);
    expect(decision).toMatchObject({ action: 'retry', delayMs: 20_000, renewKeys: false });
  });

  it('reads Retry-After as delay seconds or an HTTP date, up to a day, and ignores what it cannot read', () => {
    const now = Date.parse('2026-12-02T10:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 7 ', now)).toBe(7_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 10:05:00 GMT', now)).toBe(300_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('999999999', now)).toBe(86_400_000);
    for (const unreadable of [null, undefined, '', '-5', '1.5', 'soon']) expect(parseRetryAfter(unreadable, now)).toBe(0);
  });

  it("takes a non-Stripe failure's own retryAfterMs (an alert webhook's Retry-After) as the least delay", () => {
    const refused = Object.assign(new Error('HTTP 429'), { retryAfterMs: 90_000 });
    expect(decideAfterFailure(refused, 1, policy, highest)).toMatchObject({ action: 'retry', delayMs: 90_000 });
    expect(decideAfterFailure(Object.assign(new Error('HTTP 429'), { retryAfterMs: 10 }), 3, policy, lowest)).toMatchObject({ delayMs: 2_000 });
  });

  it('retries 5xx, connection errors, 409 and errors that are not Stripe answers', () => {
    for (const error of [
      stripeError(Stripe.errors.StripeAPIError, 500),
      stripeError(Stripe.errors.StripeConnectionError, undefined),
      stripeError(Stripe.errors.StripeAPIError, 409),
      new Error('connection terminated'),
      new TollgateError('unavailable', 'database down'),
    ]) {
      expect(decideAfterFailure(error, 1, policy, lowest)).toMatchObject({ action: 'retry', delayMs: 500 });
    }
  });

  it('renews idempotency keys after a 5xx that Stripe saved as final (Stripe-Should-Retry: false)', () => {
    const saved = stripeError(Stripe.errors.StripeAPIError, 500, { 'Stripe-Should-Retry': 'false' });
    expect(decideAfterFailure(saved, 1, policy, lowest)).toMatchObject({ action: 'retry', renewKeys: true });
  });

  it('honours Stripe-Should-Retry on a 4xx', () => {
    const retryable = stripeError(Stripe.errors.StripeInvalidRequestError, 400, { 'stripe-should-retry': 'true' });
    const final = stripeError(Stripe.errors.StripeRateLimitError, 429, { 'stripe-should-retry': 'false' });
    expect(decideAfterFailure(retryable, 1, policy, lowest).action).toBe('retry');
    expect(decideAfterFailure(final, 1, policy, lowest).action).toBe('bury');
  });

  it('buries what Stripe or Tollgate refuses for good at once, and anything after the last attempt', () => {
    expect(decideAfterFailure(stripeError(Stripe.errors.StripeInvalidRequestError, 400), 1, policy)).toMatchObject({ action: 'bury' });
    expect(decideAfterFailure(stripeError(Stripe.errors.StripeIdempotencyError, 400), 1, policy)).toMatchObject({ action: 'bury' });
    expect(decideAfterFailure(new TollgateError('not_found', 'invoice x not found'), 1, policy)).toMatchObject({ action: 'bury' });
    const last = decideAfterFailure(stripeError(Stripe.errors.StripeAPIError, 503), 5, policy);
    expect(last).toMatchObject({ action: 'bury' });
    expect(last.reason).toMatch(/^gave up after 5 attempts: Stripe 503/);
  });
});
