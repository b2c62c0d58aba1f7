import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';

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
