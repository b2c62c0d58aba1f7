import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';

/**
 * Every Redis key prefix and PostgreSQL database a test creates carries the id of its `vitest run` (set by
 * test/global-setup.ts), so the run's end can name what this run left behind, whatever other runs on the same Redis
 * and PostgreSQL hold. Outside vitest (bench/) a random id stands in.
 */
export const testRunId = process.env.TOLLGATE_TEST_RUN_ID ?? randomBytes(4).toString('hex');

export const runRedisPrefix = (runId: string) => `tgtest_${runId}_`;
export const runDatabasePrefix = (runId: string) => `tollgate_test_${runId}_`;

const suffix = () => randomBytes(6).toString('hex');

/** A fresh Redis key prefix of this run; `tag` says which test made it (app, contract, faults, ...). */
export const testRedisPrefix = (tag: string) => `${runRedisPrefix(testRunId)}${tag}_${suffix()}`;

/** A fresh PostgreSQL database name of this run. */
export const testDatabaseName = () => `${runDatabasePrefix(testRunId)}${suffix()}`;

/** Keys matching a glob, by SCAN (never KEYS, which blocks a Redis others share). */
export async function scanKeys(redis: Pick<Redis, 'scan'>, match: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return [...new Set(keys)];
}

/** Unlinks every key matching a glob (found by scanKeys), 500 per command; returns the keys it removed. */
export async function unlinkKeys(redis: Pick<Redis, 'scan' | 'unlink'>, match: string): Promise<string[]> {
  const keys = await scanKeys(redis, match);
  for (let i = 0; i < keys.length; i += 500) await redis.unlink(...keys.slice(i, i + 500));
  return keys;
}

/**
 * Removes every key starting with `prefix` (a store writes `<prefix>:...`; a family of prefixes `<prefix>_1`, `_2`, ...
 * goes at once); returns how many there were.
 */
export async function removeRedisKeys(redisUrl: string, prefix: string): Promise<number> {
  if (!prefix.startsWith(runRedisPrefix(testRunId)) || /[*?[\]\\]/.test(prefix)) throw new Error(`not a test key prefix of this run: ${prefix}`);
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return (await unlinkKeys(redis, `${prefix}*`)).length;
  } finally {
    redis.disconnect();
  }
}

/** `use` with a connection of its own to `url`, closed afterwards whatever `use` does (admin statements, one-off reads). */
export async function withPgClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
