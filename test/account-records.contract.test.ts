import { SqlAccountRecords } from '../src/identity/index.js';
import { accountRecordsContract } from './contracts/account-records.contract.js';
import { onBothDatabases } from './support/contract-databases.js';

/** The SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['customers', 'apps', 'subscriptions', 'subscription_changes', 'api_keys'], (name, emptied) =>
  accountRecordsContract(name, async () => ({ records: new SqlAccountRecords(await emptied()), close: async () => {} })),
);
