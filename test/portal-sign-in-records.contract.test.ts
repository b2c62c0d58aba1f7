import { onBothDatabases } from './support/contract-databases.js';
import { SqlPortalSignInRecords } from '../src/portal/index.js';
import type { Db } from '../src/store/db.js';
import { portalSignInRecordsContract, type SignInFixtures } from './contracts/portal-sign-in-records.contract.js';

const fixturesOf = (db: Db): SignInFixtures => ({
  customer: async (id, options = {}) => {
    await db.query('INSERT INTO customers (id, name, email, status) VALUES ($1, $1, $2, $3)', [id, options.email ?? null, options.erased ? 'erased' : 'active']);
  },
  erase: async (id) => {
    await db.query(`UPDATE customers SET status = 'erased' WHERE id = $1`, [id]);
  },
});

/** The SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['customers', 'portal_sessions', 'portal_links'], (name, emptied) =>
  portalSignInRecordsContract(name, async () => {
    const db = await emptied();
    return { records: new SqlPortalSignInRecords(db), fixtures: fixturesOf(db), close: async () => {} };
  }),
);
