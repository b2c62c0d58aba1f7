import { join } from 'node:path';
import type { Logger } from '../kernel/index.js';
import type { Db } from './db.js';
import { migrate } from './migrations.js';
import { PgliteDb } from './pglite.js';
import { PostgresDb } from './postgres.js';

export interface OpenedDatabase {
  db: Db;
  /** Resolves once migrations are applied; retried in the background while PostgreSQL is unreachable. */
  migrated: Promise<void>;
}

/**
 * PostgreSQL when a URL is given, else PGlite in the data directory. PostgreSQL being down at start does not stop
 * the service (the Check can run from the identity snapshot); migrations are retried until it is back.
 */
export async function openDatabase(
  options: { databaseUrl?: string | undefined; dataDir: string },
  logger: Logger,
  retryMs = 2_000,
): Promise<OpenedDatabase> {
  const db = options.databaseUrl
    ? new PostgresDb(options.databaseUrl, (error) => logger.warn({ err: error.message }, 'idle database connection lost'))
    : await PgliteDb.open(join(options.dataDir, 'pgdata'));
  const attempt = async (): Promise<void> => {
    const applied = await migrate(db);
    logger.info({ database: db.kind, migrationsApplied: applied }, 'database ready');
  };
  if (db.kind === 'pglite') {
    await attempt();
    return { db, migrated: Promise.resolve() };
  }
  try {
    await attempt();
    return { db, migrated: Promise.resolve() };
  } catch (error) {
    logger.error({ err: (error as Error).message }, 'database unreachable at start; retrying migrations in the background');
    const migrated = (async () => {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
        try {
          return await attempt();
        } catch {
          // still down; try again
        }
      }
    })();
    return { db, migrated };
  }
}
