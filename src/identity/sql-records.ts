import { type Db, type Queryable, withDomainErrors } from '../store/index.js';
import type { AccountRecords, CustomerChanges, NewCustomer, NewKey, NewSubscription, NewSubscriptionChange } from './records.js';
import type { ApiKey, App, Customer, CustomerStatus, Subscription } from './types.js';

/** The identity records in PostgreSQL or PGlite (the same SQL on both). */
export class SqlAccountRecords implements AccountRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  transaction<T>(work: (records: AccountRecords, tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => work(new SqlAccountRecords(joinedTransaction(this.db, tx)), tx));
  }

  async insertCustomer(customer: NewCustomer): Promise<Customer | undefined> {
    const [row] = await this.db.query<CustomerRow>(
      `INSERT INTO customers (id, name, email, metadata, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO NOTHING RETURNING *`,
      [customer.id, customer.name, customer.email, JSON.stringify(customer.metadata), customer.createdAt],
    );
    return row && toCustomer(row);
  }

  async customer(id: string, options: { forUpdate?: boolean } = {}): Promise<Customer | undefined> {
    const [row] = await this.db.query<CustomerRow>(`SELECT * FROM customers WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return row && toCustomer(row);
  }

  async customers(page: { limit: number; after?: string | undefined }): Promise<Customer[]> {
    const rows = await this.db.query<CustomerRow>('SELECT * FROM customers WHERE id > $1 ORDER BY id LIMIT $2', [page.after ?? '', page.limit]);
    return rows.map(toCustomer);
  }

  async updateCustomer(id: string, changes: CustomerChanges): Promise<Customer | undefined> {
    const [row] = await this.db.query<CustomerRow>(
      `UPDATE customers SET
         name = COALESCE($2, name),
         email = CASE WHEN $3::boolean THEN $4 ELSE email END,
         status = COALESCE($5, status),
         status_reason = CASE WHEN $6::boolean THEN $7 ELSE status_reason END,
         metadata = COALESCE($8::jsonb, metadata)
       WHERE id = $1 RETURNING *`,
      [
        id,
        changes.name ?? null,
        changes.email !== undefined,
        changes.email ?? null,
        changes.status ?? null,
        changes.statusReason !== undefined,
        changes.statusReason ?? null,
        changes.metadata ? JSON.stringify(changes.metadata) : null,
      ],
    );
    return row && toCustomer(row);
  }

  async subscription(id: string, options: { customerId?: string; forUpdate?: boolean } = {}): Promise<Subscription | undefined> {
    const [row] = await this.db.query<SubscriptionRow>(
      `SELECT * FROM subscriptions WHERE id = $1${options.customerId === undefined ? '' : ' AND customer_id = $2'}${options.forUpdate ? ' FOR UPDATE' : ''}`,
      options.customerId === undefined ? [id] : [id, options.customerId],
    );
    return row && toSubscription(row);
  }

  async activeSubscription(customerId: string, productId: string): Promise<Subscription | undefined> {
    const [row] = await this.db.query<SubscriptionRow>(
      `SELECT * FROM subscriptions WHERE customer_id = $1 AND product_id = $2 AND status = 'active'`,
      [customerId, productId],
    );
    return row && toSubscription(row);
  }

  async subscriptions(customerId: string): Promise<Subscription[]> {
    const rows = await this.db.query<SubscriptionRow>('SELECT * FROM subscriptions WHERE customer_id = $1 ORDER BY created_at, id', [customerId]);
    return rows.map(toSubscription);
  }

  async activeSubscriptionsByPlan(): Promise<{ planId: string; active: number }[]> {
    const rows = await this.db.query<{ plan_id: string; active: string }>(`SELECT plan_id, count(*) AS active FROM subscriptions WHERE status = 'active' GROUP BY plan_id`);
    return rows.map((row) => ({ planId: row.plan_id, active: Number(row.active) }));
  }

  async insertSubscription(subscription: NewSubscription): Promise<Subscription> {
    const [row] = await this.db.query<SubscriptionRow>(
      `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
       VALUES ($1, $2, $3, $4, 'active', $5, $6) RETURNING *`,
      [subscription.id, subscription.customerId, subscription.productId, subscription.planId, subscription.startedAt, subscription.periodAnchor],
    );
    return toSubscription(row!);
  }

  async setPlan(subscriptionId: string, planId: string): Promise<Subscription | undefined> {
    const [row] = await this.db.query<SubscriptionRow>('UPDATE subscriptions SET plan_id = $2 WHERE id = $1 RETURNING *', [subscriptionId, planId]);
    return row && toSubscription(row);
  }

  async cancelActiveSubscription(subscriptionId: string, canceledAt: Date): Promise<Subscription | undefined> {
    const [row] = await this.db.query<SubscriptionRow>(
      `UPDATE subscriptions SET status = 'canceled', canceled_at = $2
       WHERE id = $1 AND status = 'active' RETURNING *`,
      [subscriptionId, canceledAt],
    );
    return row && toSubscription(row);
  }

  async insertSubscriptionChange(change: NewSubscriptionChange): Promise<string> {
    const [row] = await this.db.query<{ id: string }>(
      `INSERT INTO subscription_changes (subscription_id, kind, from_plan_id, to_plan_id, effective_at)
       VALUES ($1, $2, $3, $4, $5) RETURNING id`,
      [change.subscriptionId, change.kind, change.fromPlanId, change.toPlanId, change.effectiveAt],
    );
    return String(row!.id);
  }

  async lastSubscriptionChangeAt(subscriptionId: string): Promise<Date | undefined> {
    const [row] = await this.db.query<{ effective_at: Date | null }>(
      'SELECT max(effective_at) AS effective_at FROM subscription_changes WHERE subscription_id = $1',
      [subscriptionId],
    );
    return row?.effective_at ?? undefined;
  }

  async countUnrevokedKeys(subscriptionId: string): Promise<number> {
    const [count] = await this.db.query<{ n: string }>(`SELECT count(*) AS n FROM api_keys WHERE subscription_id = $1 AND status <> 'revoked'`, [subscriptionId]);
    return Number(count!.n);
  }

  async insertKey(key: NewKey): Promise<ApiKey> {
    const [row] = await this.db.query<KeyRow>(
      `INSERT INTO api_keys (id, customer_id, app_id, subscription_id, name, hash, prefix, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [key.id, key.customerId, key.appId, key.subscriptionId, key.name, key.hash, key.prefix, key.status],
    );
    return toApiKey(row!);
  }

  async key(id: string): Promise<ApiKey | undefined> {
    const [row] = await this.db.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    return row && toApiKey(row);
  }

  async keys(customerId: string): Promise<ApiKey[]> {
    const rows = await this.db.query<KeyRow>('SELECT * FROM api_keys WHERE customer_id = $1 ORDER BY created_at, id', [customerId]);
    return rows.map(toApiKey);
  }

  async revokeKey(id: string, revokedAt: Date): Promise<ApiKey | undefined> {
    const [row] = await this.db.query<KeyRow>(
      `UPDATE api_keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *`,
      [id, revokedAt],
    );
    return row && toApiKey(row);
  }

  async activatePendingKey(id: string): Promise<ApiKey | undefined> {
    const [row] = await this.db.query<KeyRow>(`UPDATE api_keys SET status = 'active' WHERE id = $1 AND status = 'pending' RETURNING *`, [id]);
    return row && toApiKey(row);
  }

  async ensureApp(customerId: string, name: string, newId: string): Promise<App> {
    await this.db.query('INSERT INTO apps (id, customer_id, name) VALUES ($1, $2, $3) ON CONFLICT (customer_id, name) DO NOTHING', [newId, customerId, name]);
    const [row] = await this.db.query<AppRow>('SELECT * FROM apps WHERE customer_id = $1 AND name = $2', [customerId, name]);
    return toApp(row!);
  }

  async apps(customerId: string): Promise<App[]> {
    const rows = await this.db.query<AppRow>('SELECT * FROM apps WHERE customer_id = $1 ORDER BY name', [customerId]);
    return rows.map(toApp);
  }
}

/** A Db whose queries and nested transactions all run in the open transaction `tx`. */
function joinedTransaction(db: Db, tx: Queryable): Db {
  return {
    kind: db.kind,
    query: (sql, params) => tx.query(sql, params),
    transaction: (fn) => fn(tx),
    withAdvisoryLock: () => Promise.reject(new Error('advisory locks are not taken inside a transaction')),
    close: () => Promise.reject(new Error('a joined transaction is closed by its owner')),
  };
}

interface CustomerRow {
  id: string;
  name: string;
  email: string | null;
  status: CustomerStatus;
  status_reason: string | null;
  metadata: Record<string, string>;
  created_at: Date;
}

interface SubscriptionRow {
  id: string;
  customer_id: string;
  product_id: string;
  plan_id: string;
  status: Subscription['status'];
  started_at: Date;
  period_anchor: Date;
  canceled_at: Date | null;
}

interface KeyRow {
  id: string;
  customer_id: string;
  app_id: string;
  subscription_id: string;
  name: string | null;
  prefix: string;
  status: ApiKey['status'];
  created_at: Date;
  revoked_at: Date | null;
}

interface AppRow {
  id: string;
  customer_id: string;
  name: string;
  created_at: Date;
}

const iso = (date: Date | null) => (date ? date.toISOString() : null);

const toCustomer = (row: CustomerRow): Customer => ({
  id: row.id,
  name: row.name,
  email: row.email,
  status: row.status,
  statusReason: row.status_reason,
  metadata: row.metadata,
  createdAt: row.created_at.toISOString(),
});

const toSubscription = (row: SubscriptionRow): Subscription => ({
  id: row.id,
  customerId: row.customer_id,
  productId: row.product_id,
  planId: row.plan_id,
  status: row.status,
  startedAt: row.started_at.toISOString(),
  periodAnchor: row.period_anchor.toISOString(),
  canceledAt: iso(row.canceled_at),
});

const toApiKey = (row: KeyRow): ApiKey => ({
  id: row.id,
  customerId: row.customer_id,
  appId: row.app_id,
  subscriptionId: row.subscription_id,
  name: row.name,
  prefix: row.prefix,
  status: row.status,
  createdAt: row.created_at.toISOString(),
  revokedAt: iso(row.revoked_at),
});

const toApp = (row: AppRow): App => ({ id: row.id, customerId: row.customer_id, name: row.name, createdAt: row.created_at.toISOString() });
