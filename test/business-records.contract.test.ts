import { SqlAccountRecords } from '../src/identity/index.js';
import { SqlBusinessRecords } from '../src/reports/index.js';
import { businessRecordsContract } from './contracts/business-records.contract.js';
import { onBothDatabases } from './support/contract-databases.js';

/** The business metrics' SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['customers', 'subscriptions', 'subscription_changes', 'customer_first_calls'], (name, emptied) =>
  businessRecordsContract(name, async () => {
    const db = await emptied();
    return {
      records: new SqlBusinessRecords(db),
      accounts: new SqlAccountRecords(db),
      firstCall: async (customerId, at) => void (await db.query('INSERT INTO customer_first_calls (customer_id, first_call_at) VALUES ($1, $2)', [customerId, new Date(at)])),
      close: async () => {},
    };
  }),
);
