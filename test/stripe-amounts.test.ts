import { describe, expect, it } from 'vitest';
import { fromStripeAmount, roundForStripe, roundLinesForStripe, toStripeAmount } from '../src/stripe/amounts.js';

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

  it('rounds three-decimal amounts to a last digit of 0, halves away from zero, and refuses to send them unrounded', () => {
    expect(['BHD', 'JOD', 'KWD', 'OMR', 'TND'].map((currency) => roundForStripe(19_125n, currency as 'BHD'))).toEqual([19_130n, 19_130n, 19_130n, 19_130n, 19_130n]);
    expect([19_124n, 19_120n, 19_129n, -19_125n, -19_124n, 4n, 5n].map((amount) => roundForStripe(amount, 'KWD'))).toEqual([
      19_120n, 19_120n, 19_130n, -19_130n, -19_120n, 0n, 10n,
    ]);
    expect(roundForStripe(19_125n, 'USD')).toBe(19_125n);
    expect(() => toStripeAmount(19_125n, 'BHD')).toThrow(/not collectible/);
  });

  it('rounds invoice lines so each is collectible and they add up to the rounded total', () => {
    const lines = roundLinesForStripe([19_125n, 2_003n, -1_004n, 7n], 'BHD');
    expect(lines.every((line) => line % 10n === 0n)).toBe(true);
    expect(lines.reduce((sum, line) => sum + line, 0n)).toBe(roundForStripe(19_125n + 2_003n - 1_004n + 7n, 'BHD'));
    expect(lines).toEqual([19_130n, 2_000n, -1_010n, 10n]);
    expect(roundLinesForStripe([19_125n, 1n], 'USD')).toEqual([19_125n, 1n]);
  });
});
