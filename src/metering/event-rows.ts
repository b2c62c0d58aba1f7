import { eventTypes, outboxInsertSql } from '../events/index.js';
import type { UsageEvent } from './event.js';

/**
 * How a usage event is stored. The spool keeps each event as one row of PostgreSQL's COPY text format, in the
 * column order below, so a flush streams spool bytes straight into COPY with no re-encoding. Rows land in a
 * session-local staging table first, then one statement inserts the new ones and rolls them up.
 */

type Scalar = string | number | boolean | null;

const stagingColumns: readonly { name: string; type: string; value: (event: UsageEvent) => Scalar }[] = [
  { name: 'usage_id', type: 'text', value: (e) => e.usageId },
  { name: 'request_id', type: 'text', value: (e) => e.requestId },
  { name: 'occurred_at', type: 'bigint', value: (e) => e.occurredAt },
  { name: 'period_start', type: 'bigint', value: (e) => e.periodStart },
  { name: 'customer_id', type: 'text', value: (e) => e.customerId },
  { name: 'subscription_id', type: 'text', value: (e) => e.subscriptionId },
  { name: 'plan_id', type: 'text', value: (e) => e.planId },
  { name: 'product_id', type: 'text', value: (e) => e.productId },
  { name: 'endpoint_id', type: 'text', value: (e) => e.endpointId },
  { name: 'key_id', type: 'text', value: (e) => e.keyId },
  { name: 'method', type: 'text', value: (e) => e.method },
  { name: 'status', type: 'smallint', value: (e) => e.status },
  { name: 'weight', type: 'bigint', value: (e) => e.weight },
  { name: 'request_bytes', type: 'bigint', value: (e) => e.requestBytes },
  { name: 'response_bytes', type: 'bigint', value: (e) => e.responseBytes },
  { name: 'duration_us', type: 'bigint', value: (e) => e.durationUs },
  { name: 'decision', type: 'text', value: (e) => e.decision },
  { name: 'reason', type: 'text', value: (e) => e.reason },
  { name: 'billable', type: 'boolean', value: (e) => e.billable },
  { name: 'captured', type: 'text', value: (e) => (e.captured ? JSON.stringify(e.captured) : null) },
];

export const stagingColumnNames = stagingColumns.map((column) => column.name);

/** ON COMMIT DELETE ROWS: each flush transaction starts with an empty staging table. */
export const createStagingTableSql = `CREATE TEMP TABLE IF NOT EXISTS usage_staging (
  ${stagingColumns.map((column) => `${column.name} ${column.type}`).join(',\n  ')}) ON COMMIT DELETE ROWS`;

const eventColumns = stagingColumnNames.join(', ');
// Epoch ms to timestamptz through float8: dividing by a numeric literal costs several times more per row.
const stagedValues = stagingColumnNames
  .map((name) =>
    name === 'occurred_at' || name === 'period_start' ? `to_timestamp(${name} / 1000::float8)` : name === 'captured' ? 'captured::jsonb' : name,
  )
  .join(', ');
/**
 * The captured facts summed per rollup (usage_captured_rollups): integer and decimal values of billable calls that are
 * non-negative (as rating prices them), exactly, as numeric. Strings that are not such a number are only kept on the event.
 */
const capturedNumber = '^[0-9]{1,30}([.][0-9]{1,30})?$';
const measures = ['calls', 'units', 'billable_calls', 'billable_units', 'denied_calls', 'request_bytes', 'response_bytes'];

/**
 * Inserts the staged events and adds exactly those to the rollups, in one statement (so one transaction): a replayed
 * or duplicated event changes neither. Returns the number inserted.
 * skippingDuplicates skips events whose usage id is already stored or repeated in the batch. failingOnDuplicate
 * instead fails with unique_violation on the first such event, and costs PostgreSQL about a third less per event (a
 * plain insert instead of a speculative one): the writer tries it first and falls back (see PostgresUsageSink).
 * The numeric captured facts of the new billable events are summed per rollup key and name (usage_captured_rollups).
 * Rollup measures count allowed calls (what the quota counted); denied_calls counts the rest. Each customer's first
 * allowed call is kept too (customer_first_calls), for activation metrics.
 * The new events are read once more after the insert, grouped by rollup key and UTC day (by_day: a few hundred groups
 * for a batch of 50,000); every rollup, the first calls and the count are sums over those groups: the period rollups
 * (grouped) over the days, the daily rollups (usage_daily_rollups, for charts over time) over the subscriptions and
 * periods. The captured facts are read from the events only when a group has some.
 * Subscriptions with new billable usage are marked for rating (rating_marks).
 * Failing on a duplicate, every staged event is new once the statement succeeds: the groups are then made from the
 * staging table (epoch ms, captured facts as text) instead of from rows the insert returns and keeps.
 */
function insertStagedEvents(skipDuplicates: boolean, queueEvents: boolean): string {
  const source = skipDuplicates ? 'inserted' : 'usage_staging';
  const instant = (value: string) => (skipDuplicates ? value : `to_timestamp(${value} / 1000::float8)`);
  // Queued events are built from the stored rows; otherwise only the skipping insert returns rows (the groups' source).
  const returning = queueEvents
    ? 'RETURNING *'
    : skipDuplicates
      ? 'RETURNING occurred_at, customer_id, subscription_id, period_start, endpoint_id, decision, billable, weight, request_bytes, response_bytes, captured'
      : '';
  const sums = (columns: readonly string[]) => columns.map((column) => `sum(${column}) AS ${column}`).join(', ');
  return `WITH inserted AS (
  INSERT INTO usage_events (${eventColumns})
  SELECT ${stagedValues} FROM usage_staging
  ${skipDuplicates ? 'ON CONFLICT (usage_id) DO NOTHING' : ''}
  ${returning}
),${queueEvents ? queuedEvents : ''} by_day AS (
  SELECT customer_id, subscription_id, period_start, coalesce(endpoint_id, '') AS endpoint_id,
    ${skipDuplicates ? "(occurred_at AT TIME ZONE 'UTC')::date" : "date '1970-01-01' + (occurred_at / 86400000)::int"} AS day,
    count(*) AS events,
    count(*) FILTER (WHERE decision = 'allow') AS calls,
    coalesce(sum(weight) FILTER (WHERE decision = 'allow'), 0) AS units,
    count(*) FILTER (WHERE billable) AS billable_calls,
    coalesce(sum(weight) FILTER (WHERE billable), 0) AS billable_units,
    count(*) FILTER (WHERE decision = 'deny') AS denied_calls,
    coalesce(sum(request_bytes) FILTER (WHERE decision = 'allow'), 0) AS request_bytes,
    coalesce(sum(response_bytes) FILTER (WHERE decision = 'allow'), 0) AS response_bytes,
    min(occurred_at) FILTER (WHERE decision = 'allow') AS first_call_at,
    bool_or(captured IS NOT NULL AND billable) AS captures
  FROM ${source}
  GROUP BY 1, 2, 3, 4, 5
), grouped AS (
  SELECT customer_id, subscription_id, period_start, endpoint_id, ${sums(['events', ...measures])},
    min(first_call_at) AS first_call_at
  FROM by_day
  GROUP BY 1, 2, 3, 4
), rolled_up AS (
  INSERT INTO usage_rollups AS r (customer_id, subscription_id, period_start, endpoint_id, ${measures.join(', ')})
  SELECT customer_id, subscription_id, ${instant('period_start')}, endpoint_id, ${measures.join(', ')}
  FROM grouped
  WHERE customer_id IS NOT NULL AND subscription_id IS NOT NULL AND period_start IS NOT NULL
    -- Unverified entries (no decision) are kept with the identity they claim, but add to no one's usage.
    AND (calls > 0 OR denied_calls > 0)
  -- One lock order for every writer, so replicas flushing at once cannot deadlock on rollup rows.
  ORDER BY 1, 2, 3, 4
  ON CONFLICT (customer_id, subscription_id, period_start, endpoint_id) DO UPDATE SET
    ${measures.map((measure) => `${measure} = r.${measure} + excluded.${measure}`).join(', ')}
), marked_for_rating AS (
  -- The rating pass rates only marked subscriptions: one mark per subscription with new billable usage, not per event.
  INSERT INTO rating_marks AS m (subscription_id)
  SELECT DISTINCT subscription_id FROM grouped
  WHERE billable_calls > 0 AND customer_id IS NOT NULL AND subscription_id IS NOT NULL AND period_start IS NOT NULL
  ORDER BY 1
  ON CONFLICT (subscription_id) DO UPDATE SET version = m.version + 1
), captured_rolled_up AS (
  INSERT INTO usage_captured_rollups AS c (customer_id, subscription_id, period_start, endpoint_id, name, amount)
  SELECT customer_id, subscription_id, ${instant('period_start')}, coalesce(endpoint_id, ''), fact.key, sum((fact.value #>> '{}')::numeric)
  FROM ${source}, jsonb_each(${skipDuplicates ? 'captured' : 'captured::jsonb'}) fact
  -- Most batches capture nothing: this condition, on no column, is tested once, before the events are read again.
  WHERE (SELECT bool_or(captures) FROM by_day)
    AND captured IS NOT NULL AND billable AND customer_id IS NOT NULL AND subscription_id IS NOT NULL AND period_start IS NOT NULL
    AND (fact.value #>> '{}') ~ '${capturedNumber}'
  GROUP BY 1, 2, 3, 4, 5
  ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (customer_id, subscription_id, period_start, endpoint_id, name) DO UPDATE SET amount = c.amount + excluded.amount
), daily_rolled_up AS (
  INSERT INTO usage_daily_rollups AS d (customer_id, day, endpoint_id, calls, units, denied_calls)
  SELECT customer_id, day, endpoint_id, ${sums(['calls', 'units', 'denied_calls'])}
  FROM by_day
  WHERE customer_id IS NOT NULL AND subscription_id IS NOT NULL AND period_start IS NOT NULL
  GROUP BY 1, 2, 3
  -- Days of allowed or denied calls only, as in usage_rollups.
  HAVING sum(calls) > 0 OR sum(denied_calls) > 0
  ORDER BY 1, 2, 3
  ON CONFLICT (customer_id, day, endpoint_id) DO UPDATE SET
    calls = d.calls + excluded.calls, units = d.units + excluded.units, denied_calls = d.denied_calls + excluded.denied_calls
), first_calls AS (
  INSERT INTO customer_first_calls AS f (customer_id, first_call_at)
  SELECT batch.customer_id, batch.first_call_at
  FROM (SELECT customer_id, ${instant('min(first_call_at)')} AS first_call_at FROM grouped
        WHERE customer_id IS NOT NULL AND first_call_at IS NOT NULL GROUP BY 1) batch
  -- Most batches only hold customers already seen: skip them without taking their row locks.
  WHERE NOT EXISTS (SELECT 1 FROM customer_first_calls seen
                    WHERE seen.customer_id = batch.customer_id AND seen.first_call_at <= batch.first_call_at)
  ORDER BY 1
  ON CONFLICT (customer_id) DO UPDATE SET first_call_at = excluded.first_call_at WHERE excluded.first_call_at < f.first_call_at
)
SELECT coalesce(sum(events), 0)::int AS inserted FROM grouped`;
}

/** RFC 3339 in UTC with milliseconds, as JavaScript's toISOString() writes it. */
const isoTime = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * With events on (src/events), each new event is also queued in the event outbox, by the same statement: an event is
 * published if and only if it was stored, once. Its data, snake case like the alert webhooks: docs/EVENTS.md.
 */
const queuedEvents = `
queued_events AS (
  ${outboxInsertSql}
  SELECT '${eventTypes.usageRecorded}', customer_id, occurred_at, jsonb_build_object(
    'usage_id', usage_id, 'request_id', request_id, 'occurred_at', ${isoTime('occurred_at')},
    'period_start', ${isoTime('period_start')}, 'customer_id', customer_id, 'subscription_id', subscription_id,
    'plan_id', plan_id, 'product_id', product_id, 'endpoint_id', endpoint_id, 'key_id', key_id, 'method', method,
    'status', status, 'weight', weight, 'request_bytes', request_bytes, 'response_bytes', response_bytes,
    'duration_us', duration_us, 'decision', decision, 'reason', reason, 'billable', billable, 'captured', captured)
  FROM inserted
),`;

export interface InsertStatements {
  skippingDuplicates: string;
  failingOnDuplicate: string;
}

const insertStatements = (queueEvents: boolean): InsertStatements => ({
  skippingDuplicates: insertStagedEvents(true, queueEvents),
  failingOnDuplicate: insertStagedEvents(false, queueEvents),
});
const withoutEvents = insertStatements(false);
const withEvents = insertStatements(true);

/** The insert statements; with `queueEvents`, they also queue each new event in the event outbox. */
export const insertStagedEventsSql = (queueEvents: boolean): InsertStatements => (queueEvents ? withEvents : withoutEvents);

/** One event as a COPY text row, newline included. */
export function encodeEventRow(event: UsageEvent): string {
  let row = '';
  for (let i = 0; i < stagingColumns.length; i++) row += (i === 0 ? '' : '\t') + copyField(stagingColumns[i]!.value(event));
  return `${row}\n`;
}

/** The fields of one COPY text row (without its newline); null for \N. */
export function decodeCopyRow(row: string): (string | null)[] {
  return row.split('\t').map((field) => (field === '\\N' ? null : field.replace(/\\(.)/g, (_, char: string) => unescapes[char] ?? char)));
}

/** Tabs in a row of the current layout, and in one spooled before version 8 (no usage id: its request id was the key). */
const currentTabs = stagingColumns.length - 1;
const legacyTabs = currentTabs - 1;

/**
 * A row of the current column layout, as read back from a spool file: the row itself, an older row brought up to date,
 * or undefined for a torn or foreign line.
 */
export function currentEventRow(row: string): string | undefined {
  if (row.includes('\0')) return undefined;
  let tabs = 0;
  for (let i = row.indexOf('\t'); i !== -1; i = row.indexOf('\t', i + 1)) tabs++;
  if (tabs === currentTabs) return row;
  // Spooled before usage ids: its request id stays its key, as migration 8 made it for the rows already stored.
  if (tabs === legacyTabs) return `${row.slice(0, row.indexOf('\t'))}\t${row}`;
  return undefined;
}

const needsEscape = /[\\\t\n\r\0]/;
const escapes: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '' };
const unescapes: Record<string, string> = { t: '\t', n: '\n', r: '\r' };

function copyField(value: Scalar): string {
  if (value === null) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'number') return String(value);
  // PostgreSQL text cannot hold NUL: it is dropped rather than failing the whole batch.
  return needsEscape.test(value) ? value.replace(/[\\\t\n\r\0]/g, (char) => escapes[char]!) : value;
}
