import type { CurrencyCode } from '../kernel/index.js';
import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { NewWalletEntry, PeriodAmount, WalletEntry, WalletEntryKind, WalletRecords } from './records.js';

/** The wallets and their ledger (wallet_entries, append-only by trigger) in PostgreSQL or PGlite. */
export class SqlWalletRecords implements WalletRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  transaction<T>(work: (records: WalletRecords) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => work(this.within(tx)));
  }

  within(tx: Queryable): WalletRecords {
    return new SqlWalletRecords(joinedTransaction(this.db, tx));
  }

  async customerExists(customerId: string): Promise<boolean> {
    const [customer] = await this.db.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
    return customer !== undefined;
  }

  async wallets(): Promise<{ customerId: string; currency: CurrencyCode }[]> {
    const rows = await this.db.query<{ customer_id: string; currency: CurrencyCode }>('SELECT customer_id, currency FROM wallets ORDER BY customer_id, currency');
    return rows.map((row) => ({ customerId: row.customer_id, currency: row.currency }));
  }

  async lockWallet(customerId: string, currency: CurrencyCode): Promise<bigint | undefined> {
    const [row] = await this.db.query<{ low_balance_threshold: string }>(
      'SELECT low_balance_threshold FROM wallets WHERE customer_id = $1 AND currency = $2 FOR UPDATE',
      [customerId, currency],
    );
    return row && BigInt(row.low_balance_threshold);
  }

  async createWallet(customerId: string, currency: CurrencyCode): Promise<void> {
    await this.db.query('INSERT INTO wallets (customer_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING', [customerId, currency]);
  }

  async setLowBalanceThreshold(customerId: string, currency: CurrencyCode, threshold: bigint): Promise<void> {
    await this.db.query('UPDATE wallets SET low_balance_threshold = $3 WHERE customer_id = $1 AND currency = $2', [customerId, currency, threshold.toString()]);
  }

  async balances(customerId: string): Promise<{ currency: CurrencyCode; balance: bigint; lowBalanceThreshold: bigint }[]> {
    const rows = await this.db.query<{ currency: CurrencyCode; low_balance_threshold: string; balance: string }>(
      `SELECT w.currency, w.low_balance_threshold, coalesce(sum(e.amount), 0) AS balance
       FROM wallets w LEFT JOIN wallet_entries e ON e.customer_id = w.customer_id AND e.currency = w.currency
       WHERE w.customer_id = $1 GROUP BY w.currency, w.low_balance_threshold ORDER BY w.currency`,
      [customerId],
    );
    return rows.map((row) => ({ currency: row.currency, balance: BigInt(row.balance), lowBalanceThreshold: BigInt(row.low_balance_threshold) }));
  }

  async balance(customerId: string, currency: CurrencyCode): Promise<bigint> {
    const [row] = await this.db.query<{ balance: string }>(
      'SELECT coalesce(sum(amount), 0) AS balance FROM wallet_entries WHERE customer_id = $1 AND currency = $2',
      [customerId, currency],
    );
    return BigInt(row!.balance);
  }

  async post(entry: NewWalletEntry): Promise<void> {
    await this.db.query(
      `INSERT INTO wallet_entries (customer_id, currency, kind, amount, reference, description, subscription_id, period_start, occurred_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (customer_id, reference) DO NOTHING`,
      [
        entry.customerId,
        entry.currency,
        entry.kind,
        entry.amount.toString(),
        entry.reference,
        entry.description,
        entry.subscriptionId ?? null,
        entry.periodStart === undefined ? null : new Date(entry.periodStart),
        new Date(entry.occurredAt),
      ],
    );
  }

  async entryByReference(customerId: string, reference: string): Promise<WalletEntry | undefined> {
    const [entry] = await this.entriesWhere(customerId, 'e.reference = $2', [reference]);
    return entry;
  }

  entries(customerId: string, page: { currency?: CurrencyCode | undefined; after?: string | undefined; limit: number }): Promise<WalletEntry[]> {
    return this.entriesWhere(customerId, '($2::text IS NULL OR e.currency = $2) AND e.id > $3', [page.currency ?? null, page.after ?? '0'], page.limit);
  }

  async postedReferences(customerId: string, references: readonly string[]): Promise<Set<string>> {
    const rows = await this.db.query<{ reference: string }>('SELECT reference FROM wallet_entries WHERE customer_id = $1 AND reference = ANY($2::text[])', [
      customerId,
      references,
    ]);
    return new Set(rows.map((row) => row.reference));
  }

  async periodTotal(subscriptionId: string, periodStart: number, currency: CurrencyCode): Promise<bigint> {
    const [row] = await this.db.query<{ sum: string }>(
      'SELECT coalesce(sum(amount), 0) AS sum FROM wallet_entries WHERE subscription_id = $1 AND period_start = $2 AND currency = $3',
      [subscriptionId, new Date(periodStart), currency],
    );
    return BigInt(row!.sum);
  }

  async settledUsage(customerId: string, currency: CurrencyCode, since: number): Promise<PeriodAmount[]> {
    const rows = await this.db.query<{ subscription_id: string; period_start: Date; settled: string }>(
      `SELECT subscription_id, period_start, -sum(amount) AS settled FROM wallet_entries
       WHERE customer_id = $1 AND currency = $2 AND kind = 'usage' AND period_start >= $3 GROUP BY subscription_id, period_start`,
      [customerId, currency, new Date(since)],
    );
    return rows.map((row) => ({ subscriptionId: row.subscription_id, periodStart: row.period_start.getTime(), amount: BigInt(row.settled) }));
  }

  async periodsWithEntries(subscriptionIds: readonly string[]): Promise<{ subscriptionId: string; periodStart: number }[]> {
    const rows = await this.db.query<{ subscription_id: string; period_start: Date }>(
      `SELECT DISTINCT subscription_id, period_start FROM wallet_entries WHERE subscription_id = ANY($1::text[])`,
      [subscriptionIds],
    );
    return rows.map((row) => ({ subscriptionId: row.subscription_id, periodStart: row.period_start.getTime() }));
  }

  async settlingSubscriptions(customerId: string, canceledAfter: number): Promise<{ id: string; planId: string; periodAnchor: number }[]> {
    const rows = await this.db.query<{ id: string; plan_id: string; period_anchor: Date }>(
      `SELECT id, plan_id, period_anchor FROM subscriptions
       WHERE customer_id = $1 AND (status = 'active' OR canceled_at > $2) ORDER BY id`,
      [customerId, new Date(canceledAfter)],
    );
    return rows.map((row) => ({ id: row.id, planId: row.plan_id, periodAnchor: row.period_anchor.getTime() }));
  }

  async finalizedPeriods(customerId: string, since: number): Promise<{ subscriptionId: string; periodStart: number }[]> {
    const rows = await this.db.query<{ subscription_id: string; period_start: Date }>(
      `SELECT subscription_id, period_start FROM invoices WHERE customer_id = $1 AND status = 'finalized' AND period_start >= $2`,
      [customerId, new Date(since)],
    );
    return rows.map((row) => ({ subscriptionId: row.subscription_id, periodStart: row.period_start.getTime() }));
  }

  /** A customer's entries matching `condition` (parameters from $2), oldest first, with the balance after each. */
  private async entriesWhere(customerId: string, condition: string, params: unknown[], limit = 1000): Promise<WalletEntry[]> {
    const rows = await this.db.query<EntryRow>(
      `SELECT * FROM (SELECT e.*, sum(e.amount) OVER (PARTITION BY e.currency ORDER BY e.id) AS balance_after
                      FROM wallet_entries e WHERE e.customer_id = $1) e
       WHERE ${condition} ORDER BY e.id LIMIT $${params.length + 2}`,
      [customerId, ...params, limit],
    );
    return rows.map(toEntry);
  }
}

interface EntryRow {
  id: string;
  customer_id: string;
  currency: CurrencyCode;
  kind: WalletEntryKind;
  amount: string;
  reference: string;
  description: string;
  subscription_id: string | null;
  period_start: Date | null;
  occurred_at: Date;
  balance_after: string;
}

const toEntry = (row: EntryRow): WalletEntry => ({
  id: String(row.id),
  customerId: row.customer_id,
  currency: row.currency,
  kind: row.kind,
  amount: BigInt(row.amount),
  reference: row.reference,
  description: row.description,
  subscriptionId: row.subscription_id,
  periodStart: row.period_start?.getTime() ?? null,
  occurredAt: row.occurred_at.getTime(),
  balanceAfter: BigInt(row.balance_after),
});
