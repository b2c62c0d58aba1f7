import { describe, expect, it } from 'vitest';
import { fromStripeAmount, toStripeAmount } from '../src/stripe/amounts.js';

describe('Stripe amounts', () => {
  it('sends minor units as they are for ordinary and zero-decimal currencies', () => {
    expect(toStripeAmount(125_000n, 'USD')).toBe(125_000);
    expect(toStripeAmount('5000', 'JPY')).toBe(5000);
    expect(toStripeAmount(1_250n, 'BHD')).toBe(1_250);
    expect(fromStripeAmount(5000, 'JPY')).toBe(5000n);
  });

  it('scales ISK, which Stripe keeps two-decimal in its API', () => {
    expect(toStripeAmount(1_000n, 'ISK')).toBe(100_000);
    expect(fromStripeAmount(100_000, 'ISK')).toBe(1_000n);
  });

  it('refuses amounts beyond a JSON-safe integer', () => {
    expect(() => toStripeAmount(2n ** 53n, 'USD')).toThrow(/beyond what Stripe accepts/);
  });
});
