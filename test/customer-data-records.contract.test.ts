import { SqlAccountRecords } from '../src/identity/index.js';
import { SqlCustomerDataRecords } from '../src/privacy/index.js';
import { customerDataRecordsContract } from './contracts/customer-data-records.contract.js';
import { onBothDatabases } from './support/contract-databases.js';

/** The privacy SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['customers', 'apps', 'subscriptions', 'subscription_changes', 'api_keys', 'usage_events'], (name, emptied) =>
  customerDataRecordsContract(name, async () => {
    const db = await emptied();
    return {
      records: new SqlCustomerDataRecords(db),
      accounts: new SqlAccountRecords(db),
      usageEvent: async (customerId, usageId) =>
        void (await db.query(
          `INSERT INTO usage_events (usage_id, request_id, occurred_at, customer_id, weight, request_bytes, response_bytes, billable)
           VALUES ($1, '', $2, $3, 1, 0, 0, true)`,
          [usageId, new Date('2026-11-10T00:00:00Z'), customerId],
        )),
      close: async () => {},
    };
  }),
);
