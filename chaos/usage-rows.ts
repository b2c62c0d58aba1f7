import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresServer } from './processes.js';

export interface UsageRows {
  /** usage_events rows: one per request id. */
  events: number;
  /** Of those, the ones with a subscription (what the rollups count). */
  attributed: number;
  /** The calls the rollups hold (calls + denied_calls): more than `attributed` would be usage counted twice. */
  rolledUp: number;
}

export async function usageRows(postgres: PostgresServer, databaseUrl: string): Promise<UsageRows> {
  const [events] = await postgres.query<{ events: string; attributed: string }>(
    'SELECT count(*) AS events, count(subscription_id) AS attributed FROM usage_events',
    databaseUrl,
  );
  const [rollups] = await postgres.query<{ calls: string }>('SELECT coalesce(sum(calls + denied_calls), 0) AS calls FROM usage_rollups', databaseUrl);
  return { events: Number(events!.events), attributed: Number(events!.attributed), rolledUp: Number(rollups!.calls) };
}

/** Waits until usage_events holds `expected` rows, or stops growing for `quietMs`; the rows then. */
export async function settledUsageRows(postgres: PostgresServer, databaseUrl: string, expected: number, quietMs = 10_000, timeoutMs = 120_000): Promise<UsageRows> {
  const deadline = Date.now() + timeoutMs;
  let last = await usageRows(postgres, databaseUrl).catch(() => undefined);
  let changedAt = Date.now();
  while (Date.now() < deadline) {
    if (last && last.events >= expected && last.rolledUp >= last.attributed) return last;
    if (Date.now() - changedAt > quietMs) break;
    await sleep(200);
    const now = await usageRows(postgres, databaseUrl).catch(() => undefined);
    if (now && (!last || now.events !== last.events || now.rolledUp !== last.rolledUp)) changedAt = Date.now();
    last = now ?? last;
  }
  if (!last) throw new Error('usage rows could not be read');
  return last;
}
