/**
 * Money kernel: ISO 4217 currencies, amounts as integer minor units (`bigint`), unit prices as exact decimals.
 *
 * Rounding rule (the only one in Tollgate): a charge is computed exactly in decimal and rounded ONCE per line item
 * to the currency's minor unit, half-even ("banker's rounding": 0.5 → 0, 1.5 → 2, 2.5 → 2, -2.5 → -2). Half-even is
 * unbiased over many lines and symmetric for credits, so a charge and its reversal always cancel out.
 */
import { Decimal as DecimalBase } from 'decimal.js';
import { invalid } from './errors.js';

/** Decimal arithmetic wide enough that no realistic price × quantity × ratio is ever rounded before line rounding. */
export const Decimal = DecimalBase.clone({ precision: 50, rounding: DecimalBase.ROUND_HALF_EVEN });
export type Decimal = DecimalBase;

/** Currency code → minor-unit exponent (number of decimals), from ISO 4217. */
export const CURRENCIES = {
  AED: 2, AUD: 2, BRL: 2, CAD: 2, CHF: 2, CNY: 2, CZK: 2, DKK: 2, EUR: 2, GBP: 2, HKD: 2, ILS: 2, INR: 2, MXN: 2,
  MYR: 2, NOK: 2, NZD: 2, PHP: 2, PLN: 2, SAR: 2, SEK: 2, SGD: 2, THB: 2, TRY: 2, USD: 2, ZAR: 2,
  CLP: 0, ISK: 0, JPY: 0, KRW: 0, PYG: 0, UGX: 0, VND: 0, XAF: 0, XOF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
} as const satisfies Record<string, 0 | 2 | 3>;

export type CurrencyCode = keyof typeof CURRENCIES;

export const CURRENCY_CODES = Object.keys(CURRENCIES) as [CurrencyCode, ...CurrencyCode[]];

export function isCurrencyCode(code: string): code is CurrencyCode {
  return Object.hasOwn(CURRENCIES, code);
}

export function minorUnitExponent(currency: CurrencyCode): number {
  return CURRENCIES[currency];
}

const SIGNED_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
/** A plain non-negative decimal such as "0.005": no sign, exponent or grouping. */
export const NON_NEGATIVE_DECIMAL = /^\d+(?:\.\d+)?$/;

/** Parses a major-unit amount ("49.00" → 4900n); more decimals than the currency has is an error, on `field`. */
export function parseMajorAmount(text: string, currency: CurrencyCode, field = 'amount'): bigint {
  const match = SIGNED_DECIMAL.exec(text);
  if (!match) throw invalid(field, `"${text}" is not a decimal amount such as "49.00"`);
  const [, sign, whole = '', fraction = ''] = match;
  const exponent = minorUnitExponent(currency);
  if (fraction.length > exponent) {
    throw invalid(field, `"${text}" has more decimals than ${currency} allows (${exponent})`);
  }
  const minor = BigInt(whole + fraction.padEnd(exponent, '0'));
  return sign === '-' ? -minor : minor;
}

/** Parses a non-negative unit price in major units, of any precision ("0.005" dollars = half a cent). */
export function parseUnitPrice(text: string): Decimal {
  if (!NON_NEGATIVE_DECIMAL.test(text)) {
    throw invalid('unit_price', `"${text}" is not a non-negative decimal price such as "0.005"`);
  }
  return new Decimal(text);
}

/** The rounding rule: an exact major-unit amount to minor units, half-even. */
export function roundToMinorUnits(major: Decimal, currency: CurrencyCode): bigint {
  return BigInt(major.times(minorUnitScale(currency)).toFixed(0, Decimal.ROUND_HALF_EVEN));
}

/** Exact major-unit value of a minor-unit amount (4900n USD → 49). */
export function minorToMajor(amount: bigint, currency: CurrencyCode): Decimal {
  return new Decimal(amount.toString()).div(minorUnitScale(currency));
}

/** Major-unit string with exactly the currency's decimals (125000n USD → "1250.00"); inverse of parseMajorAmount. */
export function formatMajor(amount: bigint, currency: CurrencyCode): string {
  const exponent = minorUnitExponent(currency);
  const digits = (amount < 0n ? -amount : amount).toString().padStart(exponent + 1, '0');
  const sign = amount < 0n ? '-' : '';
  if (exponent === 0) return sign + digits;
  return `${sign}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}

/**
 * An exact major-unit decimal (a unit price, a sub-cent balance) with at least the currency's decimals and more only
 * when it has them: "0.1" USD → "0.10", "49" → "49.00", "0.005" → "0.005". Beside formatMajor's amounts it reads alike.
 */
export function formatDecimal(value: Decimal | string, currency: CurrencyCode): string {
  const decimal = new Decimal(value);
  return decimal.toFixed(Math.max(minorUnitExponent(currency), decimal.decimalPlaces()));
}

/** Human-readable, locale-independent money: 12500n USD → "125.00 USD". */
export function formatMoney(amount: bigint, currency: CurrencyCode): string {
  return `${formatMajor(amount, currency)} ${currency}`;
}

function minorUnitScale(currency: CurrencyCode): Decimal {
  return new Decimal(10).pow(minorUnitExponent(currency));
}
