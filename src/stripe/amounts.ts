import { invalid } from '../kernel/errors.js';
import type { CurrencyCode } from '../kernel/money.js';

/**
 * Stripe's API amounts are minor units, except for ISK: ISO 4217 gives the króna no decimals (so do we), but Stripe
 * keeps it two-decimal in the API for backwards compatibility, with amounts that must be multiples of 100.
 */
const stripeScale: Partial<Record<CurrencyCode, bigint>> = { ISK: 100n };

/** Our minor units as the JSON number Stripe expects. */
export function toStripeAmount(minor: bigint | string, currency: CurrencyCode): number {
  const value = Number(BigInt(minor) * (stripeScale[currency] ?? 1n));
  if (!Number.isSafeInteger(value)) throw invalid('amount', `amount ${minor} ${currency} is beyond what Stripe accepts`);
  return value;
}

/** A Stripe amount in our minor units (Stripe never sends a fraction of our unit for these currencies). */
export function fromStripeAmount(amount: number, currency: CurrencyCode): bigint {
  return BigInt(amount) / (stripeScale[currency] ?? 1n);
}
