// Products and prices: create, retrieve, list. Prices support flat, decimal and tiered unit amounts, and metered
// recurring prices tied to a billing meter.
import type Stripe from 'stripe';
import { z } from 'zod';
import { exclusiveParams, invalidParam, invalidRequest, missingParam } from '../errors.js';
import { decimalString, fromFixture } from '../fixtures.js';
import { newId } from '../ids.js';
import {
  boolean,
  currency,
  decimal,
  endpoint,
  formArray,
  integer,
  listParams,
  metadata,
  noParams,
  oneOf,
  parseParams,
  positiveInteger,
  text,
} from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import { listPage, newestFirst, requireObject, updatedMetadata, type StripeState } from '../state.js';

const productParams = endpoint({
  name: text(),
  id: text().optional(),
  active: boolean().optional(),
  description: text().optional(),
  metadata: metadata().optional(),
  unit_label: text().optional(),
});

const listProductParams = endpoint({ ...listParams, active: boolean().optional() });

/** `product_data` of prices, price data and checkout line items. */
export const productDataParams = z.strictObject({
  name: text(),
  description: text().optional(),
  metadata: metadata().optional(),
  unit_label: text().optional(),
});

const tierParams = z.strictObject({
  up_to: z.union([z.literal('inf'), integer()]),
  flat_amount: integer().optional(),
  flat_amount_decimal: decimal().optional(),
  unit_amount: integer().optional(),
  unit_amount_decimal: decimal().optional(),
});

const priceParams = endpoint({
  currency: currency(),
  active: boolean().optional(),
  billing_scheme: oneOf(['per_unit', 'tiered']).optional(),
  lookup_key: text().optional(),
  metadata: metadata().optional(),
  nickname: text().optional(),
  product: text().optional(),
  product_data: productDataParams.optional(),
  recurring: z
    .strictObject({
      interval: oneOf(['day', 'week', 'month', 'year']),
      interval_count: positiveInteger().optional(),
      meter: text().optional(),
      usage_type: oneOf(['licensed', 'metered']).optional(),
    })
    .optional(),
  tax_behavior: oneOf(['exclusive', 'inclusive', 'unspecified']).optional(),
  tiers: formArray(tierParams).optional(),
  tiers_mode: oneOf(['graduated', 'volume']).optional(),
  transfer_lookup_key: boolean().optional(),
  unit_amount: integer().optional(),
  unit_amount_decimal: decimal().optional(),
});

const listPriceParams = endpoint({
  ...listParams,
  active: boolean().optional(),
  currency: currency().optional(),
  lookup_keys: formArray(text()).optional(),
  product: text().optional(),
  type: oneOf(['one_time', 'recurring']).optional(),
});

function createProduct(
  state: StripeState,
  now: number,
  input: z.output<typeof productDataParams> & { id?: string | undefined; active?: boolean | undefined },
): Stripe.Product {
  const id = input.id ?? newId('prod', 14);
  if (state.products.has(id) || state.deletedIds.has(id)) {
    throw invalidRequest(`Product already exists.`, { code: 'resource_already_exists', param: 'id' });
  }
  const product = fromFixture('product', {
    id,
    active: input.active ?? true,
    created: now,
    default_price: null,
    description: input.description ?? null,
    images: [],
    marketing_features: [],
    metadata: updatedMetadata({}, input.metadata),
    name: input.name,
    package_dimensions: null,
    shippable: null,
    statement_descriptor: null,
    tax_code: null,
    unit_label: input.unit_label ?? null,
    updated: now,
    url: null,
    type: 'service',
  });
  state.products.set(product.id, product);
  return product;
}

export interface PriceInput {
  currency: string;
  product: string;
  unitAmountDecimal: string;
  recurring?: Stripe.Price.Recurring | null;
}

/** Unit amounts that are whole minor units also appear as `unit_amount`, as in Stripe. */
function wholeUnitAmount(unitAmountDecimal: string): number | null {
  return /^-?\d+$/.test(unitAmountDecimal) ? Number(unitAmountDecimal) : null;
}

/** A price made inline by `price_data`: Stripe stores it inactive, so it is never offered for reuse. */
export function createInlinePrice(state: StripeState, now: number, input: PriceInput): Stripe.Price {
  const price = fromFixture('price', {
    id: newId('price'),
    active: false,
    billing_scheme: 'per_unit',
    created: now,
    currency: input.currency,
    custom_unit_amount: null,
    lookup_key: null,
    metadata: {},
    nickname: null,
    product: input.product,
    recurring: input.recurring ?? null,
    tax_behavior: 'unspecified',
    tiers_mode: null,
    transform_quantity: null,
    type: input.recurring ? 'recurring' : 'one_time',
    unit_amount: wholeUnitAmount(input.unitAmountDecimal),
    unit_amount_decimal: decimalString(input.unitAmountDecimal),
  });
  state.prices.set(price.id, price);
  return price;
}

/** Unit amount of `amount`/`amount_decimal` style params: exactly one of the two must be present. */
export function unitAmountDecimal(
  unitAmount: number | undefined,
  unitAmountDecimalParam: string | undefined,
  paramPrefix: string,
): string {
  if (unitAmount !== undefined && unitAmountDecimalParam !== undefined) {
    throw exclusiveParams(`${paramPrefix}unit_amount`, [`${paramPrefix}unit_amount`, `${paramPrefix}unit_amount_decimal`]);
  }
  const value = unitAmountDecimalParam ?? unitAmount?.toString();
  if (value === undefined) throw missingParam(`${paramPrefix}unit_amount`);
  return value;
}

/** A product id from `product`, or a new product from `product_data`: one of them is required. */
export function productFor(
  state: StripeState,
  now: number,
  product: string | undefined,
  productData: z.output<typeof productDataParams> | undefined,
  paramPrefix: string,
): string {
  if (product !== undefined && productData !== undefined) {
    throw exclusiveParams(`${paramPrefix}product`, [`${paramPrefix}product`, `${paramPrefix}product_data`]);
  }
  if (productData) return createProduct(state, now, productData).id;
  if (product === undefined) throw missingParam(`${paramPrefix}product`);
  return requireObject(state.products, product, 'product', `${paramPrefix}product`).id;
}

function validateTiers(tiers: z.output<typeof tierParams>[]): Stripe.Price.Tier[] {
  return tiers.map((tier, index) => {
    const last = index === tiers.length - 1;
    if ((tier.up_to === 'inf') !== last) {
      throw invalidParam(`tiers[${index}][up_to]`, "Only the last tier may (and must) have up_to: 'inf'.");
    }
    const unitAmount = tier.unit_amount_decimal ?? tier.unit_amount?.toString() ?? null;
    const flatAmount = tier.flat_amount_decimal ?? tier.flat_amount?.toString() ?? null;
    if (unitAmount === null && flatAmount === null) throw missingParam(`tiers[${index}][unit_amount]`);
    return {
      flat_amount: flatAmount === null ? null : wholeUnitAmount(flatAmount),
      flat_amount_decimal: flatAmount === null ? null : decimalString(flatAmount),
      unit_amount: unitAmount === null ? null : wholeUnitAmount(unitAmount),
      unit_amount_decimal: unitAmount === null ? null : decimalString(unitAmount),
      up_to: tier.up_to === 'inf' ? null : tier.up_to,
    };
  });
}

function createPrice({ params, state, now }: ApiRequest): Stripe.Price {
  const input = parseParams(priceParams, params);
  const billingScheme = input.billing_scheme ?? 'per_unit';
  const usageType = input.recurring?.usage_type ?? 'licensed';
  let unitAmount: string | null = null;
  let tiers: Stripe.Price.Tier[] | undefined;
  if (billingScheme === 'tiered') {
    if (!input.tiers) throw missingParam('tiers');
    if (!input.tiers_mode) throw missingParam('tiers_mode');
    tiers = validateTiers(input.tiers);
  } else {
    unitAmount = unitAmountDecimal(input.unit_amount, input.unit_amount_decimal, '');
  }
  // Since API version 2025-03-31 usage-based prices are billed from a billing meter.
  if (usageType === 'metered' && !input.recurring?.meter) throw missingParam('recurring[meter]');
  const meterId = input.recurring?.meter;
  const meter = meterId === undefined ? null : requireObject(state.meters, meterId, 'billing.meter', 'recurring[meter]');
  const lookupOwner = input.lookup_key === undefined ? undefined : findPriceByLookupKey(state, input.lookup_key);
  if (lookupOwner && !input.transfer_lookup_key) {
    throw invalidRequest(`A price (\`${lookupOwner.id}\`) already uses that lookup key.`, { param: 'lookup_key' });
  }
  const product = productFor(state, now, input.product, input.product_data, '');
  if (lookupOwner) lookupOwner.lookup_key = null;
  const price = fromFixture('price', {
    id: newId('price'),
    active: input.active ?? true,
    billing_scheme: billingScheme,
    created: now,
    currency: input.currency,
    custom_unit_amount: null,
    lookup_key: input.lookup_key ?? null,
    metadata: updatedMetadata({}, input.metadata),
    nickname: input.nickname ?? null,
    product,
    recurring: input.recurring
      ? {
          interval: input.recurring.interval,
          interval_count: input.recurring.interval_count ?? 1,
          meter: meter?.id ?? null,
          trial_period_days: null,
          usage_type: usageType,
        }
      : null,
    tax_behavior: input.tax_behavior ?? 'unspecified',
    tiers_mode: input.tiers_mode ?? null,
    transform_quantity: null,
    type: input.recurring ? 'recurring' : 'one_time',
    unit_amount: unitAmount === null ? null : wholeUnitAmount(unitAmount),
    unit_amount_decimal: unitAmount === null ? null : decimalString(unitAmount),
  });
  // Not part of Stripe's example price: `tiers` is only returned when expanded (see renderPrice).
  if (tiers) price.tiers = tiers;
  state.prices.set(price.id, price);
  return renderPrice(price, input.expand);
}

function findPriceByLookupKey(state: StripeState, lookupKey: string): Stripe.Price | undefined {
  return [...state.prices.values()].find((price) => price.lookup_key === lookupKey);
}

/** Stripe includes a price's `tiers` only when asked with `expand[]=tiers` (`data.tiers` in lists). */
export function renderPrice(price: Stripe.Price, expand: readonly string[] = [], tiersPath = 'tiers'): Stripe.Price {
  const { tiers, ...rest } = price;
  return expand.includes(tiersPath) ? { ...rest, tiers: tiers ?? [] } : rest;
}

function retrievePrice(request: ApiRequest): Stripe.Price {
  const input = parseParams(noParams, request.params);
  return renderPrice(requireObject(request.state.prices, pathParam(request), 'price'), input.expand);
}

function listPrices({ params, state }: ApiRequest): Stripe.ApiList<Stripe.Price> {
  const input = parseParams(listPriceParams, params);
  const matching = newestFirst(state.prices.values()).filter(
    (price) =>
      (input.active === undefined || price.active === input.active) &&
      (input.currency === undefined || price.currency === input.currency) &&
      (input.lookup_keys === undefined || (price.lookup_key !== null && input.lookup_keys.includes(price.lookup_key))) &&
      (input.product === undefined || price.product === input.product) &&
      (input.type === undefined || price.type === input.type),
  );
  const page = listPage(matching, input, '/v1/prices', 'price');
  return { ...page, data: page.data.map((price) => renderPrice(price, input.expand, 'data.tiers')) };
}

function createProductRoute({ params, state, now }: ApiRequest): Stripe.Product {
  return createProduct(state, now, parseParams(productParams, params));
}

function retrieveProduct(request: ApiRequest): Stripe.Product {
  parseParams(noParams, request.params);
  return requireObject(request.state.products, pathParam(request), 'product');
}

function listProducts({ params, state }: ApiRequest): Stripe.ApiList<Stripe.Product> {
  const input = parseParams(listProductParams, params);
  const matching = newestFirst(state.products.values()).filter(
    (product) => input.active === undefined || product.active === input.active,
  );
  return listPage(matching, input, '/v1/products', 'product');
}

export const catalogRoutes: Route[] = [
  route('POST', '/v1/products', createProductRoute),
  route('GET', '/v1/products', listProducts),
  route('GET', '/v1/products/:id', retrieveProduct),
  route('POST', '/v1/prices', createPrice),
  route('GET', '/v1/prices', listPrices),
  route('GET', '/v1/prices/:id', retrievePrice),
];
