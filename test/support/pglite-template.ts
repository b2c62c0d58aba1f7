import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../../src/store/migrations.js';
import { PgliteDb } from '../../src/store/pglite.js';

/**
 * A fresh data directory's embedded database, copied from the migrated one test/global-setup.ts made for this run:
 * each app or `tollgate serve` a test starts opens a PGlite cluster instead of creating one (initdb and every
 * migration), which took most of an embedded start. What a test checks about a first start (the lock, the ports,
 * the files written next to it) is unchanged; migrating a fresh cluster is test/postgres-db.test.ts's and the
 * migration tests' own work.
 */
export function seedEmbeddedDatabase(dataDir: string): void {
  const template = process.env.TOLLGATE_TEST_PGDATA_TEMPLATE;
  if (template && existsSync(template)) cpSync(template, join(dataDir, 'pgdata'), { recursive: true });
}

/**
 * A PGlite of the caller's own on a copy of `template` (a data directory; without one, a new cluster), in a temporary
 * directory that close() removes: an in-memory PGlite spends seconds in initdb and migrations, a copy opens in about
 * one.
 */
export async function openPgliteCopy(template: string | undefined): Promise<PgliteDb> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-pglite-'));
  try {
    if (template && existsSync(template)) cpSync(template, join(dir, 'pgdata'), { recursive: true });
    const db = await PgliteDb.open(join(dir, 'pgdata'));
    const close = db.close.bind(db);
    db.close = async () => {
      try {
        await close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    return db;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A migrated PGlite of the caller's own, copied from the run's template; migrate() finds it current (or migrates it, without the template). */
export async function openMigratedPglite(): Promise<PgliteDb> {
  const db = await openPgliteCopy(process.env.TOLLGATE_TEST_PGDATA_TEMPLATE);
  try {
    await migrate(db);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}
