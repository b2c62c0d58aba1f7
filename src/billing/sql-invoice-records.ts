import { createHash } from 'node:crypto';
import { newId } from '../identity/index.js';
import type { CurrencyCode } from '../kernel/index.js';
import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { InvoiceLine } from './period-invoice.js';
import type { InvoiceRecords, RatedPeriod, RevenueFigures, RevenueGroup, StoredInvoice, StoredInvoiceDetail } from './records.js';

/** Invoices in PostgreSQL or PGlite: drafts refreshed while a period runs, finalized (and immutable, by trigger) once it ends. */
export class SqlInvoiceRecords implements InvoiceRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  transaction<T>(work: (records: InvoiceRecords, tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => work(new SqlInvoiceRecords(joinedTransaction(this.db, tx)), tx));
  }

  async saveRatedPeriods(rated: readonly RatedPeriod[], now: number): Promise<StoredInvoice[]> {
    if (rated.length === 0) return [];
    const records = rated.map((item) => ({ item, fingerprint: fingerprintOf(item) }));
    const written = await this.db.query<{ id: string; subscription_id: string; period_start: Date }>(
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
      await this.db.query('DELETE FROM invoice_lines WHERE invoice_id = ANY($1::text[])', [ids]);
      const lines = written.flatMap((row) => {
        const { invoice } = byKey.get(periodKey(row.subscription_id, row.period_start.getTime()))!;
        return [...invoice.lines, ...invoice.revenueShare].map((line, position) => lineRecord(row.id, position, line));
      });
      await this.db.query(
        `INSERT INTO invoice_lines (invoice_id, position, plan_id, kind, description, quantity, unit_price, amount, billed, endpoint_id, partner, details)
         SELECT * FROM jsonb_to_recordset($1::jsonb) AS l (invoice_id text, position integer, plan_id text, kind text, description text,
           quantity numeric, unit_price numeric, amount bigint, billed text, endpoint_id text, partner text, details jsonb)`,
        [JSON.stringify(lines)],
      );
    }
    const ending = new Set(rated.filter((item) => item.finalize).map((item) => periodKey(item.subscription.id, item.period.start)));
    if (ending.size === 0) return [];
    // By id: the index on (subscription_id, period_start) serves this lookup, not a join with an array of pairs.
    const candidates = await this.db.query<{ id: string; subscription_id: string; period_start: Date }>(
      'SELECT id, subscription_id, period_start FROM invoices WHERE subscription_id = ANY($1::text[])',
      [[...new Set(rated.map((item) => item.subscription.id))]],
    );
    const finalized = await this.db.query<InvoiceRow>(
      `UPDATE invoices SET status = 'finalized', finalized_at = $2 WHERE id = ANY($1::text[]) AND status = 'draft' RETURNING *`,
      [candidates.filter((row) => ending.has(periodKey(row.subscription_id, row.period_start.getTime()))).map((row) => row.id), new Date(now)],
    );
    return finalized.map(toStoredInvoice);
    }

  async invoices(customerId: string, options: { limit: number; status?: 'draft' | 'finalized' | undefined }): Promise<StoredInvoice[]> {
    const rows = await this.db.query<InvoiceRow>(
      `SELECT * FROM invoices WHERE customer_id = $1 AND ($2::text IS NULL OR status = $2)
       ORDER BY period_start DESC, id LIMIT $3`,
      [customerId, options.status ?? null, options.limit],
    );
    return rows.map(toStoredInvoice);
  }

  async invoice(id: string): Promise<StoredInvoiceDetail | undefined> {
    const [row] = await this.db.query<InvoiceRow>('SELECT * FROM invoices WHERE id = $1', [id]);
    return row && this.withDetail(row);
  }

  async periodInvoice(subscriptionId: string, periodStart: number): Promise<StoredInvoiceDetail | undefined> {
    const [row] = await this.db.query<InvoiceRow>('SELECT * FROM invoices WHERE subscription_id = $1 AND period_start = $2', [subscriptionId, new Date(periodStart)]);
    return row && this.withDetail(row);
  }

  async revenueFigures(from: number, to: number): Promise<RevenueFigures> {
    const db = this.db;
    const range = [new Date(from), new Date(to)];
    const inMonth = 'i.period_start >= $1 AND i.period_start < $2';
    const [[counts], totals, byProduct, revenueByLinePlan, byInvoicePlan, byCustomer, partners] = await Promise.all([
      db.query<{ invoices: string; drafts: string }>(
        `SELECT count(*) AS invoices, count(*) FILTER (WHERE status = 'draft') AS drafts FROM invoices i WHERE ${inMonth}`,
        range,
      ),
      groupInvoices(db, `'all'`, inMonth, range),
      groupInvoices(db, 'i.product_id', inMonth, range),
      db.query<Omit<GroupRow, 'calls' | 'units'>>(
        `SELECT l.plan_id AS id, i.currency,
           coalesce(sum(l.amount) FILTER (WHERE l.kind <> 'revenue_share'), 0) AS revenue,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'revenue_share'), 0) AS revenue_share
         FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
         WHERE ${inMonth} GROUP BY l.plan_id, i.currency ORDER BY l.plan_id, i.currency`,
        range,
      ),
      groupInvoices(db, 'i.plan_id', inMonth, range),
      groupInvoices(db, 'i.customer_id', inMonth, range),
      db.query<{ id: string; currency: CurrencyCode; owed: string }>(
        `SELECT l.partner AS id, i.currency, sum(l.amount) AS owed FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
         WHERE ${inMonth} AND l.kind = 'revenue_share' GROUP BY l.partner, i.currency ORDER BY l.partner, i.currency`,
        range,
      ),
    ]);
    return {
      invoices: Number(counts!.invoices),
      drafts: Number(counts!.drafts),
      totals: totals.map(toGroup),
      byProduct: byProduct.map(toGroup),
      revenueByLinePlan: revenueByLinePlan.map((row) => ({ id: row.id, currency: row.currency, revenue: BigInt(row.revenue), revenueShare: BigInt(row.revenue_share) })),
      byInvoicePlan: byInvoicePlan.map(toGroup),
      byCustomer: byCustomer.map(toGroup),
      revenueShareByPartner: partners.map((row) => ({ id: row.id, currency: row.currency, owed: BigInt(row.owed) })),
    };
  }

  private async withDetail(row: InvoiceRow): Promise<StoredInvoiceDetail> {
    const lines = await this.db.query<LineRow>('SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position', [row.id]);
    return {
      ...toStoredInvoice(row),
      lines: lines.map(toLine),
      usage: row.usage.map((entry) => ({ endpointId: entry.endpointId, calls: BigInt(entry.calls), units: BigInt(entry.units) })),
    };
  }
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

interface GroupRow {
  id: string;
  currency: CurrencyCode;
  revenue: string;
  revenue_share: string;
  calls: string;
  units: string;
}

function groupInvoices(db: Queryable, key: string, inMonth: string, range: Date[]): Promise<GroupRow[]> {
  return db.query<GroupRow>(
    `SELECT ${key} AS id, i.currency, sum(i.total) AS revenue, sum(i.revenue_share) AS revenue_share,
       sum(i.calls) AS calls, sum(i.units) AS units
     FROM invoices i WHERE ${inMonth} GROUP BY 1, i.currency ORDER BY 1, i.currency`,
    range,
  );
}

const toGroup = (row: GroupRow): RevenueGroup => ({
  id: row.id,
  currency: row.currency,
  revenue: BigInt(row.revenue),
  revenueShare: BigInt(row.revenue_share),
  calls: BigInt(row.calls),
  units: BigInt(row.units),
});

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
