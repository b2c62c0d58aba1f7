import type { Queryable } from '../store/index.js';

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

/**
 * Queues work for the Stripe sync loop inside the caller's transaction, so the work exists if and only if the
 * record it is about was committed. Queueing work that exists re-arms it (done or dead work runs again).
 */
export async function enqueueStripeWork(tx: Queryable, kind: StripeWorkKind, subjectId: string): Promise<void> {
  await tx.query('SELECT tollgate_stripe_enqueue($1, $2)', [kind, subjectId]);
}

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

/** The outbox table's operations. Scheduling uses the database's clock, which every replica shares. */
export class StripeOutbox {
  constructor(private readonly db: Queryable) {}

  /** Pending work whose time has come, oldest first. */
  async due(limit: number): Promise<OutboxItem[]> {
    const rows = await this.db.query<OutboxRow>(
      `SELECT * FROM stripe_outbox WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()
       ORDER BY next_attempt_at, id LIMIT $1`,
      [limit],
    );
    return rows.map(toItem);
  }

  /** Marks work done unless it was re-armed while it ran, in which case it stays pending and runs again. */
  async complete(item: OutboxItem): Promise<void> {
    await this.db.query(
      `UPDATE stripe_outbox SET status = 'done', attempts = attempts + 1, last_error = NULL
       WHERE id = $1 AND revision = $2 AND status = 'pending'`,
      [item.id, item.revision],
    );
  }

  async reschedule(item: OutboxItem, delayMs: number, error: string, renewKeys: boolean): Promise<void> {
    await this.db.query(
      `UPDATE stripe_outbox SET attempts = attempts + 1, last_error = $2,
         next_attempt_at = clock_timestamp() + $3 * interval '1 millisecond',
         key_generation = key_generation + $4
       WHERE id = $1 AND status = 'pending'`,
      [item.id, error, delayMs, renewKeys ? 1 : 0],
    );
  }

  /** Moves work to the dead letters, where it waits for an operator (`tollgate stripe retry`). */
  async bury(item: OutboxItem, error: string): Promise<void> {
    await this.db.query(
      `UPDATE stripe_outbox SET status = 'dead', attempts = attempts + 1, last_error = $2
       WHERE id = $1 AND revision = $3 AND status = 'pending'`,
      [item.id, error, item.revision],
    );
  }

  async list(options: { status?: OutboxStatus | undefined; kind?: StripeWorkKind | undefined; limit: number; after?: string | undefined }): Promise<OutboxItem[]> {
    const rows = await this.db.query<OutboxRow>(
      `SELECT * FROM stripe_outbox WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) AND id > $3
       ORDER BY id LIMIT $4`,
      [options.status ?? null, options.kind ?? null, options.after ?? '0', options.limit],
    );
    return rows.map(toItem);
  }

  async get(id: string): Promise<OutboxItem | undefined> {
    const [row] = await this.db.query<OutboxRow>('SELECT * FROM stripe_outbox WHERE id = $1', [id]);
    return row && toItem(row);
  }

  async find(kind: StripeWorkKind, subjectId: string): Promise<OutboxItem | undefined> {
    const [row] = await this.db.query<OutboxRow>('SELECT * FROM stripe_outbox WHERE kind = $1 AND subject_id = $2', [kind, subjectId]);
    return row && toItem(row);
  }

  /** Re-arms dead work (one item, or all of them) to run now; returns the items re-armed. */
  async retryDead(id?: string): Promise<OutboxItem[]> {
    const rows = await this.db.query<OutboxRow>(
      `UPDATE stripe_outbox SET status = 'pending', attempts = 0, revision = revision + 1, next_attempt_at = clock_timestamp()
       WHERE status = 'dead' AND ($1::bigint IS NULL OR id = $1) RETURNING *`,
      [id ?? null],
    );
    return rows.map(toItem);
  }

  /** Work not done yet; done work is kept as a record and not counted. */
  async backlog(): Promise<{ pending: number; dead: number }> {
    const [row] = await this.db.query<{ pending: string; dead: string }>(
      `SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'dead') AS dead
       FROM stripe_outbox WHERE status <> 'done'`,
    );
    return { pending: Number(row!.pending), dead: Number(row!.dead) };
  }
}

interface OutboxRow {
  id: string;
  kind: StripeWorkKind;
  subject_id: string;
  status: OutboxStatus;
  revision: number;
  attempts: number;
  key_generation: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

const toItem = (row: OutboxRow): OutboxItem => ({
  id: String(row.id),
  kind: row.kind,
  subjectId: row.subject_id,
  status: row.status,
  revision: row.revision,
  attempts: row.attempts,
  keyGeneration: row.key_generation,
  nextAttemptAt: row.next_attempt_at.toISOString(),
  lastError: row.last_error,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});
