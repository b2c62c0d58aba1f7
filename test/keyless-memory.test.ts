import { connect, type ClientHttp2Session } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityCache } from '../src/identity/identity-cache.js';
import { checkMethod } from '../src/check/check-method.js';
import { createCheckHandler } from '../src/check/check-handler.js';
import { memoizePeriods } from '../src/check/decide.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { loadEnvoyServices } from '../src/grpc/protos.js';
import { startGrpcServer, type RunningGrpcServer } from '../src/grpc/server.js';
import { frame } from '../src/grpc/transport.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { ResilientCounterStore } from '../src/counters/resilient.js';
import { periodContaining } from '../src/rating/period.js';
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

  beforeAll(async () => {
    server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      check: checkMethod(createCheckHandler({
        catalog: () => catalog,
        identities: { lookup: () => undefined } as unknown as IdentityCache,
        counters: new ResilientCounterStore(counters, 'closed', counters, silentLogger),
        clock,
        options: { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' },
        periodOf: memoizePeriods(periodContaining),
        metrics: createMetrics(),
        logger: silentLogger,
        usage: testUsageIdentity,
      })),
    });
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  it('10,000 of them with 100 KB paths leave memory flat', async () => {
    // Sent as Envoy would, but encoded once: each request differs from the template only in its path's first digits.
    const filler = 'p'.repeat(100 * 1024);
    const template = (key: string | undefined) =>
      frame(
        checkRequestBytes({
          attributes: { request: { http: { method: 'GET', path: `/api/v1/pets/0000000/${filler}`, host: 'api.petstore.example.com', headers: key ? { 'x-api-key': key } : {} } } },
        }),
      );
    const templates = [template(undefined), template('tg_live_nobody_issued_this_key_0000')];
    const digitsAt = templates.map((bytes) => bytes.indexOf('/0000000/') + 1);
    // Sixteen Checks in flight, each lane on a connection of its own: a connection has one flow-control window (64 KB)
    // for all its streams, so over a single one the 100 KB bodies mostly waited for window updates.
    const lanes = 16;
    const sessions = Array.from({ length: lanes }, () => connect(`http://127.0.0.1:${server.port}`));
    const check = (session: ClientHttp2Session, body: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/envoy.service.auth.v3.Authorization/Check', 'content-type': 'application/grpc', te: 'trailers' });
        const chunks: Buffer[] = [];
        let sent = false;
        let answer: string | undefined;
        // Settled once the body is fully written too: its buffer is then free for the lane's next Check.
        const settle = () => sent && answer !== undefined && resolve(answer);
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('error', reject);
        stream.on('end', () => {
          answer = checkResponseStatus(Buffer.concat(chunks));
          settle();
        });
        stream.end(body, () => {
          sent = true;
          settle();
        });
      });
    // Each lane's own copy of each template, rewritten in place for every Check it sends.
    const bodies = Array.from({ length: lanes }, () => templates.map((bytes) => Buffer.from(bytes)));
    const send = async (from: number, count: number) => {
      const statuses = new Map<string, number>();
      let next = from;
      await Promise.all(
        bodies.map(async (own, lane) => {
          for (let n = next++; n < from + count; n = next++) {
            // Half without a key, half with one nobody issued.
            const body = own[n % 2]!;
            body.write(String(n).padStart(7, '0'), digitsAt[n % 2]!, 'latin1');
            const status = await check(sessions[lane]!, body);
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
          }
        }),
      );
      expect(Object.fromEntries(statuses)).toEqual({ Unauthorized: count });
    };
    try {
      await send(0, 1_000); // warm-up: code paths compiled, buffers pooled
      const before = heapAfterCollection();
      await send(1_000, 9_000);
      const grown = heapAfterCollection() - before;
      // 9,000 paths of 100 KB are 900 MB: keeping even a few percent of them would show.
      expect(grown).toBeLessThan(16 * 1024 * 1024);
    } finally {
      for (const session of sessions) session.close();
    }
  }, 120_000);
});

const { Check } = loadEnvoyServices().authorization as unknown as Record<string, { requestSerialize(value: unknown): Buffer; responseDeserialize(bytes: Buffer): { denied_response?: { status?: { code?: string } } } }>;
const checkRequestBytes = (request: unknown) => Check!.requestSerialize(request);
/** The HTTP status a denial asks Envoy to send. */
const checkResponseStatus = (framed: Buffer) => String(Check!.responseDeserialize(framed.subarray(5)).denied_response?.status?.code);
