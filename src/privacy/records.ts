import type { Queryable } from '../store/index.js';

/** Every row held about one customer, as stored, by table; secrets and credential verifiers are left out. */
export interface CustomerSnapshot {
  /** Columns left out, by table. */
  omitted: Record<string, readonly string[]>;
  tables: Record<string, Record<string, unknown>[]>;
}

/** Financial records an erasure keeps, anonymised by the erasure of the customer record they point to. */
export interface KeptRecords {
  invoices: number;
  usageRollups: number;
  walletEntries: number;
}

/**
 * Where a customer's personal data is held, as export and erasure need it. Failures are domain errors.
 * `test/contracts/customer-data-records.contract.ts` is the contract.
 */
export interface CustomerDataRecords {
  /** The same records in the caller's open transaction (the erasure runs in the accounts' one). */
  within(tx: Queryable): CustomerDataRecords;
  /** Everything about the customer, read in one snapshot so the tables agree; undefined when there is no such customer. */
  snapshot(customerId: string): Promise<CustomerSnapshot | undefined>;
  /** Holds the customer's row until the transaction ends; when it was erased (null: never), undefined when missing. */
  lockCustomer(customerId: string): Promise<{ erasedAt: Date | null } | undefined>;
  /**
   * Revokes the customer's keys (keeping the first revocation time) and replaces their hashes with a value no key
   * hashes to, so they never authenticate again; rows stay. Returns how many it destroyed (not those destroyed before).
   */
  destroyKeys(customerId: string, now: Date): Promise<number>;
  /**
   * Removes what identifies the person: name, email and metadata (and marks the customer erased at `erasedAt`, the
   * first time only), app names, top-up URLs (pending ones expire), alert webhooks, portal sessions and links, daily
   * usage; error texts about the customer are redacted.
   */
  anonymise(customerId: string, erasedAt: Date | undefined): Promise<void>;
  /** Deletes the customer's usage events; returns how many. */
  deleteUsageEvents(customerId: string): Promise<number>;
  keptRecords(customerId: string): Promise<KeptRecords>;
}
