import { RollupUsageSource, SqlInvoiceRecords, SqlRatingWork, SqlSubscriptionHistories, SqlWalletRecords } from '../src/billing/index.js';
import { SqlAccountRecords } from '../src/identity/index.js';
import type { Db } from '../src/store/db.js';
import { invoiceRecordsContract } from './contracts/invoice-records.contract.js';
import { ratingWorkContract } from './contracts/rating-work.contract.js';
import { subscriptionHistoriesContract } from './contracts/subscription-histories.contract.js';
import { type UsageRollup, usageSourceContract } from './contracts/usage-source.contract.js';
import { walletRecordsContract } from './contracts/wallet-records.contract.js';
import { onBothDatabases } from './support/contract-databases.js';

/** Billing's SQL adapters on both databases they run on (one pair of databases for the five ports), emptied per test. */
const tables = [
  'customers',
  'subscriptions',
  'subscription_changes',
  'invoices',
  'invoice_lines',
  'wallets',
  'wallet_entries',
  'usage_rollups',
  'usage_captured_rollups',
  'rating_marks',
  'rating_due',
];

const addRollup = async (db: Db, rollup: UsageRollup) => {
  const key = [rollup.customerId, rollup.subscriptionId, new Date(rollup.periodStart), rollup.endpointId];
  await db.query(
    `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units, denied_calls, request_bytes, response_bytes)
     VALUES ($1, $2, $3, $4, $5, $6, $5, $6, 0, 0, 0)`,
    [...key, rollup.billableCalls, rollup.billableUnits],
  );
  for (const [name, amount] of Object.entries(rollup.captured ?? {})) {
    await db.query('INSERT INTO usage_captured_rollups (customer_id, subscription_id, period_start, endpoint_id, name, amount) VALUES ($1, $2, $3, $4, $5, $6)', [...key, name, amount]);
  }
};

onBothDatabases(tables, (name, emptied) => {
  const close = async () => {};
  invoiceRecordsContract(name, async () => {
    const db = await emptied();
    return { records: new SqlInvoiceRecords(db), accounts: new SqlAccountRecords(db), close };
  });
  subscriptionHistoriesContract(name, async () => {
    const db = await emptied();
    return { histories: new SqlSubscriptionHistories(db), accounts: new SqlAccountRecords(db), invoices: new SqlInvoiceRecords(db), close };
  });
  walletRecordsContract(name, async () => {
    const db = await emptied();
    return { records: new SqlWalletRecords(db), accounts: new SqlAccountRecords(db), invoices: new SqlInvoiceRecords(db), close };
  });
  ratingWorkContract(name, async () => {
    const db = await emptied();
    return { work: new SqlRatingWork(db), accounts: new SqlAccountRecords(db), close };
  });
  usageSourceContract(name, async () => {
    const db = await emptied();
    return { source: new RollupUsageSource(db), add: (rollup) => addRollup(db, rollup), close };
  });
});
