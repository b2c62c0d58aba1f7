import { afterAll, beforeAll } from 'vitest';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { PgliteDb } from '../../src/store/pglite.js';
import { PostgresDb } from '../../src/store/postgres.js';
import { createTestDatabase } from './services.js';

/**
 * The two databases a SQL adapter runs on, for one contract test file: a PostgreSQL database of the file's own
 * (dropped after) and an in-memory PGlite, each migrated once. `each` is called once per database with a function
 * that empties `tables` (CASCADE) and hands the database over, for a fresh store per test.
 */
export function onBothDatabases(tables: readonly string[], each: (name: string, emptied: () => Promise<Db>) => void): void {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let postgres: PostgresDb;
  let pglite: PgliteDb;
  beforeAll(async () => {
    database = await createTestDatabase();
    postgres = new PostgresDb(database.url);
    pglite = await PgliteDb.open();
    await Promise.all([migrate(postgres), migrate(pglite)]);
  });
  afterAll(async () => {
    await Promise.all([postgres?.close(), pglite?.close()]);
    await database?.drop();
  });
  const emptied = async (db: Db) => {
    await db.query(`TRUNCATE ${tables.join(', ')} CASCADE`);
    return db;
  };
  each('SQL on PostgreSQL', () => emptied(postgres));
  each('SQL on PGlite', () => emptied(pglite));
}
