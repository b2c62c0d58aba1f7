import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Identity } from '../src/identity/types.js';
import { CheckPlans } from '../src/check/check-plan.js';
import { admit, conclude } from '../src/check/decide.js';
import { priceKeyOf, realTimeCallPrice } from '../src/billing/call-price.js';
import { catalogPricing, periodsToRate, ratePeriodInvoice, type SubscriptionHistory } from '../src/billing/period-invoice.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { periodContaining } from '../src/rating/period.js';
import { ratePlanSchema, type RatePlan } from '../src/rating/schema.js';

/** The pure parts of billing: what a call costs in real time, and how a period's invoice is composed. */

const catalog = loadCatalogFile('examples/petstore.yaml');
const endpoint = (id: string) => catalog.endpoint('petstore', id)!;
const pricing = (yaml: string): RatePlan => ratePlanSchema.parse(parse(yaml));
const at = (iso: string) => Date.parse(iso);

describe('call prices', () => {
  const payPerCall = catalog.plan('pay-per-call')!.pricing!;

  it('prices an endpoint by its id, else its first priced tag, else "*"', () => {
    expect(priceKeyOf(payPerCall, endpoint('list-pets'))).toBe('read');
    expect(priceKeyOf(payPerCall, endpoint('update-pet'))).toBe('write');
    expect(priceKeyOf(payPerCall, endpoint('analytics'))).toBe('*');
    expect(priceKeyOf(pricing('{ currency: USD, endpoint_prices: { get-pet: "1" } }'), endpoint('get-pet'))).toBe('get-pet');
    expect(priceKeyOf(pricing('{ currency: USD }'), endpoint('get-pet'))).toBe('get-pet');
  });

  it('charges a prepaid call exactly in micro-units of the cent: $0.005 is 500,000', () => {
    expect(realTimeCallPrice(payPerCall, endpoint('list-pets'))).toBe(500_000);
    expect(realTimeCallPrice(payPerCall, endpoint('create-pet'))).toBe(2_000_000);
    expect(realTimeCallPrice(payPerCall, endpoint('upload-pet-image'))).toBe(10_000_000);
    expect(realTimeCallPrice(payPerCall, endpoint('analytics'))).toBe(1_000_000);
  });

  it('holds the dearest marginal usage price per unit of weight in real time; prices finer than a micro-unit round up', () => {
    const graduated = pricing('{ currency: USD, mode: prepaid, usage: { model: graduated, tiers: [{ up_to: 10, unit_price: "0.003" }, { unit_price: "0.01" }] } }');
    expect(realTimeCallPrice(graduated, endpoint('upload-pet-image'))).toBe(10 * 1_000_000);
    const packaged = pricing('{ currency: USD, mode: prepaid, usage: { model: package, package_size: 3, package_price: "1.00" } }');
    // $1 / 3 = 33.333…¢ per unit → 33,333,334 micro-cents
    expect(realTimeCallPrice(packaged, endpoint('list-pets'))).toBe(33_333_334);
    const yen = pricing('{ currency: JPY, mode: prepaid, endpoint_prices: { "*": "0.5" } }');
    expect(realTimeCallPrice(yen, endpoint('list-pets'))).toBe(500_000);
  });
});

describe('the Check charges prepaid plans in its one consume', () => {
  const identity: Identity = {
    key: { id: 'key_1', customerId: 'acme', subscriptionId: 'sub_1', status: 'active' },
    subscription: { id: 'sub_1', customerId: 'acme', productId: 'petstore', planId: 'pay-per-call', status: 'active', periodAnchor: at('2026-11-01T00:00:00Z') },
    customer: { id: 'acme', status: 'active', overdue: false },
  };
  const request = { method: 'POST', host: 'h', path: '/api/v1/pets', headers: { 'x-api-key': 'k' }, requestId: 'r' };
  const options = { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' };
  const admission = admit(request, { plans: new CheckPlans(catalog, options.headerPrefix), options, now: at('2026-11-15T00:00:00Z'), resolveKey: () => identity, periodOf: periodContaining });

  it('adds a wallet limit after the rate limits, priced for the endpoint, counting spend per subscription period', () => {
    if (!admission.admitted) throw new Error('expected admission');
    expect(admission.next.limits.at(-1)).toEqual({
      kind: 'wallet',
      name: 'w:USD',
      cost: 2_000_000,
      spentName: 'ws:sub_1',
      periodStart: at('2026-11-01T00:00:00Z'),
      periodEnd: at('2026-12-01T00:00:00Z'),
    });
  });

  it('answers 402 wallet_exhausted when the wallet cannot pay', () => {
    if (!admission.admitted) throw new Error('expected admission');
    const outcomes = admission.next.limits.map((limit) => ({ name: limit.name, allowed: limit.kind !== 'wallet', limit: 0, remaining: 1_500_000, resetMs: 0, retryAfterMs: 0 }));
    const decision = conclude(admission.next, { allowed: false, outcomes }, request, options, undefined);
    expect(decision).toMatchObject({
      allowed: false,
      status: 402,
      code: 'wallet_exhausted',
      body: { error: { code: 'wallet_exhausted', balance: '0.015', price: '0.02', currency: 'USD' } },
    });
  });
});

describe('period invoices', () => {
  const history = (overrides: Partial<SubscriptionHistory> = {}): SubscriptionHistory => ({
    id: 'sub_1',
    planId: 'pro',
    startedAt: at('2026-11-10T00:00:00Z'),
    periodAnchor: at('2026-11-10T00:00:00Z'),
    changes: [],
    ...overrides,
  });
  const context = catalogPricing(catalog, 'petstore');

  it('lists every period from the start through the running one, and stops at a cancellation', () => {
    const starts = (subscription: SubscriptionHistory, now: string) => periodsToRate(subscription, at(now)).map((period) => new Date(period.start).toISOString().slice(0, 10));
    expect(starts(history(), '2027-02-01T00:00:00Z')).toEqual(['2026-11-10', '2026-12-10', '2027-01-10']);
    const canceled = history({
      changes: [{ id: '1', subscriptionId: 'sub_1', kind: 'cancellation', fromPlanId: 'pro', toPlanId: null, effectiveAt: at('2026-12-20T00:00:00Z') }],
    });
    expect(starts(canceled, '2027-03-01T00:00:00Z')).toEqual(['2026-11-10', '2026-12-10']);
  });

  it('bills the setup fee and the recurring fee in advance, as wallet charges with stable references', () => {
    const invoice = ratePeriodInvoice(history({ planId: 'pay-per-call' }), periodContaining(at('2026-11-10T00:00:00Z'), at('2026-11-10T00:00:00Z')), context)!;
    expect(invoice).toMatchObject({ mode: 'prepaid', total: 500n, calls: 0n });
    expect(invoice.advanceCharges).toEqual([
      { kind: 'setup_fee', reference: `setup_fee:sub_1:${at('2026-11-10T00:00:00Z')}`, amount: 500n, planId: 'pay-per-call' },
    ]);
  });

  it('is undefined for a period the subscription was not active in, or with no priced plan', () => {
    expect(ratePeriodInvoice(history(), { start: at('2026-10-10T00:00:00Z'), end: at('2026-11-10T00:00:00Z') }, context)).toBeUndefined();
    const unpriced = { pricingOf: () => undefined, endpointOf: () => undefined };
    expect(ratePeriodInvoice(history(), periodContaining(at('2026-11-10T00:00:00Z'), at('2026-11-20T00:00:00Z')), unpriced)).toBeUndefined();
  });
});
