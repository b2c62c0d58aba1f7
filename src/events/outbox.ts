/** The event outbox table (migration 13): events queued by writers, read and marked by the publisher loop. */
import type { Queryable } from '../store/index.js';
import type { EventType, OutboxEvent, QueuedEvent } from './core/cloud-event.js';

/** The insert writers run, followed by a SELECT of (type, customer_id, occurred_at, data) in publication order. */
export const outboxInsertSql = 'INSERT INTO event_outbox (type, customer_id, occurred_at, data)';

/**
 * Queues events in a writer's transaction: they exist if and only if what they report was committed. The
 * writers get this through `EventOutbox` (see index.ts), which does nothing while publishing is off.
 */
export async function queueEvents(tx: Queryable, events: readonly OutboxEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.query(
    `${outboxInsertSql}
     SELECT e.item->>'type', e.item->>'customer_id', (e.item->>'occurred_at')::timestamptz, e.item->'data'
     FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e (item, position)
     ORDER BY e.position`,
    [
      JSON.stringify(
        events.map((event) => ({
          type: event.type,
          customer_id: event.customerId,
          occurred_at: new Date(event.occurredAt).toISOString(),
          data: event.data,
        })),
      ),
    ],
  );
}

export interface OutboxBacklog {
  pending: number;
  /** Age of the oldest unpublished event, by the database's clock; 0 when none waits. */
  lagSeconds: number;
}

/** The publisher's side of the table. */
export class OutboxTable {
  constructor(private readonly db: Queryable) {}

  /** The oldest unpublished events, in publication order. */
  async unpublished(limit: number): Promise<QueuedEvent[]> {
    const rows = await this.db.query<{ id: string; event_id: string; type: EventType; customer_id: string | null; occurred_at: Date; data: Record<string, unknown> }>(
      `SELECT id, event_id, type, customer_id, occurred_at, data FROM event_outbox
       WHERE published_at IS NULL ORDER BY id LIMIT $1`,
      [limit],
    );
    return rows.map((row) => ({
      position: String(row.id),
      id: row.event_id,
      type: row.type,
      customerId: row.customer_id,
      occurredAt: row.occurred_at.getTime(),
      data: row.data,
    }));
  }

  async markPublished(events: readonly QueuedEvent[], at: number): Promise<void> {
    if (events.length === 0) return;
    await this.db.query('UPDATE event_outbox SET published_at = $2 WHERE id = ANY($1::bigint[]) AND published_at IS NULL', [
      events.map((event) => event.position),
      new Date(at),
    ]);
  }

  /** Moves an unpublished event the broker refused for good to `event_dead_letters`, with why. */
  async deadLetter(event: QueuedEvent, reason: string, at: number): Promise<void> {
    await this.db.query(
      `WITH moved AS (DELETE FROM event_outbox WHERE id = $1 AND published_at IS NULL RETURNING *)
       INSERT INTO event_dead_letters (id, event_id, type, customer_id, occurred_at, data, created_at, refused_at, reason)
       SELECT id, event_id, type, customer_id, occurred_at, data, created_at, $2, $3 FROM moved`,
      [event.position, new Date(at), reason],
    );
  }

  /** Deletes up to `limit` events published before `before`; returns how many. */
  async deletePublishedBefore(before: number, limit: number): Promise<number> {
    const [row] = await this.db.query<{ deleted: number }>(
      `WITH deleted AS (
         DELETE FROM event_outbox WHERE id IN (
           SELECT id FROM event_outbox WHERE published_at IS NOT NULL AND published_at < $1 ORDER BY published_at LIMIT $2)
         RETURNING 1)
       SELECT count(*)::int AS deleted FROM deleted`,
      [new Date(before), limit],
    );
    return row!.deleted;
  }

  async backlog(): Promise<OutboxBacklog> {
    const [row] = await this.db.query<{ pending: string; lag_seconds: number | null }>(
      `SELECT count(*) AS pending, extract(epoch FROM clock_timestamp() - min(created_at))::float8 AS lag_seconds
       FROM event_outbox WHERE published_at IS NULL`,
    );
    return { pending: Number(row!.pending), lagSeconds: Math.max(0, row!.lag_seconds ?? 0) };
  }
}
