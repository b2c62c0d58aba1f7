import { type CurrencyCode, invalid } from '../kernel/index.js';

/**
 * Stripe's API amounts are minor units, except for ISK: ISO 4217 gives the króna no decimals (so do we), but Stripe
 * keeps it two-decimal in the API for backwards compatibility, with amounts that must be multiples of 100.
 */
const stripeScale: Partial<Record<CurrencyCode, bigint>> = { ISK: 100n };

/**
 * Stripe's three-decimal currencies: its payment partners take amounts whose last digit is 0 (multiples of 10
 * minor units: 19.120 BHD, not 19.125 BHD), and Stripe refuses the others.
 */
const collectibleStep: Partial<Record<CurrencyCode, bigint>> = { BHD: 10n, JOD: 10n, KWD: 10n, OMR: 10n, TND: 10n };

/** Our minor units as the JSON number Stripe expects; an amount Stripe would refuse is a bug here, not sent. */
export function toStripeAmount(minor: bigint | string, currency: CurrencyCode): number {
  const amount = BigInt(minor);
  if (amount % (collectibleStep[currency] ?? 1n) !== 0n) {
    throw invalid('amount', `amount ${minor} ${currency} is not collectible through Stripe (round it with roundForStripe)`);
  }
  const value = Number(amount * (stripeScale[currency] ?? 1n));
  if (!Number.isSafeInteger(value)) throw invalid('amount', `amount ${minor} ${currency} is beyond what Stripe accepts`);
  return value;
}

/** A Stripe amount in our minor units (Stripe never sends a fraction of our unit for these currencies). */
export function fromStripeAmount(amount: number, currency: CurrencyCode): bigint {
  return BigInt(amount) / (stripeScale[currency] ?? 1n);
}

/**
 * The amount Stripe can collect: in three-decimal currencies, rounded to the nearest multiple of 10 minor units,
 * halves away from zero (19.125 → 19.130, -19.125 → -19.130); other currencies as they are.
 */
export function roundForStripe(minor: bigint, currency: CurrencyCode): bigint {
  const step = collectibleStep[currency] ?? 1n;
  const magnitude = minor < 0n ? -minor : minor;
  const rounded = ((magnitude + step / 2n) / step) * step;
  return minor < 0n ? -rounded : rounded;
}

/**
 * Amounts of an invoice's lines as Stripe collects them: each line is the step of the rounded running total, so every
 * line is collectible and their sum is the rounded invoice total (the difference to ours is at most half a step).
 */
export function roundLinesForStripe(amounts: readonly bigint[], currency: CurrencyCode): bigint[] {
  let total = 0n;
  let sent = 0n;
  return amounts.map((amount) => {
    total += amount;
    const line = roundForStripe(total, currency) - sent;
    sent += line;
    return line;
  });
}
