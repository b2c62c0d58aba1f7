import type { BillableSubscription } from '../billing/index.js';

/** A customer created in a window, and when it made its first allowed call (undefined: not yet). */
export interface NewCustomerRecord {
  id: string;
  createdAt: number;
  firstCallAt: number | undefined;
}

/**
 * What the business metrics read: the subscription histories (replayed to know who was on which plan when) and the
 * customers created in a window. Failures are domain errors. `test/contracts/business-records.contract.ts` is the
 * contract.
 */
export interface BusinessRecords {
  /** Every subscription started before `before`, with its plan history. */
  subscriptionsStartedBefore(before: number): Promise<BillableSubscription[]>;
  /** Customers created in [from, to). */
  customersCreated(from: number, to: number): Promise<NewCustomerRecord[]>;
}
