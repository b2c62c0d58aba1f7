import { afterAll, beforeAll } from 'vitest';
import { SqlAccountRecords } from '../src/identity/index.js';
import type { Db } from '../src/store/db.js';
import { migrate } from '../src/store/migrations.js';
import { PgliteDb } from '../src/store/pglite.js';
import { PostgresDb } from '../src/store/postgres.js';
import { accountRecordsContract } from './contracts/account-records.contract.js';
import { createTestDatabase } from './support/services.js';

/**
 * The SQL adapter on both databases it runs on: a PostgreSQL database of this file's own (dropped after) and an
 * in-memory PGlite, each migrated once and emptied before every test.
 */

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
  await db.query('TRUNCATE customers, apps, subscriptions, subscription_changes, api_keys CASCADE');
  return { records: new SqlAccountRecords(db), close: async () => {} };
};

accountRecordsContract('SQL on PostgreSQL', () => emptied(postgres));
accountRecordsContract('SQL on PGlite', () => emptied(pglite));
