import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDb } from '../src/store/postgres.js';
import { createTestDatabase } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** A connection lost while a client is checked out must not become an unhandled error that ends the process. */
describe('PostgresDb when the connection is lost', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TcpProxy;
  const unhandled: unknown[] = [];
  const record = (error: unknown) => unhandled.push(error);

  beforeAll(async () => {
    database = await createTestDatabase();
    proxy = await TcpProxy.forUrl(database.url).start();
    process.on('uncaughtException', record);
  });
  afterAll(async () => {
    process.off('uncaughtException', record);
    await proxy.close();
    await database.drop();
  });

  it('survives losing the session that holds an advisory lock, and reports the lost session', async () => {
    const lost: Error[] = [];
    const db = new PostgresDb(proxy.rewrite(database.url), (error) => lost.push(error));
    let cut!: () => void;
    const cutDone = new Promise<void>((resolve) => (cut = resolve));
    const leading = db.withAdvisoryLock(42, async () => {
      await proxy.cut();
      // Until the socket close has reached the idle, checked-out lock client.
      await expect.poll(() => lost.length, { timeout: 60_000, interval: 10 }).toBeGreaterThan(0);
      cut();
      return 'led';
    });
    await cutDone;
    expect(await leading).toBe('led');
    expect(lost.length).toBeGreaterThan(0);
    expect(unhandled).toEqual([]);

    await proxy.restore();
    // The broken client was not pooled again: the next lock works on a fresh session.
    expect(await db.withAdvisoryLock(42, async (tx) => (await tx.query<{ one: number }>('SELECT 1 AS one'))[0]!.one)).toBe(1);
    await db.close();
  });
});
