import { join } from 'node:path';
import type { Logger } from '../kernel/logger.js';
import type { Db } from './db.js';
import { migrate } from './migrations.js';
import { PgliteDb } from './pglite.js';
import { PostgresDb } from './postgres.js';

/** PostgreSQL when a URL is given, else PGlite in the data directory; migrated either way. */
export async function openDatabase(options: { databaseUrl?: string | undefined; dataDir: string }, logger: Logger): Promise<Db> {
  const db = options.databaseUrl
    ? new PostgresDb(options.databaseUrl, (error) => logger.warn({ err: error.message }, 'idle database connection lost'))
    : await PgliteDb.open(join(options.dataDir, 'pgdata'));
  const applied = await migrate(db);
  logger.info({ database: db.kind, migrationsApplied: applied }, 'database ready');
  return db;
}
