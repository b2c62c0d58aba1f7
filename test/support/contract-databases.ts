import { afterAll, beforeAll } from 'vitest';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { PgliteDb } from '../../src/store/pglite.js';
import { PostgresDb } from '../../src/store/postgres.js';
import { emptyTables } from './empty-tables.js';
import { openMigratedPglite } from './pglite-template.js';
import { createTestDatabase } from './services.js';

/**
 * The two databases a SQL adapter runs on, for one contract test file: a PostgreSQL database of the file's own
 * (dropped after) and a PGlite, both copied from the run's migrated templates (test/global-setup.ts; migrating, or an
 * in-memory PGlite's initdb, would spend seconds per file); migrate() then finds them current. `each` is called once
 * per database with a function that empties `tables` and the tables referring to them (as TRUNCATE ... CASCADE would)
 * and hands the database over, for a fresh store per test.
 */
export function onBothDatabases(tables: readonly string[], each: (name: string, emptied: () => Promise<Db>) => void): void {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let postgres: PostgresDb;
  let pglite: PgliteDb;
  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
    postgres = new PostgresDb(database.url);
    [pglite] = await Promise.all([openMigratedPglite(), migrate(postgres)]);
  });
  afterAll(async () => {
    await Promise.all([postgres?.close(), pglite?.close()]);
    await database?.drop();
  });
  const emptied = async (db: Db) => {
    await emptyTables(db, tables);
    return db;
  };
  each('SQL on PostgreSQL', () => emptied(postgres));
  each('SQL on PGlite', () => emptied(pglite));
}
