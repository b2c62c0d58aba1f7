import { type BillableSubscription, SqlSubscriptionHistories, type SubscriptionHistories } from '../billing/index.js';
import { type Db, withDomainErrors } from '../store/index.js';
import type { BusinessRecords, NewCustomerRecord } from './records.js';

/** The business metrics' reads in PostgreSQL or PGlite. */
export class SqlBusinessRecords implements BusinessRecords {
  private readonly db: Db;
  private readonly histories: SubscriptionHistories;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
    this.histories = new SqlSubscriptionHistories(db);
  }

  subscriptionsStartedBefore(before: number): Promise<BillableSubscription[]> {
    return this.histories.startedBefore(before);
  }

  async customersCreated(from: number, to: number): Promise<NewCustomerRecord[]> {
    const rows = await this.db.query<{ id: string; created_at: Date; first_call_at: Date | null }>(
      `SELECT c.id, c.created_at, f.first_call_at FROM customers c LEFT JOIN customer_first_calls f ON f.customer_id = c.id
       WHERE c.created_at >= $1 AND c.created_at < $2`,
      [new Date(from), new Date(to)],
    );
    return rows.map((row) => ({ id: row.id, createdAt: row.created_at.getTime(), firstCallAt: row.first_call_at?.getTime() }));
  }
}
