import type { Catalog } from '../catalog/index.js';
import { type Clock, conflict, invalid, notFound, TollgateError } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';
import { generateApiKey, newId, oauthClientCredential } from './keys.js';
import type { AccountRecords } from './records.js';
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

export interface PlanChangeOptions {
  /** When the change takes effect (epoch ms); now by default. */
  at?: number | undefined;
  /** The plan the caller saw the subscription on: a change from any other fails with a conflict. */
  fromPlanId?: string | undefined;
}

/** Billing's part of subscription writes: it runs in their transaction, so a charge that fails undoes the write. */
export interface SubscriptionHooks {
  subscribed?(tx: Queryable, subscription: Subscription): Promise<void>;
  changed?(tx: Queryable, subscription: Subscription, change: SubscriptionChange): Promise<void>;
}

/**
 * Customers, apps, subscriptions and API keys: the records the Check's identity cache mirrors. The rules live here;
 * the records come through the `AccountRecords` port.
 */
export class AccountsService {
  constructor(
    private readonly records: AccountRecords,
    private readonly catalog: () => Catalog,
    private readonly clock: Clock,
    /**
     * Called after every committed write with the customer it changed, so that the Checks see it: awaited, so that
     * a key is usable everywhere once its creation is answered. It must not reject.
     */
    private readonly afterWrite: (customerId: string) => Promise<void> = async () => {},
    private readonly hooks: SubscriptionHooks = {},
  ) {}

  /**
   * Runs `fn` in one transaction, with a view of this service whose writes join it, alongside the caller's own
   * writes on `tx` (a webhook's event record, say). The Check sees the result once it commits.
   */
  async inTransaction<T>(fn: (accounts: AccountsService, tx: Queryable) => Promise<T>): Promise<T> {
    const changed = new Set<string>();
    const note = async (customerId: string) => void changed.add(customerId);
    const result = await this.records.transaction((records, tx) => fn(new AccountsService(records, this.catalog, this.clock, note, this.hooks), tx));
    for (const customerId of changed) await this.afterWrite(customerId);
    return result;
  }

  /**
   * For a collaborator that changed the customer's keys or status in its own SQL (erasure), inside inTransaction:
   * the Checks hear of it after the commit, as of the service's own writes.
   */
  async changedElsewhere(customerId: string): Promise<void> {
    await this.afterWrite(customerId);
  }

  async createCustomer(input: CreateCustomerInput): Promise<Customer> {
    const id = input.id ?? newId('cus', 12);
    // Created at the clock's time, like subscriptions: business metrics (activation) count customers by it.
    const customer = await this.records.insertCustomer({
      id,
      name: input.name,
      email: input.email ?? null,
      metadata: input.metadata ?? {},
      createdAt: new Date(this.clock.now()),
    });
    if (!customer) throw conflict(`customer ${id} already exists`, 'id');
    await this.afterWrite(customer.id);
    return customer;
  }

  async getCustomer(id: string): Promise<Customer> {
    const customer = await this.records.customer(id);
    if (!customer) throw notFound('customer', id);
    return customer;
  }

  async listCustomers(options: { limit: number; after?: string | undefined }): Promise<Customer[]> {
    return this.records.customers(options);
  }

  async updateCustomer(id: string, input: UpdateCustomerInput): Promise<Customer> {
    const customer = await this.records.updateCustomer(id, input);
    if (!customer) throw notFound('customer', id);
    await this.afterWrite(customer.id);
    return customer;
  }

  /** `periodAnchor` (epoch ms) sets the billing day, e.g. the 1st for calendar months; by default the start. */
  async subscribe(customerId: string, planId: string, periodAnchor?: number): Promise<Subscription> {
    const subscription = await this.records.transaction((records, tx) => this.subscribeIn(records, tx, customerId, planId, periodAnchor));
    await this.afterWrite(subscription.customerId);
    return subscription;
  }

  async getSubscription(id: string): Promise<Subscription> {
    const subscription = await this.records.subscription(id);
    if (!subscription) throw notFound('subscription', id);
    return subscription;
  }

  async listSubscriptions(customerId: string): Promise<Subscription[]> {
    await this.getCustomer(customerId);
    return this.records.subscriptions(customerId);
  }

  /**
   * Moves an active subscription to another plan of the same product; keys follow at once. A change confirmed from a
   * preview names the instant the preview was rated at (`at`, not in the future nor before the last change) and the
   * plan it was shown from (`fromPlanId`), so it bills exactly what was shown or fails with a conflict.
   */
  async changePlan(subscriptionId: string, planId: string, options: PlanChangeOptions = {}): Promise<Subscription> {
    const subscription = await this.records.transaction(async (records, tx) => {
      const current = await records.subscription(subscriptionId, { forUpdate: true });
      if (!current) throw notFound('subscription', subscriptionId);
      if (current.status !== 'active') throw conflict(`subscription ${subscriptionId} is ${current.status}`);
      if (options.fromPlanId !== undefined && options.fromPlanId !== current.planId) {
        throw conflict(`subscription ${subscriptionId} is on plan ${current.planId} now, not ${options.fromPlanId}`, 'plan');
      }
      const plan = this.requirePlan(planId);
      if (plan.product !== current.productId) {
        throw invalid('plan', `plan ${planId} belongs to product ${plan.product}, not ${current.productId}`);
      }
      const effectiveAt = options.at ?? this.clock.now();
      if (options.at !== undefined) await this.checkChangeInstant(records, current, options.at);
      const changed = await records.setPlan(subscriptionId, planId);
      return this.recordChange(records, tx, changed!, 'plan_change', current.planId, planId, effectiveAt);
    });
    await this.afterWrite(subscription.customerId);
    return subscription;
  }

  async cancelSubscription(subscriptionId: string): Promise<Subscription> {
    const subscription = await this.records.transaction(async (records, tx) => {
      const canceled = await records.cancelActiveSubscription(subscriptionId, new Date(this.clock.now()));
      if (!canceled) {
        if (!(await records.subscription(subscriptionId))) throw notFound('subscription', subscriptionId);
        throw conflict(`subscription ${subscriptionId} is not active`);
      }
      return this.recordChange(records, tx, canceled, 'cancellation', canceled.planId, null);
    });
    await this.afterWrite(subscription.customerId);
    return subscription;
  }

  /** A change's instant must keep the history in order: not after now, not before the start or the last change. */
  private async checkChangeInstant(records: AccountRecords, subscription: Subscription, at: number): Promise<void> {
    const last = await records.lastSubscriptionChangeAt(subscription.id);
    const earliest = Math.max(Date.parse(subscription.startedAt), last?.getTime() ?? -Infinity);
    if (!Number.isSafeInteger(at) || at > this.clock.now() || at < earliest) {
      throw invalid('at', `a plan change takes effect between ${new Date(earliest).toISOString()} and now`);
    }
  }

  /** History for rating (proration), written in the change's transaction, then billing's part of the change. */
  private async recordChange(
    records: AccountRecords,
    tx: Queryable,
    subscription: Subscription,
    kind: SubscriptionChange['kind'],
    fromPlanId: string,
    toPlanId: string | null,
    changeAt?: number,
  ): Promise<Subscription> {
    const effectiveAt = kind === 'cancellation' ? Date.parse(subscription.canceledAt!) : changeAt ?? this.clock.now();
    const id = await records.insertSubscriptionChange({ subscriptionId: subscription.id, kind, fromPlanId, toPlanId, effectiveAt: new Date(effectiveAt) });
    await this.hooks.changed?.(tx, subscription, { id, subscriptionId: subscription.id, kind, fromPlanId, toPlanId, effectiveAt });
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
    const created = await this.records.transaction(async (records, tx) => {
      if (!(await records.customer(input.customerId, { forUpdate: true }))) throw notFound('customer', input.customerId);
      const subscription = await this.subscriptionForKey(records, tx, input);
      const plan = this.requirePlan(subscription.planId);
      if (plan.max_keys !== undefined && (await records.countUnrevokedKeys(subscription.id)) >= plan.max_keys) {
        throw new TollgateError('forbidden', `plan ${plan.id} allows at most ${plan.max_keys} keys`);
      }
      const app = await records.ensureApp(input.customerId, input.appName ?? defaultAppName, newId('app'));
      const manual = this.catalog().products.get(subscription.productId)?.approval === 'manual';
      return records.insertKey({
        id: newId('key'),
        customerId: input.customerId,
        appId: app.id,
        subscriptionId: subscription.id,
        name: input.name ?? null,
        hash: secret.hash,
        prefix: secret.prefix,
        status: manual ? 'pending' : 'active',
      });
    });
    await this.afterWrite(created.customerId);
    return created;
  }

  async getKey(id: string): Promise<ApiKey> {
    const key = await this.records.key(id);
    if (!key) throw notFound('key', id);
    return key;
  }

  async listKeys(customerId: string): Promise<ApiKey[]> {
    await this.getCustomer(customerId);
    return this.records.keys(customerId);
  }

  async revokeKey(id: string): Promise<ApiKey> {
    const key = await this.records.revokeKey(id, new Date(this.clock.now()));
    if (!key) throw notFound('key', id);
    await this.afterWrite(key.customerId);
    return key;
  }

  async approveKey(id: string): Promise<ApiKey> {
    const approved = await this.records.activatePendingKey(id);
    if (!approved) {
      const key = await this.getKey(id);
      throw conflict(`key ${id} is ${key.status}, not pending`);
    }
    await this.afterWrite(approved.customerId);
    return approved;
  }

  async listApps(customerId: string): Promise<App[]> {
    await this.getCustomer(customerId);
    return this.records.apps(customerId);
  }

  private requirePlan(planId: string) {
    const plan = this.catalog().plan(planId);
    if (!plan) throw invalid('plan', `unknown plan ${planId}`);
    return plan;
  }

  private async subscribeIn(records: AccountRecords, tx: Queryable, customerId: string, planId: string, periodAnchor?: number): Promise<Subscription> {
    const plan = this.requirePlan(planId);
    if (!(await records.customer(customerId))) throw notFound('customer', customerId);
    const existing = await records.activeSubscription(customerId, plan.product);
    if (existing) {
      throw conflict(
        `customer ${customerId} already has subscription ${existing.id} to product ${plan.product} (plan ${existing.planId}); change its plan instead`,
        'plan',
      );
    }
    const now = new Date(this.clock.now());
    const subscription = await records.insertSubscription({
      id: newId('sub'),
      customerId,
      productId: plan.product,
      planId,
      startedAt: now,
      periodAnchor: periodAnchor === undefined ? now : new Date(periodAnchor),
    });
    await this.hooks.subscribed?.(tx, subscription);
    return subscription;
  }

  private async subscriptionForKey(records: AccountRecords, tx: Queryable, input: CreateKeyInput): Promise<Subscription> {
    if (input.subscriptionId) {
      const subscription = await records.subscription(input.subscriptionId, { customerId: input.customerId });
      if (!subscription) throw notFound('subscription', input.subscriptionId);
      if (subscription.status !== 'active') throw conflict(`subscription ${subscription.id} is ${subscription.status}`, 'subscription');
      return subscription;
    }
    if (!input.planId) throw invalid('plan', 'either plan or subscription is required');
    const plan = this.requirePlan(input.planId);
    const existing = await records.activeSubscription(input.customerId, plan.product);
    if (!existing) return this.subscribeIn(records, tx, input.customerId, input.planId);
    if (existing.planId !== input.planId) {
      throw conflict(
        `customer ${input.customerId} is subscribed to plan ${existing.planId} of product ${plan.product}; change the subscription's plan instead`,
        'plan',
      );
    }
    return existing;
  }
}
