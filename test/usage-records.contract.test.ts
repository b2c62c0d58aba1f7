import { SqlUsageRecords } from '../src/metering/index.js';
import type { Db } from '../src/store/db.js';
import { type StoredDay, type StoredRollup, usageRecordsContract } from './contracts/usage-records.contract.js';
import { onBothDatabases } from './support/contract-databases.js';

/** The usage reports' SQL adapter on both databases it runs on, emptied before every test. */
const addRollup = (db: Db, r: StoredRollup) =>
  db.query(
    `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units, denied_calls, request_bytes, response_bytes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [r.customerId, r.subscriptionId, new Date(r.periodStart), r.endpointId, r.calls, r.units, r.billableCalls, r.billableUnits, r.deniedCalls, r.requestBytes, r.responseBytes],
  );
const addDay = (db: Db, d: StoredDay) =>
  db.query('INSERT INTO usage_daily_rollups (customer_id, day, endpoint_id, calls, units, denied_calls) VALUES ($1, $2, $3, $4, $5, $6)', [
    d.customerId,
    d.day,
    d.endpointId,
    d.calls,
    d.units,
    d.deniedCalls,
  ]);

onBothDatabases(['usage_rollups', 'usage_daily_rollups'], (name, emptied) =>
  usageRecordsContract(name, async () => {
    const db = await emptied();
    return { records: new SqlUsageRecords(db), addRollup: async (r) => void (await addRollup(db, r)), addDay: async (d) => void (await addDay(db, d)), close: async () => {} };
  }),
);
