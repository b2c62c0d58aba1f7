import { type Db, type Queryable, withDomainErrors } from '../store/index.js';
import type { OutboxFilter, OutboxItem, OutboxStatus, StripeOutbox, StripeWorkKind } from './outbox.js';

/**
 * Queues work in the transaction `tx` of the record it is about, so the work exists if and only if that record was
 * committed: for the SQL adapters whose writes queue work.
 */
export async function enqueueStripeWork(tx: Queryable, kind: StripeWorkKind, subjectId: string): Promise<void> {
  await tx.query('SELECT tollgate_stripe_enqueue($1, $2)', [kind, subjectId]);
}

/** The outbox table (stripe_outbox) in PostgreSQL or PGlite. */
export class SqlStripeOutbox implements StripeOutbox {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  enqueue(kind: StripeWorkKind, subjectId: string): Promise<void> {
    return enqueueStripeWork(this.db, kind, subjectId);
  }

  async due(limit: number): Promise<OutboxItem[]> {
    const rows = await this.db.query<OutboxRow>(
      `SELECT * FROM stripe_outbox WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()
       ORDER BY next_attempt_at, id LIMIT $1`,
      [limit],
    );
    return rows.map(toItem);
  }

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

  async bury(item: OutboxItem, error: string): Promise<void> {
    await this.db.query(
      `UPDATE stripe_outbox SET status = 'dead', attempts = attempts + 1, last_error = $2
       WHERE id = $1 AND revision = $3 AND status = 'pending'`,
      [item.id, error, item.revision],
    );
  }

  async list(options: OutboxFilter): Promise<OutboxItem[]> {
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

  async retryDead(id?: string): Promise<OutboxItem[]> {
    const rows = await this.db.query<OutboxRow>(
      `UPDATE stripe_outbox SET status = 'pending', attempts = 0, revision = revision + 1, next_attempt_at = clock_timestamp()
       WHERE status = 'dead' AND ($1::bigint IS NULL OR id = $1) RETURNING *`,
      [id ?? null],
    );
    return rows.map(toItem);
  }

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
