// Amount arithmetic in integer minor units; unit prices may be decimal strings (`unit_amount_decimal`).
import { invalidParam } from './errors.js';

/** `quantity × unitAmountDecimal` rounded half away from zero to whole minor units, computed exactly with BigInt. */
export function lineAmount(quantity: number, unitAmountDecimal: string): number {
  const [whole = '0', fraction = ''] = unitAmountDecimal.replace('-', '').split('.');
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(quantity) * BigInt(whole + fraction);
  const rounded = (scaled * 2n + scale) / (2n * scale);
  const amount = Number(unitAmountDecimal.startsWith('-') ? -rounded : rounded);
  if (!Number.isSafeInteger(amount)) throw new RangeError(`amount out of range: ${quantity} × ${unitAmountDecimal}`);
  return amount;
}

/** Stripe's three-decimal currencies: its payment partners take only amounts whose last digit is 0. */
const THREE_DECIMAL_CURRENCIES = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/** Stripe's minimum charge per currency (minor units), for Checkout's total; currencies not listed are not checked. */
const MINIMUM_CHARGE: Record<string, number> = {
  usd: 50, aed: 200, aud: 50, brl: 50, cad: 50, chf: 50, czk: 1500, dkk: 250, eur: 50, gbp: 30, hkd: 400, huf: 17500,
  inr: 50, jpy: 50, mxn: 1000, myr: 200, nok: 300, nzd: 50, pln: 200, ron: 200, sek: 300, sgd: 50, thb: 1000,
};

/** Refuses an amount Stripe cannot collect in `currency` (a three-decimal amount whose last digit is not 0). */
export function requireCollectible(amount: number, currency: string, param: string): void {
  if (THREE_DECIMAL_CURRENCIES.has(currency) && amount % 10 !== 0) {
    throw invalidParam(
      param,
      `Invalid amount ${amount} for ${currency}: amounts in three-decimal currencies must end in 0 (a multiple of 10).`,
      'invalid_amount',
    );
  }
}

/** Refuses a Checkout total under Stripe's minimum charge for its currency. */
export function requireMinimumCharge(total: number, currency: string, param: string): void {
  const minimum = MINIMUM_CHARGE[currency];
  if (minimum !== undefined && total < minimum) {
    throw invalidParam(
      param,
      `The Checkout Session's total amount due must add up to at least ${minimum} ${currency} (minor units).`,
      'amount_too_small',
    );
  }
}
