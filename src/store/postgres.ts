import pg from 'pg';
import type { Db, Queryable } from './db.js';

export class PostgresDb implements Db {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    private readonly onError: (error: Error) => void = () => {},
  ) {
    // keepAlive: an idle connection holding a leader's advisory lock must not be dropped silently by the network.
    this.pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000, keepAlive: true });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', onError);
  }

  async query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query(sql, params)).rows as Row[];
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const held = await this.checkout();
    let failure: Error | undefined;
    try {
      await held.client.query('BEGIN');
      const result = await fn(clientQueryable(held.client));
      await held.client.query('COMMIT');
      return result;
    } catch (error) {
      await held.client.query('ROLLBACK').catch((rollbackError: Error) => {
        failure = rollbackError;
      });
      throw error;
    } finally {
      held.release(failure);
    }
  }

  async withAdvisoryLock<T>(lockId: number, fn: (tx: Queryable) => Promise<T>): Promise<T | undefined> {
    const held = await this.checkout();
    let failure: Error | undefined;
    try {
      const [row] = (await held.client.query('SELECT pg_try_advisory_lock($1) AS locked', [lockId])).rows;
      if (!row.locked) return undefined;
      try {
        return await fn(clientQueryable(held.client));
      } finally {
        await held.client.query('SELECT pg_advisory_unlock($1)', [lockId]).catch((error: Error) => {
          failure = error;
        });
      }
    } finally {
      held.release(failure);
    }
  }

  /**
   * A pooled client held across awaits. While checked out, pg reports a lost connection on the client rather than
   * the pool, so it gets its own listener (without one the process would crash); a client whose session is gone
   * (and with it any advisory lock) is destroyed on release, never handed back to the pool.
   */
  private async checkout(): Promise<{ client: pg.PoolClient; release(failure?: Error): void }> {
    const client = await this.pool.connect();
    let lost: Error | undefined;
    const onLost = (error: Error) => {
      lost = error;
      this.onError(error);
    };
    client.on('error', onLost);
    return {
      client,
      release: (failure) => {
        client.off('error', onLost);
        client.release(failure ?? lost);
      },
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

const clientQueryable = (client: pg.PoolClient): Queryable => ({
  query: async <Row>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as Row[],
});
