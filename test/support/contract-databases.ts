import { afterAll, beforeAll } from 'vitest';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { PgliteDb } from '../../src/store/pglite.js';
import { PostgresDb } from '../../src/store/postgres.js';
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

/**
 * Deletes every row of `tables` and of the tables whose foreign keys lead to them, with triggers and foreign-key checks
 * off (session_replication_role = replica: both databases run as a superuser here), the end state of TRUNCATE ...
 * CASCADE. TRUNCATE swaps in new files for every table and took about 600 ms per test on PostgreSQL; deleting the
 * few rows a test wrote takes milliseconds.
 */
async function emptyTables(db: Db, tables: readonly string[]): Promise<void> {
  const edges = await db.query<{ referencing: string; referenced: string }>(
    `SELECT referencing.relname AS referencing, referenced.relname AS referenced
     FROM pg_constraint
     JOIN pg_class referencing ON referencing.oid = pg_constraint.conrelid
     JOIN pg_class referenced ON referenced.oid = pg_constraint.confrelid
     WHERE pg_constraint.contype = 'f'`,
  );
  const all = new Set(tables);
  for (let grew = true; grew; ) {
    grew = false;
    for (const { referencing, referenced } of edges) {
      if (all.has(referenced) && !all.has(referencing)) {
        all.add(referencing);
        grew = true;
      }
    }
  }
  await db.transaction(async (tx) => {
    await tx.query(`SET LOCAL session_replication_role = replica`);
    for (const table of all) await tx.query(`DELETE FROM ${table}`);
  });
}
