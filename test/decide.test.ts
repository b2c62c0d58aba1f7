import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../src/identity/types.js';
import { CheckPlans } from '../src/check/check-plan.js';
import { admit, conclude, extractKey, formatWindow, type AdmitContext, type Admitted, type CheckRequestFacts } from '../src/check/decide.js';
import type { Deny } from '../src/check/decision.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { periodContaining } from '../src/rating/period.js';
import type { ConsumeResult } from '../src/counters/store.js';
import { evaluateSliding, type LimitOutcome, type SlidingLimit } from '../src/counters/window.js';

/** The Check's pure core, decision by decision, with no I/O. */

const catalog = loadCatalogFile('examples/petstore.yaml');
const now = Date.UTC(2026, 10, 15, 12);
const options = { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' };
const plans = new CheckPlans(catalog, options.headerPrefix);

function identity(overrides: { key?: Partial<Identity['key']>; plan?: string; subscription?: 'active' | 'canceled' | 'missing'; customer?: 'active' | 'suspended' | 'overdue' | 'erased' | 'missing' } = {}): Identity {
  const customer = overrides.customer ?? 'active';
  return {
    key: { id: 'key_1', customerId: 'acme', subscriptionId: 'sub_1', status: 'active', ...overrides.key },
    subscription:
      overrides.subscription === 'missing'
        ? undefined
        : { id: 'sub_1', customerId: 'acme', productId: 'petstore', planId: overrides.plan ?? 'free', status: overrides.subscription ?? 'active', periodAnchor: Date.UTC(2026, 9, 3) },
    customer: customer === 'missing' ? undefined : { id: 'acme', status: customer === 'overdue' ? 'suspended' : customer, overdue: customer === 'overdue' },
  };
}

const request = (method: string, path: string, headers: Record<string, string> = { 'x-api-key': 'k' }): CheckRequestFacts => ({
  method,
  host: 'api.petstore.example.com',
  path,
  headers,
  requestId: 'req-1',
});

const context = (resolved: Identity | undefined): AdmitContext => ({
  plans,
  options,
  now,
  resolveKey: (key) => (key === 'k' ? resolved : undefined),
  periodOf: periodContaining,
});

function admittedOf(facts: CheckRequestFacts, resolved: Identity, at = now): Admitted {
  const admission = admit(facts, { ...context(resolved), now: at });
  if (!admission.admitted) throw new Error('expected admission');
  return admission.next;
}

function denialOf(facts: CheckRequestFacts, resolved: Identity | undefined): Deny {
  const admission = admit(facts, context(resolved));
  if (admission.admitted) throw new Error('expected a denial');
  return admission.decision;
}

describe('admit', () => {
  it.each([
    ['no key', request('GET', '/api/v1/pets', {}), identity(), 401, 'missing_key'],
    ['unknown key', request('GET', '/api/v1/pets', { 'x-api-key': 'other' }), identity(), 401, 'invalid_key'],
    ['revoked key', request('GET', '/api/v1/pets'), identity({ key: { status: 'revoked' } }), 401, 'key_revoked'],
    ['pending key', request('GET', '/api/v1/pets'), identity({ key: { status: 'pending' } }), 403, 'key_pending_approval'],
    ['suspended account', request('GET', '/api/v1/pets'), identity({ customer: 'suspended' }), 402, 'account_suspended'],
    ['unknown customer', request('GET', '/api/v1/pets'), identity({ customer: 'missing' }), 402, 'account_suspended'],
    ['canceled subscription', request('GET', '/api/v1/pets'), identity({ subscription: 'canceled' }), 403, 'subscription_inactive'],
    ['missing subscription', request('GET', '/api/v1/pets'), identity({ subscription: 'missing' }), 403, 'subscription_inactive'],
    ['plan removed from catalog', request('GET', '/api/v1/pets'), identity({ plan: 'gold' }), 403, 'plan_unavailable'],
    ['route outside every product', request('GET', '/api/v2/cats'), identity(), 403, 'unknown_endpoint'],
    ['endpoint outside the plan', request('GET', '/api/v1/analytics'), identity(), 403, 'not_entitled'],
    ['webhooks on pro', request('POST', '/api/v1/webhooks'), identity({ plan: 'pro' }), 403, 'not_entitled'],
  ] as const)('denies %s', (_case, facts, resolved, status, code) => {
    const decision = denialOf(facts, resolved);
    expect(decision).toMatchObject({ allowed: false, status, code });
    expect(decision.body).toMatchObject({ error: { code, request_id: 'req-1' } });
    expect(decision.metadata).toMatchObject({ decision: 'deny', reason: code });
  });

  it('tells a suspended customer why: only a suspension for non-payment asks them to pay', () => {
    const error = (customer: 'suspended' | 'overdue' | 'erased' | 'missing') =>
      (denialOf(request('GET', '/api/v1/pets'), identity({ customer })).body as { error: { reason: string; message: string } }).error;
    expect(error('overdue')).toMatchObject({ reason: 'payment_overdue', message: expect.stringMatching(/overdue payment; settle the outstanding balance/) });
    expect(error('suspended')).toMatchObject({ reason: 'suspended_by_provider', message: expect.stringMatching(/suspended by the API provider; contact them/) });
    expect(error('erased')).toMatchObject({ reason: 'account_closed', message: 'The account is closed.' });
    expect(error('missing')).toMatchObject({ reason: 'account_closed' });
    for (const customer of ['suspended', 'erased', 'missing'] as const) expect(error(customer).message).not.toMatch(/settle|balance|pay/);
  });

  it('names the upgrade URL when the plan lacks the endpoint', () => {
    expect(denialOf(request('GET', '/api/v1/analytics'), identity()).body).toMatchObject({ error: { upgrade_url: 'https://petstore.example.com/pricing' } });
  });

  it('asks for the rate limits and the weighted quota of the plan, in the subscription billing period', () => {
    const admission = admit(request('POST', '/api/v1/pets/3/image'), context(identity({ plan: 'enterprise' })));
    expect(admission.admitted).toBe(true);
    if (!admission.admitted) return;
    expect(admission.next.scope).toBe('acme');
    expect(admission.next.limits).toEqual([
      { kind: 'sliding', name: 'rl:sub_1:60000', limit: 1000, windowMs: 60_000, cost: 1 },
      { kind: 'sliding', name: 'rl:sub_1:1000', limit: 50, windowMs: 1_000, cost: 1 },
      { kind: 'period', name: 'q:sub_1', limit: 1_000_000, periodStart: Date.UTC(2026, 10, 3), periodEnd: Date.UTC(2026, 11, 3), cost: 10, enforce: false },
    ]);
  });

  it("shares one limits array and one frozen metadata among a key's calls to an endpoint, and builds new ones when its plan, subscription or period changes", () => {
    const free = identity();
    const metadataFor = (resolved: Identity, path = '/api/v1/pets') => admittedOf(request('GET', path), resolved).metadata;
    const facts = metadataFor(free);
    expect(Object.isFrozen(facts)).toBe(true);
    expect(metadataFor(free)).toBe(facts);
    expect(metadataFor(free, '/api/v1/pets/7')).toMatchObject({ endpoint_id: 'get-pet', plan_id: 'free' });
    expect(metadataFor({ ...free, subscription: { ...free.subscription!, planId: 'pro' } })).toMatchObject({ endpoint_id: 'list-pets', plan_id: 'pro' });

    const limitsFor = (resolved: Identity, path = '/api/v1/pets', at = now) => admittedOf(request('GET', path), resolved, at).limits;
    const first = limitsFor(free);
    expect(limitsFor(free)).toBe(first);
    expect(limitsFor(free, '/api/v1/pets/7')).not.toBe(first);

    const nextPeriod = limitsFor(free, '/api/v1/pets', Date.UTC(2026, 11, 5));
    expect(nextPeriod).not.toBe(first);
    expect(nextPeriod.find((limit) => limit.kind === 'period')).toMatchObject({ periodStart: Date.UTC(2026, 11, 3) });

    // The identity cache replaces a changed subscription with a new object, and the key keeps its own.
    const upgraded: Identity = { ...free, subscription: { ...free.subscription!, planId: 'pro' } };
    const pro = limitsFor(upgraded);
    expect(pro).not.toBe(first);
    expect(pro.find((limit) => limit.kind === 'sliding')).toMatchObject({ limit: 100 });
    expect(limitsFor(upgraded)).toBe(pro);
  });

  it('takes the key from Authorization: Bearer unless that is turned off', () => {
    expect(extractKey({ authorization: 'Bearer abc' }, options)).toBe('abc');
    expect(extractKey({ authorization: 'bearer   abc ' }, options)).toBe('abc');
    expect(extractKey({ authorization: 'Basic abc' }, options)).toBeUndefined();
    expect(extractKey({ authorization: 'Bearer abc' }, { ...options, keyFromBearer: false })).toBeUndefined();
    expect(extractKey({ 'x-api-key': ' k ', authorization: 'Bearer abc' }, options)).toBe('k');
  });
});

describe('conclude', () => {
  /** The metadata facts of the free key's calls to GET /api/v1/pets. */
  const listPetsFacts = {
    product_id: 'petstore',
    endpoint_id: 'list-pets',
    weight: 1,
    key_id: 'key_1',
    customer_id: 'acme',
    subscription_id: 'sub_1',
    plan_id: 'free',
    period_start: periodContaining(Date.UTC(2026, 9, 3), now).start,
  };
  const admitted = () => admittedOf(request('GET', '/api/v1/pets', { 'x-api-key': 'k', 'x-tollgate-plan-id': 'enterprise', 'x-tollgate-debug': '1' }), identity());
  const answer = (rate: { allowed: boolean; remaining: number; retryAfterMs?: number }, quota = { allowed: true, remaining: 900 }): ConsumeResult => ({
    allowed: rate.allowed && quota.allowed,
    outcomes: [
      { name: 'rl', allowed: rate.allowed, limit: 10, remaining: rate.remaining, resetMs: 61_500, retryAfterMs: rate.retryAfterMs ?? 0 },
      { name: 'q', allowed: quota.allowed, limit: 1000, remaining: quota.remaining, resetMs: 5_000, retryAfterMs: quota.allowed ? 0 : 5_000 },
    ],
  });

  const passed = (name: string, limit: number, remaining: number, resetMs: number): LimitOutcome => ({ name, allowed: true, limit, remaining, resetMs, retryAfterMs: 0 });
  const blocked = (name: string, limit: number, resetMs: number, retryAfterMs: number): LimitOutcome => ({ name, allowed: false, limit, remaining: 0, resetMs, retryAfterMs });
  const denied = (...outcomes: LimitOutcome[]): ConsumeResult => ({ allowed: false, outcomes });

  it('allows with identity headers that overwrite client copies and removes other spoofed ones', () => {
    const decision = conclude(admitted(), answer({ allowed: true, remaining: 7 }), request('GET', '/api/v1/pets', { 'x-api-key': 'k', 'x-tollgate-plan-id': 'enterprise', 'x-tollgate-debug': '1' }), options, undefined);
    expect(decision).toMatchObject({
      allowed: true,
      upstreamHeaders: { 'x-tollgate-customer-id': 'acme', 'x-tollgate-plan-id': 'free', 'x-tollgate-key-id': 'key_1', 'x-tollgate-subscription-id': 'sub_1' },
      removeHeaders: ['x-tollgate-debug'],
      responseHeaders: { 'ratelimit-limit': '10', 'ratelimit-remaining': '7', 'ratelimit-reset': '62', 'ratelimit-policy': '10;w=60', 'x-quota-remaining': '900' },
    });
    if (!decision.allowed) return;
    expect({ ...decision.metadata, ...decision.requestMetadata }).toEqual({ request_id: 'req-1', ...listPetsFacts, decision: 'allow' });
  });

  it("shares one frozen set of identity headers among a key's allowed calls, and builds another when its plan changes", () => {
    const free = identity();
    const allowedHeaders = (resolved: Identity) => {
      const decision = conclude(admittedOf(request('GET', '/api/v1/pets'), resolved), answer({ allowed: true, remaining: 7 }), request('GET', '/api/v1/pets'), options, undefined);
      if (!decision.allowed) throw new Error('expected an allow');
      return decision.upstreamHeaders;
    };
    const first = allowedHeaders(free);
    expect(Object.isFrozen(first)).toBe(true);
    expect(allowedHeaders(free)).toBe(first);
    const upgraded = allowedHeaders({ ...free, subscription: { ...free.subscription!, planId: 'pro' } });
    expect(upgraded).not.toBe(first);
    expect(upgraded['x-tollgate-plan-id']).toBe('pro');
  });

  it('denies 429 with Retry-After rounded up to whole seconds', () => {
    const decision = conclude(admitted(), answer({ allowed: false, remaining: 0, retryAfterMs: 4_001 }), request('GET', '/api/v1/pets'), options, 'https://up');
    // The quota let it through, but the denied request counted nothing: 900 after it would have been 901 without it.
    expect(decision).toMatchObject({ allowed: false, status: 429, code: 'rate_limited', headers: { 'retry-after': '5', 'x-quota-remaining': '901' } });
    expect((decision as Deny).body).toMatchObject({ error: { limit: 10, window: '1m', retry_after_seconds: 5, upgrade_url: 'https://up', plan: 'free' } });
    expect(decision.metadata).toEqual({ request_id: 'req-1', ...listPetsFacts, decision: 'deny', reason: 'rate_limited' });
  });

  it('denies an exhausted quota with the status the plan chooses', () => {
    const free = conclude(admitted(), answer({ allowed: true, remaining: 5 }, { allowed: false, remaining: 0 }), request('GET', '/api/v1/pets'), options, undefined);
    expect(free).toMatchObject({ status: 429, code: 'quota_exhausted' });
    const pro = conclude(admittedOf(request('GET', '/api/v1/pets'), identity({ plan: 'pro' })), answer({ allowed: true, remaining: 5 }, { allowed: false, remaining: 0 }), request('GET', '/api/v1/pets'), options, undefined);
    expect(pro).toMatchObject({ status: 402, code: 'quota_exhausted' });
  });

  it('names the block that lasts longest when several limits block: a used-up quota before a rate limit, then the longest wait', () => {
    const pro = admittedOf(request('GET', '/api/v1/pets'), identity({ plan: 'pro' }));
    const both = conclude(pro, answer({ allowed: false, remaining: 0, retryAfterMs: 3_000 }, { allowed: false, remaining: 0 }), request('GET', '/api/v1/pets'), options, undefined);
    expect(both).toMatchObject({ status: 402, code: 'quota_exhausted', headers: { 'retry-after': '5' } });

    const enterprise = admittedOf(request('GET', '/api/v1/pets'), identity({ plan: 'enterprise' }));
    // Enterprise: 1,000 a minute, then 50 a second; both windows are used up.
    const windows = (secondMs: number, minuteMs: number) =>
      denied(blocked('minute', 1000, minuteMs, minuteMs), blocked('second', 50, secondMs, secondMs), passed('quota', 1_000_000, 10, 0));
    const longer = conclude(enterprise, windows(800, 42_000), request('GET', '/api/v1/pets'), options, undefined);
    expect(longer).toMatchObject({ status: 429, code: 'rate_limited', headers: { 'retry-after': '42' } });
    expect((longer as Deny).body).toMatchObject({ error: { window: '1m', retry_after_seconds: 42 } });
    const shorter = conclude(enterprise, windows(900, 300), request('GET', '/api/v1/pets'), options, undefined);
    expect((shorter as Deny).body).toMatchObject({ error: { window: '1s', retry_after_seconds: 1 } });

    // The 1 s window blocks; the minute window let it through with nothing left after it: the headers name the block,
    // and an overage quota already past its limit still shows nothing left.
    const secondBlocks = denied(passed('minute', 1000, 0, 60_000), blocked('second', 50, 1_000, 400), passed('quota', 1_000_000, 0, 86_400_000));
    expect(conclude(enterprise, secondBlocks, request('GET', '/api/v1/pets'), options, undefined)).toMatchObject({
      status: 429,
      headers: { 'ratelimit-limit': '50', 'ratelimit-remaining': '0', 'x-quota-remaining': '0', 'retry-after': '1' },
    });

    // A prepaid plan with a quota too: an empty wallet outlasts any quota period, since no wait refills it.
    const prepaid = admittedOf(request('GET', '/api/v1/pets'), identity({ plan: 'pay-per-call' }));
    const quotaLimit = { kind: 'period' as const, name: 'quota', limit: 1000, periodStart: 0, periodEnd: now + 86_400_000, cost: 1, enforce: true };
    const walletAndQuota = denied(passed('minute', 600, 500, 60_000), blocked('wallet', 0, 0, 0), blocked('quota', 1000, 86_400_000, 86_400_000));
    const emptyWallet = conclude({ ...prepaid, limits: [...prepaid.limits, quotaLimit] }, walletAndQuota, request('GET', '/api/v1/pets'), options, undefined);
    expect(emptyWallet).toMatchObject({ status: 402, code: 'wallet_exhausted' });
  });

  it('gives one instant in a 429: the body, Retry-After and RateLimit-Reset all say when the denied request fits', () => {
    // The free plan's 10 a minute, counted by the real window math: 10 calls last minute, 6 in this one, 20 s in.
    const minute = admitted().limits[0] as SlidingLimit;
    const at = 20_000;
    const window = evaluateSliding(minute, { previous: 10, current: 6 }, Math.floor(now / 60_000) * 60_000 + at);
    expect(window).toMatchObject({ allowed: false });
    // Fully empty only after both windows pass (100 s), but the call fits once the old window weighs 3 or less (22 s).
    expect(Math.ceil(window.resetMs / 1000)).toBe(100);
    const decision = conclude(admitted(), denied(window, passed('q', 1000, 900, 5_000)), request('GET', '/api/v1/pets'), options, undefined) as Deny;
    expect(decision).toMatchObject({ status: 429, code: 'rate_limited' });
    const seconds = (decision.body as { error: { retry_after_seconds: number } }).error.retry_after_seconds;
    expect(seconds).toBe(Math.ceil(window.retryAfterMs / 1000));
    expect(decision.headers).toMatchObject({ 'retry-after': String(seconds), 'ratelimit-reset': String(seconds), 'ratelimit-remaining': '0', 'ratelimit-limit': '10' });

    // Two windows block: the headers describe the one the body names (the longer wait), not merely the first.
    const enterprise = admittedOf(request('GET', '/api/v1/pets'), identity({ plan: 'enterprise' }));
    const both = conclude(enterprise, denied(blocked('minute', 1000, 90_000, 700), blocked('second', 50, 1_500, 1_200), passed('quota', 1_000_000, 10, 0)), request('GET', '/api/v1/pets'), options, undefined) as Deny;
    expect(both.body).toMatchObject({ error: { window: '1s', retry_after_seconds: 2 } });
    expect(both.headers).toMatchObject({ 'retry-after': '2', 'ratelimit-reset': '2', 'ratelimit-limit': '50' });
  });

  it('applies the counter store failure modes', () => {
    expect(conclude(admitted(), { degraded: 'closed' }, request('GET', '/api/v1/pets'), options, undefined)).toMatchObject({ status: 503, code: 'limits_unavailable' });
    const open = conclude(admitted(), { degraded: 'open' }, request('GET', '/api/v1/pets'), options, undefined);
    expect(open).toMatchObject({ allowed: true, responseHeaders: {}, requestMetadata: { degraded: 'open' } });
  });
});

describe('decision invariants', () => {
  it('any request without a known key is denied 401 and never leaks identity headers', () => {
    fc.assert(
      fc.property(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'), fc.webPath(), fc.dictionary(fc.string(), fc.string()), (method, path, headers) => {
        const decision = denialOf(request(method, path || '/', { ...headers, 'x-api-key': 'not-k' }), undefined);
        expect(decision.status).toBe(401);
        expect(decision.metadata.customer_id).toBeUndefined();
      }),
    );
  });

  it('formats windows in their largest whole unit', () => {
    expect([formatWindow(1_000), formatWindow(60_000), formatWindow(3_600_000), formatWindow(86_400_000), formatWindow(90_000)]).toEqual(['1s', '1m', '1h', '1d', '90s']);
  });
});
