import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { int8Oid, numericOid, type Db, type Queryable } from './db.js';

const asText = (value: string) => value;

/** Embedded PostgreSQL (WASM) in a local directory; one connection, so calls are serialised by PGlite. */
export class PgliteDb implements Db {
  readonly kind = 'pglite' as const;

  private constructor(private readonly pglite: PGlite) {}

  /** `dataDir` undefined keeps the database in memory (tests). */
  static async open(dataDir?: string): Promise<PgliteDb> {
    if (dataDir) mkdirSync(dataDir, { recursive: true });
    const pglite = new PGlite({ ...(dataDir ? { dataDir } : {}), parsers: { [int8Oid]: asText, [numericOid]: asText } });
    await pglite.waitReady;
    return new PgliteDb(pglite);
  }

  async query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pglite.query<Row>(sql, params)).rows;
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.pglite.transaction((tx) =>
      fn({ query: async <Row>(sql: string, params: unknown[] = []) => (await tx.query<Row>(sql, params)).rows }),
    );
  }

  async withAdvisoryLock<T>(_lockId: number, fn: (tx: Queryable) => Promise<T>): Promise<T | undefined> {
    // A PGlite data directory belongs to one process, which is therefore always the leader.
    return fn(this);
  }

  async close(): Promise<void> {
    await this.pglite.close();
  }
}
