import { notFound } from '../kernel/index.js';
import type { CustomerDataRecords } from './records.js';

export interface CustomerExport {
  customerId: string;
  exportedAt: string;
  /** Columns left out, by table. */
  omitted: Record<string, readonly string[]>;
  /** Every row about the customer, as stored, by table. */
  tables: Record<string, Record<string, unknown>[]>;
}

/** Everything held about a customer, read in one snapshot so the tables agree with each other. */
export async function exportCustomer(records: CustomerDataRecords, customerId: string, now: number): Promise<CustomerExport> {
  const snapshot = await records.snapshot(customerId);
  if (!snapshot) throw notFound('customer', customerId);
  return { customerId, exportedAt: new Date(now).toISOString(), omitted: snapshot.omitted, tables: snapshot.tables };
}
