import type { Catalog } from '../catalog/index.js';
import { type Clock, conflict, invalid, notFound, TollgateError } from '../kernel/index.js';
import type { Db, Queryable } from '../store/index.js';
import { generateApiKey, newId, oauthClientCredential } from './keys.js';
import type { ApiKey, App, Customer, CustomerStatus, Subscription } from './types.js';

export interface CreateCustomerInput {
  id?: string | undefined;
  name: string;
  email?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

export interface UpdateCustomerInput {
  name?: string | undefined;
  email?: string | null | undefined;
  status?: CustomerStatus | undefined;
  statusReason?: string | null | undefined;
  metadata?: Record<string, string> | undefined;
}

export interface CreateKeyInput {
  customerId: string;
  /** Subscribe to this plan if the customer has no active subscription to its product yet. */
  planId?: string | undefined;
  subscriptionId?: string | undefined;
  name?: string | undefined;
  appName?: string | undefined;
}

export interface CreatedKey {
  apiKey: ApiKey;
  /** The secret; returned once and never stored. */
  key: string;
}

const defaultAppName = 'default';

/** A plan change or cancellation, as recorded in subscription_changes. */
export interface SubscriptionChange {
  id: string;
  subscriptionId: string;
  kind: 'plan_change' | 'cancellation';
  fromPlanId: string;
  /** null for a cancellation. */
  toPlanId: string | null;
  /** Epoch ms. */
  effectiveAt: number;
}

/** Billing's part of subscription writes: it runs in their transaction, so a charge that fails undoes the write. */
export interface SubscriptionHooks {
  subscribed?(tx: Queryable, subscription: Subscription): Promise<void>;
  changed?(tx: Queryable, subscription: Subscription, change: SubscriptionChange): Promise<void>;
}

/** Customers, apps, subscriptions and API keys: the records the Check's identity cache mirrors. */
export class AccountsService {
  constructor(
    private readonly db: Db,
    private readonly catalog: () => Catalog,
    private readonly clock: Clock,
    /** Called after every committed write, so this replica's Check sees it at once. */
    private readonly afterWrite: () => void = () => {},
    private readonly hooks: SubscriptionHooks = {},
  ) {}

  /**
   * Runs `fn` in one transaction, with a view of this service whose writes join it, alongside the caller's own
   * writes on `tx` (a webhook's event record, say). The Check sees the result once it commits.
   */
  async inTransaction<T>(fn: (accounts: AccountsService, tx: Queryable) => Promise<T>): Promise<T> {
    const result = await this.db.transaction((tx) => fn(new AccountsService(joinedTransaction(this.db, tx), this.catalog, this.clock, () => {}, this.hooks), tx));
    this.afterWrite();
    return result;
  }

  async createCustomer(input: CreateCustomerInput): Promise<Customer> {
    const id = input.id ?? newId('cus', 12);
    // Created at the clock's time, like subscriptions: business metrics (activation) count customers by it.
    const rows = await this.db.query<CustomerRow>(
      `INSERT INTO customers (id, name, email, metadata, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO NOTHING RETURNING *`,
      [id, input.name, input.email ?? null, JSON.stringify(input.metadata ?? {}), new Date(this.clock.now())],
    );
    if (rows.length === 0) throw conflict(`customer ${id} already exists`, 'id');
    this.afterWrite();
    return toCustomer(rows[0]!);
  }

  async getCustomer(id: string): Promise<Customer> {
    const [row] = await this.db.query<CustomerRow>('SELECT * FROM customers WHERE id = $1', [id]);
    if (!row) throw notFound('customer', id);
    return toCustomer(row);
  }

  async listCustomers(options: { limit: number; after?: string | undefined }): Promise<Customer[]> {
    const rows = await this.db.query<CustomerRow>(
      'SELECT * FROM customers WHERE id > $1 ORDER BY id LIMIT $2',
      [options.after ?? '', options.limit],
    );
    return rows.map(toCustomer);
  }

  async updateCustomer(id: string, input: UpdateCustomerInput): Promise<Customer> {
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
        input.name ?? null,
        input.email !== undefined,
        input.email ?? null,
        input.status ?? null,
        input.statusReason !== undefined,
        input.statusReason ?? null,
        input.metadata ? JSON.stringify(input.metadata) : null,
      ],
    );
    if (!row) throw notFound('customer', id);
    this.afterWrite();
    return toCustomer(row);
  }

  /** `periodAnchor` (epoch ms) sets the billing day, e.g. the 1st for calendar months; by default the start. */
  async subscribe(customerId: string, planId: string, periodAnchor?: number): Promise<Subscription> {
    const subscription = await this.db.transaction((tx) => this.subscribeIn(tx, customerId, planId, periodAnchor));
    this.afterWrite();
    return subscription;
  }

  async getSubscription(id: string): Promise<Subscription> {
    const [row] = await this.db.query<SubscriptionRow>('SELECT * FROM subscriptions WHERE id = $1', [id]);
    if (!row) throw notFound('subscription', id);
    return toSubscription(row);
  }

  async listSubscriptions(customerId: string): Promise<Subscription[]> {
    await this.getCustomer(customerId);
    const rows = await this.db.query<SubscriptionRow>(
      'SELECT * FROM subscriptions WHERE customer_id = $1 ORDER BY created_at, id',
      [customerId],
    );
    return rows.map(toSubscription);
  }

  /** Moves an active subscription to another plan of the same product; keys follow at once. */
  async changePlan(subscriptionId: string, planId: string): Promise<Subscription> {
    const subscription = await this.db.transaction(async (tx) => {
      const [current] = await tx.query<SubscriptionRow>('SELECT * FROM subscriptions WHERE id = $1 FOR UPDATE', [subscriptionId]);
      if (!current) throw notFound('subscription', subscriptionId);
      if (current.status !== 'active') throw conflict(`subscription ${subscriptionId} is ${current.status}`);
      const plan = this.requirePlan(planId);
      if (plan.product !== current.product_id) {
        throw invalid('plan', `plan ${planId} belongs to product ${plan.product}, not ${current.product_id}`);
      }
      const [row] = await tx.query<SubscriptionRow>(
        'UPDATE subscriptions SET plan_id = $2 WHERE id = $1 RETURNING *',
        [subscriptionId, planId],
      );
      return this.recordChange(tx, toSubscription(row!), 'plan_change', current.plan_id, planId);
    });
    this.afterWrite();
    return subscription;
  }

  async cancelSubscription(subscriptionId: string): Promise<Subscription> {
    const subscription = await this.db.transaction(async (tx) => {
      const [row] = await tx.query<SubscriptionRow>(
        `UPDATE subscriptions SET status = 'canceled', canceled_at = $2
         WHERE id = $1 AND status = 'active' RETURNING *`,
        [subscriptionId, new Date(this.clock.now())],
      );
      if (!row) {
        const [existing] = await tx.query('SELECT 1 FROM subscriptions WHERE id = $1', [subscriptionId]);
        if (!existing) throw notFound('subscription', subscriptionId);
        throw conflict(`subscription ${subscriptionId} is not active`);
      }
      return this.recordChange(tx, toSubscription(row), 'cancellation', row.plan_id, null);
    });
    this.afterWrite();
    return subscription;
  }

  /** History for rating (proration), written in the change's transaction, then billing's part of the change. */
  private async recordChange(
    tx: Queryable,
    subscription: Subscription,
    kind: SubscriptionChange['kind'],
    fromPlanId: string,
    toPlanId: string | null,
  ): Promise<Subscription> {
    const effectiveAt = kind === 'cancellation' ? Date.parse(subscription.canceledAt!) : this.clock.now();
    const [row] = await tx.query<{ id: string }>(
      `INSERT INTO subscription_changes (subscription_id, kind, from_plan_id, to_plan_id, effective_at)
       VALUES ($1, $2, $3, $4, $5) RETURNING id`,
      [subscription.id, kind, fromPlanId, toPlanId, new Date(effectiveAt)],
    );
    await this.hooks.changed?.(tx, subscription, { id: String(row!.id), subscriptionId: subscription.id, kind, fromPlanId, toPlanId, effectiveAt });
    return subscription;
  }

  async createKey(input: CreateKeyInput): Promise<CreatedKey> {
    const secret = generateApiKey();
    return { apiKey: await this.insertCredential(input, secret), key: secret.key };
  }

  /**
   * Registers an OAuth2 client (the verified JWT claim value, e.g. client_id) like a key: same subscription, plan,
   * approval, revocation and key limit; its tokens are its credential, so there is no secret to return.
   */
  async registerOAuthClient(input: CreateKeyInput & { clientId: string }): Promise<ApiKey> {
    return this.insertCredential(input, oauthClientCredential(input.clientId));
  }

  private async insertCredential(input: CreateKeyInput, secret: { hash: string; prefix: string }): Promise<ApiKey> {
    const created = await this.db.transaction(async (tx) => {
      const [customer] = await tx.query<CustomerRow>('SELECT * FROM customers WHERE id = $1 FOR UPDATE', [input.customerId]);
      if (!customer) throw notFound('customer', input.customerId);
      const subscription = await this.subscriptionForKey(tx, input);
      const plan = this.requirePlan(subscription.planId);
      if (plan.max_keys !== undefined) {
        const [count] = await tx.query<{ n: string }>(
          `SELECT count(*) AS n FROM api_keys WHERE subscription_id = $1 AND status <> 'revoked'`,
          [subscription.id],
        );
        if (Number(count!.n) >= plan.max_keys) {
          throw new TollgateError('forbidden', `plan ${plan.id} allows at most ${plan.max_keys} keys`);
        }
      }
      const app = await this.appFor(tx, input.customerId, input.appName ?? defaultAppName);
      const manual = this.catalog().products.get(subscription.productId)?.approval === 'manual';
      const [row] = await tx.query<KeyRow>(
        `INSERT INTO api_keys (id, customer_id, app_id, subscription_id, name, hash, prefix, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [newId('key'), input.customerId, app.id, subscription.id, input.name ?? null, secret.hash, secret.prefix,
          manual ? 'pending' : 'active'],
      );
      return toApiKey(row!);
    });
    this.afterWrite();
    return created;
  }

  async getKey(id: string): Promise<ApiKey> {
    const [row] = await this.db.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    if (!row) throw notFound('key', id);
    return toApiKey(row);
  }

  async listKeys(customerId: string): Promise<ApiKey[]> {
    await this.getCustomer(customerId);
    const rows = await this.db.query<KeyRow>('SELECT * FROM api_keys WHERE customer_id = $1 ORDER BY created_at, id', [customerId]);
    return rows.map(toApiKey);
  }

  async revokeKey(id: string): Promise<ApiKey> {
    const [row] = await this.db.query<KeyRow>(
      `UPDATE api_keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *`,
      [id, new Date(this.clock.now())],
    );
    if (!row) throw notFound('key', id);
    this.afterWrite();
    return toApiKey(row);
  }

  async approveKey(id: string): Promise<ApiKey> {
    const [row] = await this.db.query<KeyRow>(
      `UPDATE api_keys SET status = 'active' WHERE id = $1 AND status = 'pending' RETURNING *`,
      [id],
    );
    if (!row) {
      const key = await this.getKey(id);
      throw conflict(`key ${id} is ${key.status}, not pending`);
    }
    this.afterWrite();
    return toApiKey(row);
  }

  async listApps(customerId: string): Promise<App[]> {
    await this.getCustomer(customerId);
    const rows = await this.db.query<AppRow>('SELECT * FROM apps WHERE customer_id = $1 ORDER BY name', [customerId]);
    return rows.map(toApp);
  }

  private requirePlan(planId: string) {
    const plan = this.catalog().plan(planId);
    if (!plan) throw invalid('plan', `unknown plan ${planId}`);
    return plan;
  }

  private async subscribeIn(tx: Queryable, customerId: string, planId: string, periodAnchor?: number): Promise<Subscription> {
    const plan = this.requirePlan(planId);
    const [customer] = await tx.query('SELECT id FROM customers WHERE id = $1', [customerId]);
    if (!customer) throw notFound('customer', customerId);
    const [existing] = await tx.query<SubscriptionRow>(
      `SELECT * FROM subscriptions WHERE customer_id = $1 AND product_id = $2 AND status = 'active'`,
      [customerId, plan.product],
    );
    if (existing) {
      throw conflict(
        `customer ${customerId} already has subscription ${existing.id} to product ${plan.product} (plan ${existing.plan_id}); change its plan instead`,
        'plan',
      );
    }
    const now = new Date(this.clock.now());
    const [row] = await tx.query<SubscriptionRow>(
      `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
       VALUES ($1, $2, $3, $4, 'active', $5, $6) RETURNING *`,
      [newId('sub'), customerId, plan.product, planId, now, periodAnchor === undefined ? now : new Date(periodAnchor)],
    );
    const subscription = toSubscription(row!);
    await this.hooks.subscribed?.(tx, subscription);
    return subscription;
  }

  private async subscriptionForKey(tx: Queryable, input: CreateKeyInput): Promise<Subscription> {
    if (input.subscriptionId) {
      const [row] = await tx.query<SubscriptionRow>(
        'SELECT * FROM subscriptions WHERE id = $1 AND customer_id = $2',
        [input.subscriptionId, input.customerId],
      );
      if (!row) throw notFound('subscription', input.subscriptionId);
      if (row.status !== 'active') throw conflict(`subscription ${row.id} is ${row.status}`, 'subscription');
      return toSubscription(row);
    }
    if (!input.planId) throw invalid('plan', 'either plan or subscription is required');
    const plan = this.requirePlan(input.planId);
    const [existing] = await tx.query<SubscriptionRow>(
      `SELECT * FROM subscriptions WHERE customer_id = $1 AND product_id = $2 AND status = 'active'`,
      [input.customerId, plan.product],
    );
    if (!existing) return this.subscribeIn(tx, input.customerId, input.planId);
    if (existing.plan_id !== input.planId) {
      throw conflict(
        `customer ${input.customerId} is subscribed to plan ${existing.plan_id} of product ${plan.product}; change the subscription's plan instead`,
        'plan',
      );
    }
    return toSubscription(existing);
  }

  private async appFor(tx: Queryable, customerId: string, name: string): Promise<App> {
    await tx.query(
      'INSERT INTO apps (id, customer_id, name) VALUES ($1, $2, $3) ON CONFLICT (customer_id, name) DO NOTHING',
      [newId('app'), customerId, name],
    );
    const [row] = await tx.query<AppRow>('SELECT * FROM apps WHERE customer_id = $1 AND name = $2', [customerId, name]);
    return toApp(row!);
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
