import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityCache } from '../src/accounts/identity-cache.js';
import { createCheckHandler } from '../src/authz/check-service.js';
import { memoizePeriods } from '../src/authz/decide.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { startGrpcServer, type RunningGrpcServer } from '../src/grpc/server.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { MemoryCounterStore } from '../src/quota/memory.js';
import { ResilientCounterStore } from '../src/quota/resilient.js';
import { periodContaining } from '../src/rating/period.js';
import { FakeEnvoy } from './support/envoy.js';
import { testUsageIdentity } from './support/usage.js';

/** Strangers' Checks cost no memory: nothing about a request is kept before its credential is known. */

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

function heapAfterCollection(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

describe('keyless Checks with long unique paths', () => {
  const catalog = loadCatalogFile('examples/petstore.yaml');
  const clock = new ManualClock(Date.UTC(2026, 11, 7));
  const counters = new MemoryCounterStore(clock, 'keyless');
  let server: RunningGrpcServer;
  let envoy: FakeEnvoy;

  beforeAll(async () => {
    server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      check: createCheckHandler({
        catalog: () => catalog,
        identities: { resolve: () => undefined } as unknown as IdentityCache,
        counters: new ResilientCounterStore(counters, 'closed', counters, silentLogger),
        clock,
        options: { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' },
        periodOf: memoizePeriods(periodContaining),
        metrics: createMetrics(),
        logger: silentLogger,
        usage: testUsageIdentity,
      }),
    });
    envoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    envoy.close();
    await server.shutdown(1_000);
  });

  it('10,000 of them with 100 KB paths leave memory flat', async () => {
    const filler = 'p'.repeat(100 * 1024);
    const send = async (from: number, count: number) => {
      const parallel = 16;
      for (let next = from; next < from + count; next += parallel) {
        await Promise.all(
          Array.from({ length: Math.min(parallel, from + count - next) }, async (_, offset) => {
            const n = next + offset;
            // Half without a key, half with one nobody issued.
            const outcome = await envoy.check({ method: 'GET', path: `/api/v1/pets/${n}/${filler}`, ...(n % 2 ? { key: `tg_live_${n}` } : {}) });
            expect(outcome.httpStatus).toBe(401);
          }),
        );
      }
    };
    await send(0, 1_000); // warm-up: code paths compiled, buffers pooled
    const before = heapAfterCollection();
    await send(1_000, 9_000);
    const grown = heapAfterCollection() - before;
    // 9,000 paths of 100 KB are 900 MB: keeping even a few percent of them would show.
    expect(grown).toBeLessThan(16 * 1024 * 1024);
  }, 120_000);
});
