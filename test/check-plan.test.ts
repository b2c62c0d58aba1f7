import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../src/catalog/catalog.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { CheckPlans } from '../src/check/check-plan.js';
import { encodeCheckResponseFrame } from '../src/check/check-response-encoder.js';
import { createCheckHandler } from '../src/check/check-handler.js';
import { memoizePeriods } from '../src/check/decide.js';
import type { Decision } from '../src/check/decision.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { ResilientCounterStore } from '../src/counters/resilient.js';
import { loaderOptions } from '../src/grpc/protos.js';
import type { IdentityCache } from '../src/identity/identity-cache.js';
import type { Identity } from '../src/identity/types.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { periodContaining } from '../src/rating/period.js';
import { referenceCheckResponse } from './support/envoy-wire.js';
import { testUsageIdentity } from './support/usage.js';

/** The Check's compiled plans: one per endpoint and plan, bound to a key per billing period, recompiled on reload. */

const catalog = loadCatalogFile('examples/petstore.yaml');
const identity: Identity = {
  key: { id: 'key_1', customerId: 'acme', subscriptionId: 'sub_1', status: 'active' },
  subscription: { id: 'sub_1', customerId: 'acme', productId: 'petstore', planId: 'free', status: 'active', periodAnchor: Date.UTC(2026, 9, 3) },
  customer: { id: 'acme', status: 'active', overdue: false },
};
const listPets = catalog.match('api.petstore.example.com', 'GET', '/api/v1/pets')!;
const november = { start: Date.UTC(2026, 10, 3), end: Date.UTC(2026, 11, 3) };
const december = { start: Date.UTC(2026, 11, 3), end: Date.UTC(2027, 0, 3) };

describe('CheckPlans', () => {
  it('compiles two plans on one route separately, each with its own limits in counting order', () => {
    const plans = new CheckPlans(catalog, 'x-tollgate-');
    const free = plans.planFor(listPets, catalog.plan('free')!)!;
    const pro = plans.planFor(listPets, catalog.plan('pro')!)!;
    expect(free.id).not.toBe(pro.id);
    expect(free.route.endpoint.id).toBe('list-pets');
    expect(free.rules).toEqual([{ kind: 'rate', rateLimit: expect.objectContaining({ requests: 10 }) }, { kind: 'quota' }]);
    expect(pro.rules[0]).toEqual({ kind: 'rate', rateLimit: expect.objectContaining({ requests: 100 }) });
    expect(free.rateLimitPolicy).toBe('10;w=60');
    expect(pro.rateLimitPolicy).toBe('100;w=60');
  });

  it('compiles nothing for an endpoint a plan does not include', () => {
    const plans = new CheckPlans(catalog, 'x-tollgate-');
    const image = catalog.match('api.petstore.example.com', 'POST', '/api/v1/pets/3/image')!;
    expect(catalog.plan('free')!.allowedEndpoints.has(image.endpoint.id)).toBe(false);
    expect(plans.planFor(image, catalog.plan('free')!)).toBeUndefined();
    expect(plans.planFor(image, catalog.plan('enterprise')!)).toBeDefined();
  });

  it("binds a plan to a key once per period, with limits, metadata, headers and their bytes; another key or period gets its own", () => {
    const plans = new CheckPlans(catalog, 'x-tollgate-');
    const free = plans.planFor(listPets, catalog.plan('free')!)!;
    const { key, subscription, customer } = identity;
    const bound = plans.bind(free, key, subscription!, customer!, november);
    expect(plans.bind(free, key, subscription!, customer!, { ...november })).toBe(bound);
    expect(bound.limits.map((limit) => limit.name)).toEqual(['rl:sub_1:60000', 'q:sub_1']);
    expect(bound.upstreamHeaders).toEqual({ 'x-tollgate-customer-id': 'acme', 'x-tollgate-subscription-id': 'sub_1', 'x-tollgate-plan-id': 'free', 'x-tollgate-key-id': 'key_1' });
    expect(bound.metadata).toMatchObject({ endpoint_id: 'list-pets', plan_id: 'free', period_start: november.start });

    const nextPeriod = plans.bind(free, key, subscription!, customer!, december);
    expect(nextPeriod).not.toBe(bound);
    expect(nextPeriod.limitSetId).not.toBe(bound.limitSetId);
    const otherKey = plans.bind(free, { ...key, id: 'key_2' }, subscription!, customer!, november);
    expect(otherKey.limitSetId).not.toBe(bound.limitSetId);
    // The subscription-wide rate limit and the quota are one counter for both keys; only the id of the set differs.
    expect(otherKey.limits).toEqual(bound.limits);
  });

  it('holds a bounded number of bindings: traffic over many keys lets the least recently used go', () => {
    const plans = new CheckPlans(catalog, 'x-tollgate-');
    const free = plans.planFor(listPets, catalog.plan('free')!)!;
    const { key, subscription, customer } = identity;
    const first = plans.bind(free, key, subscription!, customer!, november);
    const many = 50_000;
    for (let i = 0; i < many; i++) plans.bind(free, { ...key, id: `key_many${i}` }, subscription!, customer!, november);
    // Bound again after 50,000 other keys: a new binding, equal to the first.
    const again = plans.bind(free, key, subscription!, customer!, november);
    expect(again).not.toBe(first);
    expect(again.limitSetId).toBe(first.limitSetId);
    // A key moved to another subscription is bound afresh, whatever is held.
    const moved = plans.bind(free, { ...key, subscriptionId: 'sub_2' }, { ...subscription!, id: 'sub_2' }, customer!, november);
    expect(moved).not.toBe(again);
    expect(moved.limits.map((limit) => limit.name)).toEqual(['rl:sub_2:60000', 'q:sub_2']);
  });

  it('gives a recompiled catalog new plan ids, so a batch never mixes limit sets of two catalogs', () => {
    const first = new CheckPlans(catalog, 'x-tollgate-');
    const second = new CheckPlans(catalog, 'x-tollgate-');
    const plan = catalog.plan('free')!;
    const { key, subscription, customer } = identity;
    expect(second.planFor(listPets, plan)!.id).not.toBe(first.planFor(listPets, plan)!.id);
    expect(second.bind(second.planFor(listPets, plan)!, key, subscription!, customer!, november).limitSetId).not.toBe(
      first.bind(first.planFor(listPets, plan)!, key, subscription!, customer!, november).limitSetId,
    );
  });

  it("encodes a bound plan's allow response as protobufjs encodes the same response, first from its records, then from its bytes", async () => {
    const { handler } = handlerFor(() => catalog);
    const first = await checkOnce(handler);
    const second = await checkOnce(handler);
    // A binding's bytes are made on its second Check: a key seen once pays for none.
    expect(first.allowed && first.preEncoded).toBeUndefined();
    expect(second.allowed && second.preEncoded).toBeTruthy();
    const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', { ...loaderOptions, defaults: true });
    const check = (definition['envoy.service.auth.v3.Authorization'] as unknown as { Check: { responseSerialize(value: unknown): Buffer; responseDeserialize(bytes: Buffer): unknown } }).Check;
    for (const decision of [first, second]) {
      const ours = check.responseDeserialize(encodeCheckResponseFrame(decision).subarray(5));
      expect(ours).toEqual(check.responseDeserialize(check.responseSerialize(referenceCheckResponse(decision))));
    }
  });
});

describe('the Check handler and catalog reloads', () => {
  it('compiles the new catalog after a reload: the next Check counts with its limits', async () => {
    let current = catalog;
    const { handler } = handlerFor(() => current);
    const before = await checkOnce(handler);
    expect(before).toMatchObject({ allowed: true, responseHeaders: { 'ratelimit-limit': '10', 'ratelimit-policy': '10;w=60' } });

    const document = structuredClone(catalog.document);
    document.plans.find((plan) => plan.id === 'free')!.rate_limits[0]!.requests = 25;
    current = new Catalog(document);
    const after = await checkOnce(handler);
    expect(after).toMatchObject({ allowed: true, responseHeaders: { 'ratelimit-limit': '25', 'ratelimit-policy': '25;w=60' } });
  });
});

function handlerFor(catalogOf: () => Catalog) {
  const clock = new ManualClock(Date.UTC(2026, 10, 23));
  const local = new MemoryCounterStore(clock, 'plans');
  const handler = createCheckHandler({
    catalog: catalogOf,
    identities: { lookup: () => identity } as unknown as IdentityCache,
    counters: new ResilientCounterStore(local, 'closed', local, silentLogger),
    clock,
    options: { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' },
    periodOf: memoizePeriods(periodContaining),
    usage: testUsageIdentity,
    metrics: createMetrics(),
    logger: silentLogger,
  });
  return { handler };
}

function checkOnce(handler: ReturnType<typeof createCheckHandler>): Promise<Decision> {
  const request = {
    attributes: { request: { http: { method: 'GET', path: '/api/v1/pets', host: 'api.petstore.example.com', headers: { 'x-api-key': 'tg_anything', 'x-request-id': 'req-1' } } } },
  };
  return new Promise((respond, reject) => handler(request, { respond, fail: (code: number, message: string) => reject(new Error(`${code}: ${message}`)) } as never));
}
