import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { encodeChange, identityKeys } from '../src/identity/identity-records.js';
import { hashApiKey } from '../src/identity/keys.js';
import { OnDemandIdentities } from '../src/identity/on-demand-identities.js';
import { identityRebuildCheckMs } from '../src/identity/start.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { connectRedis } from '../src/kernel/redis-client.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, testRedisUrl, type TestApp } from './support/services.js';
import { removeRedisKeys, testRedisPrefix } from './support/test-run.js';

/**
 * Identity on demand (TOLLGATE_REDIS_URL set): two replicas on one PostgreSQL and one Redis, each with its jobs on a
 * manual clock, so that the version poll runs only when a test advances it. A change made on the first replica must
 * reach the second through the pub/sub channel alone, or through the poll alone.
 */
describe('identity on demand', () => {
  let first: TestApp;
  let second: App;
  let envoyB: FakeEnvoy;
  const firstTimers = new ManualClock(0);
  const secondTimers = new ManualClock(0);
  const pollMs = 1_000;
  const edges: OnDemandIdentities[] = [];
  const clients: ReturnType<typeof connectRedis>[] = [];

  const newKey = async (plan = 'pro') => {
    const customer = `c_${randomBytes(4).toString('hex')}`;
    await first.admin('POST', '/v1/customers', { id: customer, name: customer });
    const { body } = await first.admin('POST', '/v1/keys', { customer, plan });
    return { key: body.key as string, id: body.apiKey.id as string, hash: hashApiKey(body.key), customer };
  };
  const pets = (key: string) => envoyB.check({ method: 'GET', path: '/api/v1/pets', key });
  /** An edge of its own over the first replica's records, with small bounds. */
  const edge = async (cacheKeys: number, unknownKeys: number) => {
    const redis = connectRedis(testRedisUrl);
    clients.push(redis);
    const identities = new OnDemandIdentities(redis, identityKeys(first.env.TOLLGATE_REDIS_PREFIX!), new ManualClock(0), silentLogger, {
      cacheKeys,
      unknownKeys,
      unknownTtlMs: 10_000,
      timeoutMs: 5_000,
      readyWhileUnreachable: false,
    });
    edges.push(identities);
    await identities.start();
    return identities;
  };
  const randomHash = () => hashApiKey(`tg_${randomBytes(24).toString('base64url')}`);

  beforeAll(async () => {
    const env = { TOLLGATE_REDIS_TIMEOUT_MS: '5000', TOLLGATE_IDENTITY_POLL_MS: String(pollMs) };
    first = await startTestApp({ mode: 'production', env, timers: firstTimers });
    second = await startApp(loadConfig({ ...first.env, TOLLGATE_DATA_DIR: `${first.dataDir}/second` }), silentLogger, { timers: secondTimers });
    envoyB = new FakeEnvoy(`127.0.0.1:${second.grpc.port}`);
    // The first start's rebuild (of no keys), run as it takes leadership, marks the records complete.
    for (let waited = 0; (await pets(`tg_${randomBytes(24).toString('base64url')}`)).httpStatus !== 401; waited += 50) {
      if (waited > 10_000) throw new Error('the identity records were not marked complete');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
  afterAll(async () => {
    for (const identities of edges) identities.close();
    for (const client of clients) client.disconnect();
    envoyB?.close();
    await second?.stop();
    await first?.close();
  });

  it('holds at most the configured number of known keys, and answers a held one synchronously', async () => {
    const identities = await edge(4, 8);
    const keys = [];
    for (let i = 0; i < 6; i++) keys.push(await newKey());
    for (const { hash, id } of keys) expect((await identities.lookup(hash))?.key.id).toBe(id);
    expect(identities.size).toBeLessThanOrEqual(4);
    const last = keys.at(-1)!;
    expect(identities.lookup(last.hash)).not.toBeInstanceOf(Promise);
    expect((identities.lookup(last.hash) as { key: { id: string } }).key.id).toBe(last.id);
    // Concurrent misses on one hash share one Redis read.
    const fresh = await edge(4, 8);
    expect(fresh.lookup(last.hash)).toBe(fresh.lookup(last.hash));
  });

  it('reads the misses of one event-loop turn with one MGET, each answered with its own record', async () => {
    const identities = await edge(100, 100);
    const keys = [await newKey(), await newKey(), await newKey()];
    const redis = clients.at(-1)!;
    const mget = redis.mget.bind(redis);
    const batches: number[] = [];
    redis.mget = ((...args: Parameters<typeof redis.mget>) => {
      batches.push((args[0] as string[]).length);
      return mget(...args);
    }) as typeof redis.mget;
    const unknown = randomHash();
    const answers = await Promise.all([...keys.map(({ hash }) => identities.lookup(hash)), identities.lookup(unknown)]);
    expect(answers.map((answer) => answer?.key.id)).toEqual([...keys.map(({ id }) => id), undefined]);
    expect(batches).toEqual([4]);
  });

  it('remembers unknown keys apart, in a bounded cache a flood of random keys cannot grow or use to evict known ones', async () => {
    const identities = await edge(100, 1_000);
    const known = [await newKey(), await newKey(), await newKey()];
    for (const { hash } of known) await identities.lookup(hash);
    const flood = Array.from({ length: 20_000 }, randomHash);
    for (let i = 0; i < flood.length; i += 500) {
      const answers = await Promise.all(flood.slice(i, i + 500).map((hash) => identities.lookup(hash)));
      expect(answers.every((answer) => answer === undefined)).toBe(true);
    }
    // Known keys are still held, answered without Redis.
    expect(identities.size).toBe(3);
    for (const { hash, id } of known) expect((identities.lookup(hash) as { key: { id: string } } | undefined)?.key.id).toBe(id);
    // The latest unknown key is held; the first ones went, as the unknown cache holds at most 1,000.
    expect(identities.lookup(flood.at(-1)!)).toBeUndefined();
    const evicted = identities.lookup(flood[0]!);
    expect(evicted).toBeInstanceOf(Promise);
    await evicted;
  });

  it('enforces a revocation, plan change, suspension and erasure on the other replica within a second through the channel alone', async () => {
    const { key, id } = await newKey();
    expect((await pets(key)).allowed).toBe(true);
    const revoked = performance.now();
    await first.admin('POST', `/v1/keys/${id}/revoke`);
    await expect.poll(async () => (await pets(key)).httpStatus, { timeout: 1_000, interval: 10 }).toBe(401);
    expect(performance.now() - revoked).toBeLessThan(1_000);
    // A plan change and a suspension travel the same way.
    const other = await newKey('free');
    expect((await pets(other.key)).metadata.plan_id).toBe('free');
    const { body: subscriptions } = await first.admin('GET', `/v1/customers/${other.customer}/subscriptions`);
    await first.admin('POST', `/v1/subscriptions/${subscriptions.data[0].id}/change-plan`, { plan: 'pro' });
    await expect.poll(async () => (await pets(other.key)).metadata.plan_id, { timeout: 1_000, interval: 10 }).toBe('pro');
    await first.admin('PATCH', `/v1/customers/${other.customer}`, { status: 'suspended' });
    await expect.poll(async () => (await pets(other.key)).httpStatus, { timeout: 1_000, interval: 10 }).toBe(402);
    // Erasure changes the key's hash: the record under the old one is deleted, and the key is unknown everywhere.
    const erased = await newKey();
    expect((await pets(erased.key)).allowed).toBe(true);
    expect((await first.admin('POST', `/v1/customers/${erased.customer}/erase`)).status).toBe(200);
    await expect.poll(async () => (await pets(erased.key)).body, { timeout: 1_000, interval: 10 }).toMatchObject({ error: { code: 'invalid_key' } });
  });

  it('answers 503, never 401, for a real key while the records are rebuilt after Redis lost them', async () => {
    const { key } = await newKey();
    expect((await pets(key)).allowed).toBe(true);
    await removeRedisKeys(testRedisUrl, first.env.TOLLGATE_REDIS_PREFIX!);
    // The second replica's version poll sees the complete marker gone and drops what it held.
    await secondTimers.advance(pollMs);
    const meanwhile = await pets(key);
    expect(meanwhile.httpStatus).toBe(503);
    expect(meanwhile.metadata.reason).toBe('identity_unavailable');
    // The rebuild job (one leader, the first replica here) writes every key back from PostgreSQL.
    await firstTimers.advance(identityRebuildCheckMs);
    expect((await pets(key)).allowed).toBe(true);
    expect((await pets(`tg_${randomBytes(24).toString('base64url')}`)).httpStatus).toBe(401);
  });

  it('gives a change message until the next version poll to arrive before dropping what it holds', async () => {
    const identities = await edge(100, 100);
    const [touched, untouched] = [await newKey(), await newKey()];
    for (const { hash } of [touched, untouched]) await identities.lookup(hash);
    const held = (hash: string) => !(identities.lookup(hash) instanceof Promise);
    const redis = clients.at(-1)!;
    const keys = identityKeys(first.env.TOLLGATE_REDIS_PREFIX!);
    // A write raises the version before its message arrives: a poll in between keeps what it holds.
    const version = await redis.incr(keys.version);
    await identities.refresh();
    expect(held(untouched.hash)).toBe(true);
    await redis.publish(keys.channel, encodeChange({ version, hashes: [touched.hash] }));
    await expect.poll(() => held(touched.hash)).toBe(false);
    await identities.refresh();
    expect(held(untouched.hash)).toBe(true);
    // A message that never comes: the poll after the one that found its version ahead drops everything.
    await redis.incr(keys.version);
    await identities.refresh();
    expect(held(untouched.hash)).toBe(true);
    await identities.refresh();
    expect(held(untouched.hash)).toBe(false);
  });

  it('enforces a revocation on the other replica by the next version poll when the channel is lost', async () => {
    // The second replica stops hearing the channel before the key exists: the key's own creation message, arriving
    // late under load, would otherwise make the second replica read the key again after its revocation.
    (second.identities as OnDemandIdentities).close();
    const { key, id } = await newKey();
    expect((await pets(key)).allowed).toBe(true);
    await first.admin('POST', `/v1/keys/${id}/revoke`);
    expect((await pets(key)).allowed).toBe(true);
    await secondTimers.advance(pollMs);
    expect((await pets(key)).httpStatus).toBe(401);
  });
});

describe('identity on demand at start', () => {
  let app: TestApp;
  let restarted: App | undefined;
  const prefix = testRedisPrefix('identity');
  const keyCount = 30_000;

  beforeAll(async () => {
    app = await startTestApp({ mode: 'production', timers: new ManualClock(0) });
    const db = new pg.Client({ connectionString: app.env.TOLLGATE_DATABASE_URL });
    await db.connect();
    try {
      // Keys straight into PostgreSQL, as a bulk import leaves them: none of them is in Redis yet.
      await db.query(`INSERT INTO customers (id, name) SELECT 'bulk' || n, 'bulk' FROM generate_series(1, $1) n`, [keyCount]);
      await db.query(`INSERT INTO apps (id, customer_id, name) SELECT 'bulk' || n, 'bulk' || n, 'default' FROM generate_series(1, $1) n`, [keyCount]);
      await db.query(
        `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
         SELECT 'bulk' || n, 'bulk' || n, 'petstore', 'pro', 'active', now(), now() FROM generate_series(1, $1) n`,
        [keyCount],
      );
      await db.query(
        `INSERT INTO api_keys (id, customer_id, app_id, subscription_id, hash, prefix, status)
         SELECT 'bulk' || n, 'bulk' || n, 'bulk' || n, 'bulk' || n, encode(sha256(convert_to('tg_bulk' || n, 'UTF8')), 'hex'), 'tg_bul', 'active'
         FROM generate_series(1, $1) n`,
        [keyCount],
      );
    } finally {
      await db.end();
    }
  });
  afterAll(async () => {
    await restarted?.stop();
    await removeRedisKeys(testRedisUrl, prefix);
    await app?.close();
  });

  it('is ready without loading any key, and serves the keys once the background rebuild has written them', async () => {
    // A restart: the first process goes (its leadership with it), a new one starts on the same database.
    await app.app.stop();
    const started = performance.now();
    restarted = await startApp(loadConfig({ ...app.env, TOLLGATE_DATA_DIR: `${app.dataDir}/restarted`, TOLLGATE_REDIS_PREFIX: prefix }), silentLogger, {
      timers: new ManualClock(0),
    });
    const startMs = performance.now() - started;
    expect(restarted.identities.size).toBe(0);
    expect(restarted.identities.ready).toBe(true);
    const { status } = await fetch(`http://127.0.0.1:${restarted.http.port}/readyz`);
    expect(status).toBe(200);
    const envoy = new FakeEnvoy(`127.0.0.1:${restarted.grpc.port}`);
    try {
      await expect.poll(async () => (await envoy.check({ method: 'GET', path: '/api/v1/pets', key: `tg_bulk${keyCount}` })).allowed, { timeout: 60_000, interval: 100 }).toBe(true);
    } finally {
      envoy.close();
    }
    expect(restarted.identities.size).toBe(1);
    console.info(`identity on demand: ready in ${Math.round(startMs)} ms with ${keyCount} keys in PostgreSQL`);
  });
});
