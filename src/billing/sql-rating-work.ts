import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { RatingWork } from './records.js';

/** The rating marks (rating_marks) and the time-based schedule (rating_due), in PostgreSQL or PGlite. */
export class SqlRatingWork implements RatingWork {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  within(tx: Queryable): RatingWork {
    return new SqlRatingWork(joinedTransaction(this.db, tx));
  }

  async pending(now: number): Promise<Map<string, number | undefined>> {
    const rows = await this.db.query<{ subscription_id: string; version: string | null }>(
      `SELECT subscription_id, version FROM rating_marks
       UNION ALL
       SELECT subscription_id, NULL FROM rating_due WHERE due_at <= $1`,
      [new Date(now)],
    );
    const pending = new Map<string, number | undefined>();
    for (const row of rows) {
      if (row.version !== null) pending.set(row.subscription_id, Number(row.version));
      else if (!pending.has(row.subscription_id)) pending.set(row.subscription_id, undefined);
    }
    return pending;
  }

  async rated(marks: ReadonlyMap<string, number>, due: readonly { subscriptionId: string; dueAt: number | undefined }[]): Promise<void> {
    if (marks.size > 0) {
      // SKIP LOCKED: a mark a writer holds is being bumped, so it stays anyway; waiting for it could deadlock.
      await this.db.query(
        `DELETE FROM rating_marks WHERE subscription_id IN (
           SELECT m.subscription_id FROM rating_marks m
           JOIN unnest($1::text[], $2::bigint[]) AS read (subscription_id, version)
             ON m.subscription_id = read.subscription_id AND m.version = read.version
           FOR UPDATE OF m SKIP LOCKED)`,
        [[...marks.keys()], [...marks.values()].map(String)],
      );
    }
    const dueAt = due.filter((item) => item.dueAt !== undefined);
    const never = due.filter((item) => item.dueAt === undefined).map((item) => item.subscriptionId);
    if (never.length > 0) await this.db.query('DELETE FROM rating_due WHERE subscription_id = ANY($1::text[])', [never]);
    if (dueAt.length === 0) return;
    await this.db.query(
      `INSERT INTO rating_due AS d (subscription_id, due_at)
       SELECT subscription_id, to_timestamp(due_ms / 1000.0) FROM unnest($1::text[], $2::bigint[]) AS t (subscription_id, due_ms)
       ORDER BY 1
       ON CONFLICT (subscription_id) DO UPDATE SET due_at = excluded.due_at WHERE d.due_at <> excluded.due_at`,
      [dueAt.map((item) => item.subscriptionId), dueAt.map((item) => String(item.dueAt))],
    );
  }
}
