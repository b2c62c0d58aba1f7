import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityCache } from '../src/identity/identity-cache.js';
import { silentLogger } from '../src/kernel/logger.js';
import type { Db } from '../src/store/db.js';
import { PgliteDb } from '../src/store/pglite.js';
import { openMigratedPglite } from './support/pglite-template.js';

/** The Check's identity cache polls only what changed, and keeps what did not change as the same objects. */

describe('the identity cache', () => {
  let db: PgliteDb;
  const rowsRead: number[] = [];
  // Counts the rows each poll's queries return.
  const counting: Db = {
    kind: 'pglite',
    query: async <Row>(sql: string, params?: unknown[]) => {
      const rows = await db.query<Row>(sql, params);
      if (sql.includes('WHERE updated_at >')) rowsRead.push(rows.length);
      return rows;
    },
    transaction: (fn) => db.transaction(fn),
    withAdvisoryLock: (id, fn) => db.withAdvisoryLock(id, fn),
    close: () => db.close(),
  } as Db;

  const insertKey = async (n: number, updatedAt: string) => {
    await db.query(`INSERT INTO customers (id, name, updated_at) VALUES ($1, $1, $2)`, [`c${n}`, updatedAt]);
    await db.query(`INSERT INTO apps (id, customer_id, name, updated_at) VALUES ($1, $1, 'default', $2)`, [`c${n}`, updatedAt]);
    await db.query(
      `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor, updated_at)
       VALUES ($1, $1, 'petstore', 'free', 'active', $2, $2, $2)`,
      [`c${n}`, updatedAt],
    );
    await db.query(`INSERT INTO api_keys (id, customer_id, app_id, subscription_id, hash, prefix, status, updated_at) VALUES ($1, $1, $1, $1, $2, 'tg', 'active', $3)`, [
      `c${n}`,
      `hash-${n}`,
      updatedAt,
    ]);
  };

  beforeAll(async () => {
    db = await openMigratedPglite();
  });
  afterAll(() => db.close());

  it('does not read an old bulk import again on every poll, and keeps unchanged identities as they were', async () => {
    for (let n = 0; n < 50; n++) await insertKey(n, '2026-01-01T00:00:00Z');
    const cache = new IdentityCache(counting, silentLogger);
    await cache.start();
    expect(cache.size).toBe(50);
    const before = cache.lookup('hash-7')!;

    rowsRead.length = 0;
    await cache.refresh();
    await cache.refresh();
    expect(rowsRead).toEqual([0, 0, 0, 0, 0, 0]);

    // A key written just now is read again by the polls inside the commit-skew window: it stays the same object.
    await insertKey(50, new Date().toISOString());
    await cache.refresh();
    const fresh = cache.lookup('hash-50')!;
    await cache.refresh();
    expect(rowsRead.slice(-3).reduce((sum, rows) => sum + rows, 0)).toBeGreaterThan(0);
    expect(cache.lookup('hash-50')!.key).toBe(fresh.key);
    expect(cache.lookup('hash-50')!.subscription).toBe(fresh.subscription);
    expect(cache.lookup('hash-7')!.key).toBe(before.key);

    await db.query(`UPDATE api_keys SET status = 'revoked' WHERE id = 'c7'`);
    await cache.refresh();
    expect(cache.lookup('hash-7')!.key).toMatchObject({ status: 'revoked' });

    // A full reload (its own job, every minute) reads every row again, once.
    rowsRead.length = 0;
    cache.requestFullReload();
    await cache.refresh();
    expect(rowsRead.slice(0, 3)).toEqual([51, 51, 51]);
    await cache.refresh();
    expect(rowsRead.slice(3).reduce((sum, rows) => sum + rows, 0)).toBeLessThan(51);
  });
});
