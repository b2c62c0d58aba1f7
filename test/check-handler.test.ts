import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import type { IdentityCache } from '../src/identity/identity-cache.js';
import type { Identity } from '../src/identity/types.js';
import { createCheckHandler, type CheckDependencies } from '../src/check/check-handler.js';
import { memoizePeriods } from '../src/check/decide.js';
import type { Decision } from '../src/check/decision.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { ManualClock } from '../src/kernel/clock.js';
import { createLogger, silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { ResilientCounterStore } from '../src/counters/resilient.js';
import { periodContaining } from '../src/rating/period.js';
import { testUsageIdentity } from './support/usage.js';

/** The gRPC handler around the Check: whatever goes wrong, Envoy gets an explicit answer and the process lives on. */

function handlerWith(overrides: Partial<CheckDependencies>) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    'error',
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        done();
      },
    }),
  );
  const clock = new ManualClock(Date.UTC(2026, 10, 23));
  const local = new MemoryCounterStore(clock, 'handler');
  const metrics = createMetrics();
  const handler = createCheckHandler({
    catalog: () => loadCatalogFile('examples/petstore.yaml'),
    identities: { lookup: () => undefined } as unknown as IdentityCache,
    counters: new ResilientCounterStore(local, 'closed', local, logger),
    clock,
    options: { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' },
    periodOf: memoizePeriods(periodContaining),
    usage: testUsageIdentity,
    metrics,
    logger,
    ...overrides,
  });
  return { handler, lines, metrics };
}

const request = { attributes: { request: { http: { method: 'GET', path: '/api/v1/pets', host: 'api.example.com', headers: { 'x-request-id': 'req-1' } } } } };

function check(handler: ReturnType<typeof handlerWith>['handler'], callback: (decision: Decision) => void, checkRequest: unknown = request) {
  const call = {
    respond: callback,
    fail: (code: number, message: string) => expect.fail(`the Check failed the call (${code}: ${message}) instead of answering`),
  };
  handler(checkRequest as Parameters<typeof handler>[0], call as unknown as Parameters<typeof handler>[1]);
}

describe('the Check handler', () => {
  it('answers a failing decision with an explicit 503 denial, counted and logged', async () => {
    const { handler, lines, metrics } = handlerWith({
      catalog: () => {
        throw new Error('catalog exploded');
      },
    });
    const decision = await new Promise<Decision>((resolve) => check(handler, resolve));
    expect(decision).toMatchObject({ allowed: false, status: 503, code: 'internal_error', body: { error: { code: 'internal_error', request_id: 'req-1' } } });
    expect(lines.some((line) => line.msg === 'check failed' && String(line.err).includes('catalog exploded'))).toBe(true);
    expect(await metrics.registry.metrics()).toMatch(/tollgate_check_decisions_total\{result="deny",reason="internal_error",plan=""\} 1/);
  });

  it('answers a counter call that fails with a bug, not an outage, with the same 503 denial', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23));
    const broken = new MemoryCounterStore(clock, 'broken');
    broken.consume = () => Promise.reject(new Error('script bug'));
    const identity: Identity = {
      key: { id: 'key_1', customerId: 'acme', subscriptionId: 'sub_1', status: 'active' },
      subscription: { id: 'sub_1', customerId: 'acme', productId: 'petstore', planId: 'free', status: 'active', periodAnchor: Date.UTC(2026, 9, 3) },
      customer: { id: 'acme', status: 'active', overdue: false },
    };
    const { handler, lines, metrics } = handlerWith({
      identities: { lookup: () => identity } as unknown as IdentityCache,
      // Failing open would allow on an outage; a bug must still deny.
      counters: new ResilientCounterStore(broken, 'open', broken, silentLogger),
    });
    const keyed = { attributes: { request: { http: { method: 'GET', path: '/api/v1/pets', host: 'api.petstore.example.com', headers: { 'x-request-id': 'req-2', 'x-api-key': 'tg_k' } } } } };
    const decision = await new Promise<Decision>((resolve) => check(handler, resolve, keyed));
    expect(decision).toMatchObject({ allowed: false, status: 503, code: 'internal_error', body: { error: { request_id: 'req-2' } } });
    expect(lines.some((line) => line.msg === 'check failed' && String(line.err).includes('script bug'))).toBe(true);
    expect(await metrics.registry.metrics()).toMatch(/tollgate_check_decisions_total\{result="deny",reason="internal_error",plan=""\} 1/);
  });

  it('logs, rather than leaving unhandled, a failure after the decision (the process must not end)', async () => {
    const { handler, lines } = handlerWith({});
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      check(handler, () => {
        throw new Error('response failed');
      });
      // Logged, and then a turn of the event loop, in which Node reports the rejections left unhandled.
      await vi.waitFor(() => expect(lines.some((line) => line.msg === 'check response failed' && String(line.err).includes('response failed'))).toBe(true));
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});
