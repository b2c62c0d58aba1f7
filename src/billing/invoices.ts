/** Invoices in PostgreSQL: drafts refreshed while a period runs, finalized (and immutable, by trigger) once it ends. */
import { createHash } from 'node:crypto';
import { newId } from '../identity/index.js';
import { type CurrencyCode, notFound } from '../kernel/index.js';
import type { BillingPeriod } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import type { BillableSubscription } from './histories.js';
import type { InvoiceLine, PeriodInvoice, SubscriptionPeriodUsage } from './period-invoice.js';

export interface RatedPeriod {
  subscription: BillableSubscription;
  period: BillingPeriod;
  invoice: PeriodInvoice;
  usage: SubscriptionPeriodUsage;
  /** The period is over: finalize its invoice. */
  finalize: boolean;
}

export interface FinalizedInvoice {
  id: string;
  customerId: string;
  subscriptionId: string;
  periodStart: number;
  currency: CurrencyCode;
  mode: 'postpaid' | 'prepaid';
  total: bigint;
}

export interface StoredInvoice {
  id: string;
  customerId: string;
  subscriptionId: string;
  productId: string;
  planId: string;
  periodStart: number;
  periodEnd: number;
  currency: CurrencyCode;
  mode: 'postpaid' | 'prepaid';
  status: 'draft' | 'finalized';
  total: bigint;
  revenueShare: bigint;
  calls: bigint;
  units: bigint;
  ratedAt: number;
  finalizedAt: number | null;
}

export interface StoredInvoiceDetail extends StoredInvoice {
  /** Billed lines, then the revenue-share lines (kind revenue_share, not in the total). */
  lines: InvoiceLine[];
  usage: { endpointId: string; calls: bigint; units: bigint }[];
}

/**
 * Writes rated periods, a batch at a time: one statement per table. A draft whose content did not change is not
 * written (so refreshing is idempotent); a finalized invoice is never touched; ended periods are finalized after
 * their lines are written. Returns the invoices this call finalized.
 */
export async function saveRatedPeriods(tx: Queryable, rated: readonly RatedPeriod[], now: number): Promise<FinalizedInvoice[]> {
  if (rated.length === 0) return [];
  const records = rated.map((item) => ({ item, fingerprint: fingerprintOf(item) }));
  const written = await tx.query<{ id: string; subscription_id: string; period_start: Date }>(
    `INSERT INTO invoices AS i (id, customer_id, subscription_id, product_id, plan_id, period_start, period_end, currency, mode,
       status, total, revenue_share, calls, units, usage, fingerprint, rated_at)
     SELECT r.id, r.customer_id, r.subscription_id, r.product_id, r.plan_id, r.period_start, r.period_end, r.currency, r.mode,
       'draft', r.total, r.revenue_share, r.calls, r.units, r.usage, r.fingerprint, $2
     FROM jsonb_to_recordset($1::jsonb) AS r (id text, customer_id text, subscription_id text, product_id text, plan_id text,
       period_start timestamptz, period_end timestamptz, currency text, mode text, total bigint, revenue_share bigint,
       calls bigint, units bigint, usage jsonb, fingerprint text)
     ORDER BY r.subscription_id, r.period_start
     ON CONFLICT (subscription_id, period_start) DO UPDATE SET
       plan_id = excluded.plan_id, currency = excluded.currency, mode = excluded.mode, total = excluded.total,
       revenue_share = excluded.revenue_share, calls = excluded.calls, units = excluded.units, usage = excluded.usage,
       fingerprint = excluded.fingerprint, rated_at = excluded.rated_at
     WHERE i.status = 'draft' AND i.fingerprint <> excluded.fingerprint
     RETURNING i.id, i.subscription_id, i.period_start`,
    [
      JSON.stringify(
        records.map(({ item, fingerprint }) => ({
          id: newId('inv', 12),
          customer_id: item.subscription.customerId,
          subscription_id: item.subscription.id,
          product_id: item.subscription.productId,
          plan_id: item.invoice.planId,
          period_start: new Date(item.period.start).toISOString(),
          period_end: new Date(item.period.end).toISOString(),
          currency: item.invoice.currency,
          mode: item.invoice.mode,
          total: item.invoice.total.toString(),
          revenue_share: sumAmounts(item.invoice.revenueShare).toString(),
          calls: item.invoice.calls.toString(),
          units: item.invoice.units.toString(),
          usage: item.usage.endpoints.map((endpoint) => ({ endpointId: endpoint.endpointId, calls: endpoint.calls.toString(), units: endpoint.units.toString() })),
          fingerprint,
        })),
      ),
      new Date(now),
    ],
  );
  if (written.length > 0) {
    const byKey = new Map(records.map(({ item }) => [periodKey(item.subscription.id, item.period.start), item]));
    const ids = written.map((row) => row.id);
    await tx.query('DELETE FROM invoice_lines WHERE invoice_id = ANY($1::text[])', [ids]);
    const lines = written.flatMap((row) => {
      const { invoice } = byKey.get(periodKey(row.subscription_id, row.period_start.getTime()))!;
      return [...invoice.lines, ...invoice.revenueShare].map((line, position) => lineRecord(row.id, position, line));
    });
    await tx.query(
      `INSERT INTO invoice_lines (invoice_id, position, plan_id, kind, description, quantity, unit_price, amount, billed, endpoint_id, partner, details)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS l (invoice_id text, position integer, plan_id text, kind text, description text,
         quantity numeric, unit_price numeric, amount bigint, billed text, endpoint_id text, partner text, details jsonb)`,
      [JSON.stringify(lines)],
    );
  }
  const ending = new Set(rated.filter((item) => item.finalize).map((item) => periodKey(item.subscription.id, item.period.start)));
  if (ending.size === 0) return [];
  // By id: the index on (subscription_id, period_start) serves this lookup, not a join with an array of pairs.
  const candidates = await tx.query<{ id: string; subscription_id: string; period_start: Date }>(
    'SELECT id, subscription_id, period_start FROM invoices WHERE subscription_id = ANY($1::text[])',
    [[...new Set(rated.map((item) => item.subscription.id))]],
  );
  const finalized = await tx.query<InvoiceRow>(
    `UPDATE invoices SET status = 'finalized', finalized_at = $2 WHERE id = ANY($1::text[]) AND status = 'draft' RETURNING *`,
    [candidates.filter((row) => ending.has(periodKey(row.subscription_id, row.period_start.getTime()))).map((row) => row.id), new Date(now)],
  );
  return finalized.map(toStoredInvoice);
}

export async function listInvoices(db: Queryable, customerId: string, options: { limit: number; status?: 'draft' | 'finalized' | undefined }): Promise<StoredInvoice[]> {
  const rows = await db.query<InvoiceRow>(
    `SELECT * FROM invoices WHERE customer_id = $1 AND ($2::text IS NULL OR status = $2)
     ORDER BY period_start DESC, id LIMIT $3`,
    [customerId, options.status ?? null, options.limit],
  );
  return rows.map(toStoredInvoice);
}

export async function getInvoice(db: Queryable, id: string): Promise<StoredInvoiceDetail> {
  const [row] = await db.query<InvoiceRow>('SELECT * FROM invoices WHERE id = $1', [id]);
  if (!row) throw notFound('invoice', id);
  return withDetail(db, row);
}

export async function findInvoice(db: Queryable, subscriptionId: string, periodStart: number): Promise<StoredInvoiceDetail | undefined> {
  const [row] = await db.query<InvoiceRow>('SELECT * FROM invoices WHERE subscription_id = $1 AND period_start = $2', [subscriptionId, new Date(periodStart)]);
  return row && withDetail(db, row);
}

async function withDetail(db: Queryable, row: InvoiceRow): Promise<StoredInvoiceDetail> {
  const lines = await db.query<LineRow>('SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position', [row.id]);
  return {
    ...toStoredInvoice(row),
    lines: lines.map(toLine),
    usage: row.usage.map((entry) => ({ endpointId: entry.endpointId, calls: BigInt(entry.calls), units: BigInt(entry.units) })),
  };
}

const periodKey = (subscriptionId: string, periodStart: number) => `${subscriptionId}@${periodStart}`;

const sumAmounts = (lines: readonly InvoiceLine[]) => lines.reduce((sum, line) => sum + line.amount, 0n);

const json = (value: unknown) => JSON.stringify(value, (_key, field: unknown) => (typeof field === 'bigint' ? field.toString() : field));

function fingerprintOf(item: RatedPeriod): string {
  const { invoice, usage } = item;
  return createHash('sha256')
    .update(json([invoice.planId, invoice.currency, invoice.mode, invoice.total, invoice.lines, invoice.revenueShare, usage]))
    .digest('base64url');
}

/** Everything of a line that has no column of its own. */
function lineRecord(invoiceId: string, position: number, line: InvoiceLine) {
  const { plan_id, kind, description, quantity, unit_price, amount, billed, endpoint_id, partner, ...details } = line;
  return {
    invoice_id: invoiceId,
    position,
    plan_id,
    kind,
    description,
    quantity,
    unit_price,
    amount: amount.toString(),
    billed,
    endpoint_id: endpoint_id ?? null,
    partner: partner ?? null,
    details,
  };
}

/** An invoices row as stored. */
export interface InvoiceRow {
  id: string;
  customer_id: string;
  subscription_id: string;
  product_id: string;
  plan_id: string;
  period_start: Date;
  period_end: Date;
  currency: CurrencyCode;
  mode: 'postpaid' | 'prepaid';
  status: 'draft' | 'finalized';
  total: string;
  revenue_share: string;
  calls: string;
  units: string;
  usage: { endpointId: string; calls: string; units: string }[];
  rated_at: Date;
  finalized_at: Date | null;
}

interface LineRow {
  plan_id: string;
  kind: InvoiceLine['kind'];
  description: string;
  quantity: string;
  unit_price: string | null;
  amount: string;
  billed: InvoiceLine['billed'];
  endpoint_id: string | null;
  partner: string | null;
  details: Pick<InvoiceLine, 'proration' | 'tiers' | 'percent'>;
}

const toStoredInvoice = (row: InvoiceRow): StoredInvoice => ({
  id: row.id,
  customerId: row.customer_id,
  subscriptionId: row.subscription_id,
  productId: row.product_id,
  planId: row.plan_id,
  periodStart: row.period_start.getTime(),
  periodEnd: row.period_end.getTime(),
  currency: row.currency,
  mode: row.mode,
  status: row.status,
  total: BigInt(row.total),
  revenueShare: BigInt(row.revenue_share),
  calls: BigInt(row.calls),
  units: BigInt(row.units),
  ratedAt: row.rated_at.getTime(),
  finalizedAt: row.finalized_at?.getTime() ?? null,
});

const toLine = (row: LineRow): InvoiceLine => ({
  plan_id: row.plan_id,
  kind: row.kind,
  description: row.description,
  quantity: row.quantity,
  unit_price: row.unit_price,
  amount: BigInt(row.amount),
  billed: row.billed,
  ...(row.endpoint_id !== null && { endpoint_id: row.endpoint_id }),
  ...(row.partner !== null && { partner: row.partner }),
  ...row.details,
});
