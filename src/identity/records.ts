import type { Queryable } from '../store/index.js';
import type { ApiKey, App, Customer, CustomerStatus, Subscription } from './types.js';

/** A customer as stored; `createdAt` is the clock's time (business metrics count activations by it). */
export interface NewCustomer {
  id: string;
  name: string;
  email: string | null;
  metadata: Record<string, string>;
  createdAt: Date;
}

/** Fields left undefined keep their value; `null` clears email and status reason. */
export interface CustomerChanges {
  name?: string | undefined;
  email?: string | null | undefined;
  status?: CustomerStatus | undefined;
  statusReason?: string | null | undefined;
  metadata?: Record<string, string> | undefined;
}

export interface NewSubscription {
  id: string;
  customerId: string;
  productId: string;
  planId: string;
  startedAt: Date;
  periodAnchor: Date;
}

export interface NewSubscriptionChange {
  subscriptionId: string;
  kind: 'plan_change' | 'cancellation';
  fromPlanId: string;
  toPlanId: string | null;
  effectiveAt: Date;
}

export interface NewKey {
  id: string;
  customerId: string;
  appId: string;
  subscriptionId: string;
  name: string | null;
  hash: string;
  prefix: string;
  status: ApiKey['status'];
}

/**
 * The identity records (customers, apps, subscriptions and their changes, keys) as the accounts rules use them. Reads
 * answer undefined for a missing record, and the rules decide what that means; failures are domain errors
 * (`TollgateError`), never database codes. `test/contracts/account-records.contract.ts` is the contract.
 */
export interface AccountRecords {
  /**
   * Runs `work` in one transaction: the records it is given read and write in it, and nested transactions join it.
   * `tx` is the same transaction for collaborators that write their own tables (billing's charges, a webhook's event).
   */
  transaction<T>(work: (records: AccountRecords, tx: Queryable) => Promise<T>): Promise<T>;

  /** undefined when the id is taken. */
  insertCustomer(customer: NewCustomer): Promise<Customer | undefined>;
  /** `forUpdate` holds the customer's row until the transaction ends (key limits count under it). */
  customer(id: string, options?: { forUpdate?: boolean }): Promise<Customer | undefined>;
  /** Ordered by id, after the cursor. */
  customers(page: { limit: number; after?: string | undefined }): Promise<Customer[]>;
  updateCustomer(id: string, changes: CustomerChanges): Promise<Customer | undefined>;

  /** `forUpdate` holds the subscription's row until the transaction ends. */
  subscription(id: string, options?: { customerId?: string; forUpdate?: boolean }): Promise<Subscription | undefined>;
  activeSubscription(customerId: string, productId: string): Promise<Subscription | undefined>;
  /** Oldest first. */
  subscriptions(customerId: string): Promise<Subscription[]>;
  /** Active subscriptions per plan, for the subscriptions gauge; plans without one are absent. */
  activeSubscriptionsByPlan(): Promise<{ planId: string; active: number }[]>;
  insertSubscription(subscription: NewSubscription): Promise<Subscription>;
  setPlan(subscriptionId: string, planId: string): Promise<Subscription | undefined>;
  /** Cancels the subscription if it is active; undefined otherwise (missing or already canceled). */
  cancelActiveSubscription(subscriptionId: string, canceledAt: Date): Promise<Subscription | undefined>;
  /** Returns the change's id. */
  insertSubscriptionChange(change: NewSubscriptionChange): Promise<string>;
  /** When the subscription's latest plan change or cancellation took effect; undefined if it has none. */
  lastSubscriptionChangeAt(subscriptionId: string): Promise<Date | undefined>;

  /** Keys of the subscription that are not revoked (active or pending). */
  countUnrevokedKeys(subscriptionId: string): Promise<number>;
  insertKey(key: NewKey): Promise<ApiKey>;
  key(id: string): Promise<ApiKey | undefined>;
  /** Oldest first. */
  keys(customerId: string): Promise<ApiKey[]>;
  /** Revokes the key (keeping the first revocation time); undefined when there is no such key. */
  revokeKey(id: string, revokedAt: Date): Promise<ApiKey | undefined>;
  /** Activates a pending key; undefined when the key is missing or not pending. */
  activatePendingKey(id: string): Promise<ApiKey | undefined>;

  /** The customer's app of that name, created (with `newId`) if it has none. */
  ensureApp(customerId: string, name: string, newId: string): Promise<App>;
  /** Ordered by name. */
  apps(customerId: string): Promise<App[]>;
}
