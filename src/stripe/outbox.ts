/**
 * Work for Stripe, each about one of our records (subject_id):
 * - `customer.sync`: create or update the Stripe customer (queued by a trigger on customers);
 * - `invoice.finalized`: push a finalized invoice with its lines and finalize it for collection (queued by billing);
 * - `usage.report`: send a subscription period's new usage to its Stripe meter (subject `<subscription>@<period>`);
 * - `topup.checkout`: open the Checkout session of a wallet top-up.
 */
export const stripeWorkKinds = ['customer.sync', 'invoice.finalized', 'usage.report', 'topup.checkout'] as const;
export type StripeWorkKind = (typeof stripeWorkKinds)[number];
export type OutboxStatus = 'pending' | 'done' | 'dead';

export interface OutboxItem {
  id: string;
  kind: StripeWorkKind;
  subjectId: string;
  status: OutboxStatus;
  revision: number;
  attempts: number;
  keyGeneration: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface OutboxFilter {
  status?: OutboxStatus | undefined;
  kind?: StripeWorkKind | undefined;
  limit: number;
  /** An item id: the page starts after it. */
  after?: string | undefined;
}

/**
 * The outbox of work for Stripe, one item per kind and subject. Scheduling uses the database's clock, which every
 * replica shares. Failures are domain errors. `test/contracts/stripe-outbox.contract.ts` is the contract.
 */
export interface StripeOutbox {
  /**
   * Queues work, so it runs once the caller's transaction commits (records that queue work join the transaction of
   * what it is about). Queueing work that exists re-arms it (done or dead work runs again).
   */
  enqueue(kind: StripeWorkKind, subjectId: string): Promise<void>;
  /** Pending work whose time has come, oldest first. */
  due(limit: number): Promise<OutboxItem[]>;
  /** Marks work done unless it was re-armed while it ran, in which case it stays pending and runs again. */
  complete(item: OutboxItem): Promise<void>;
  /** Counts a failed attempt and schedules the next one `delayMs` from now; `renewKeys` starts a new key generation. */
  reschedule(item: OutboxItem, delayMs: number, error: string, renewKeys: boolean): Promise<void>;
  /** Moves work to the dead letters, where it waits for an operator (`tollgate stripe retry`), unless it was re-armed. */
  bury(item: OutboxItem, error: string): Promise<void>;
  /** Ordered by id, after the cursor. */
  list(filter: OutboxFilter): Promise<OutboxItem[]>;
  get(id: string): Promise<OutboxItem | undefined>;
  find(kind: StripeWorkKind, subjectId: string): Promise<OutboxItem | undefined>;
  /** Re-arms dead work (one item, or all of them) to run now; returns the items re-armed. */
  retryDead(id?: string): Promise<OutboxItem[]>;
  /** Work not done yet; done work is kept as a record and not counted. */
  backlog(): Promise<{ pending: number; dead: number }>;
}
