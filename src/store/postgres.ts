import pg from 'pg';
import type { Db, Queryable } from './db.js';

export class PostgresDb implements Db {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(url: string, onError: (error: Error) => void = () => {}) {
    // keepAlive: an idle connection holding a leader's advisory lock must not be dropped silently by the network.
    this.pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000, keepAlive: true });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', onError);
  }

  async query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query(sql, params)).rows as Row[];
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(clientQueryable(client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async withAdvisoryLock<T>(lockId: number, fn: (tx: Queryable) => Promise<T>): Promise<T | undefined> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const [row] = (await client.query('SELECT pg_try_advisory_lock($1) AS locked', [lockId])).rows;
      if (!row.locked) return undefined;
      try {
        return await fn(clientQueryable(client));
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [lockId]).catch((error: Error) => {
          // The session (and with it the lock) is gone; never hand this client back to the pool.
          broken = error;
        });
      }
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

const clientQueryable = (client: pg.PoolClient): Queryable => ({
  query: async <Row>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as Row[],
});
