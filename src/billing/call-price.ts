/**
 * What a call costs, for the two places that price calls: rating a period's usage aggregates (the invoice, exact)
 * and the charge the Check takes from a prepaid wallet in real time (a hold that the invoice settles).
 */
import type { EndpointDocument } from '../catalog/index.js';
import { type CurrencyCode, Decimal, formatDecimal, minorUnitExponent, parseUnitPrice } from '../kernel/index.js';
import { WALLET_MICROS_PER_MINOR_UNIT } from '../counters/index.js';
import { OTHER_ENDPOINTS, type RatePlan, type UsagePricing } from '../rating/index.js';

/**
 * The endpoint_prices key that prices calls to an endpoint: its id, else its first priced tag, else "*"; the
 * endpoint's own id when nothing prices it. Usage is grouped by this key before rating, so a tag price applies to
 * the calls of all its endpoints together, as one line.
 */
export function priceKeyOf(pricing: RatePlan, endpoint: Pick<EndpointDocument, 'id' | 'tags'>): string {
  const prices = pricing.endpoint_prices ?? {};
  if (Object.hasOwn(prices, endpoint.id)) return endpoint.id;
  const tag = endpoint.tags.find((candidate) => Object.hasOwn(prices, candidate));
  if (tag !== undefined) return tag;
  return Object.hasOwn(prices, OTHER_ENDPOINTS) ? OTHER_ENDPOINTS : endpoint.id;
}

const realTimePrices = new WeakMap<RatePlan, Map<string, number>>();

/**
 * The real-time price of one call, in wallet micro-units (WALLET_MICROS_PER_MINOR_UNIT per minor unit). It is what
 * the call adds at most to the invoice, so a wallet is never spent beyond its funds: the endpoint price, plus the
 * usage price of the endpoint's weight at the dearest marginal rate (per_unit: its price; graduated and volume:
 * their dearest tier; package: the package price spread over its units). Included units, volume discounts and
 * cheaper tiers are not known per call; the true-up at the period's close gives the difference back. Prices finer
 * than a micro-unit round up.
 */
export function realTimeCallPrice(pricing: RatePlan, endpoint: EndpointDocument): number {
  let byEndpoint = realTimePrices.get(pricing);
  if (!byEndpoint) realTimePrices.set(pricing, (byEndpoint = new Map()));
  let price = byEndpoint.get(endpoint.id);
  if (price === undefined) {
    const endpointPrice = pricing.endpoint_prices?.[priceKeyOf(pricing, endpoint)];
    const major = (endpointPrice === undefined ? new Decimal(0) : parseUnitPrice(endpointPrice)).plus(
      pricing.usage ? dearestUnitPrice(pricing.usage).times(endpoint.weight) : 0,
    );
    price = microsFromMajor(major, pricing.currency);
    byEndpoint.set(endpoint.id, price);
  }
  return price;
}

function dearestUnitPrice(usage: UsagePricing): Decimal {
  switch (usage.model) {
    case 'per_unit':
      return parseUnitPrice(usage.unit_price);
    case 'package':
      return parseUnitPrice(usage.package_price).div(usage.package_size);
    case 'graduated':
    case 'volume':
      return Decimal.max(...usage.tiers.map((tier) => parseUnitPrice(tier.unit_price)));
  }
}

function microsFromMajor(major: Decimal, currency: CurrencyCode): number {
  const micros = major.times(new Decimal(10).pow(minorUnitExponent(currency))).times(WALLET_MICROS_PER_MINOR_UNIT).ceil();
  return checkedMicros(BigInt(micros.toFixed(0)));
}

/** The largest wallet balance the counters hold exactly: 2^53 micro-units (about $90M in cents). */
export const maxWalletMinorUnits = BigInt(Number.MAX_SAFE_INTEGER) / BigInt(WALLET_MICROS_PER_MINOR_UNIT);

/** A minor-unit amount in wallet micro-units, within the counters' exact range. */
export function microsFromMinor(minor: bigint): number {
  return checkedMicros(minor * BigInt(WALLET_MICROS_PER_MINOR_UNIT));
}

/** The whole minor units in a non-negative micro-unit amount (the rest is not yet a settleable amount). */
export function wholeMinorUnits(micros: number): bigint {
  return BigInt(micros) / BigInt(WALLET_MICROS_PER_MINOR_UNIT);
}

/** A micro-unit amount in major units, exactly ("0.005"), for messages and the API. */
export function formatMicros(micros: number, currency: CurrencyCode): string {
  return formatDecimal(new Decimal(micros).div(WALLET_MICROS_PER_MINOR_UNIT).div(new Decimal(10).pow(minorUnitExponent(currency))), currency);
}

function checkedMicros(micros: bigint): number {
  if (micros > BigInt(Number.MAX_SAFE_INTEGER) || micros < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`${micros} wallet micro-units are beyond the counters' exact range (2^53)`);
  }
  return Number(micros);
}
