import { createHash } from 'node:crypto';
import type Stripe from 'stripe';
import { conflict, notFound, TollgateError } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';
import type { StripeWork } from './work.js';

/** Metadata key on Stripe objects naming our record; reconciliation and adoption rely on it. */
export const customerIdMetadataKey = 'tollgate_customer_id';

/** A Stripe customer is made after ours; this much clock skew between us and Stripe is tolerated when looking. */
const creationSkewSeconds = 300;

/** Our customers as Stripe customers: created once, kept up to date, and mapped back for webhooks. */
export class StripeCustomers {
  /**
   * Creates in flight, by our customer id. The sync runs work items concurrently (on the one leader replica), and
   * items of one new customer with different key generations would otherwise both create it.
   */
  private readonly creating = new Map<string, Promise<string>>();

  constructor(
    private readonly db: Queryable,
    private readonly stripe: Stripe | undefined,
  ) {}

  /** `customer.sync`: creates the Stripe customer if needed, then sets its name and email to ours. */
  async sync(work: StripeWork): Promise<void> {
    const customer = await this.ours(work.item.subjectId);
    const stripeCustomerId = await this.ensure(customer.id, work);
    const update = { name: customer.name, email: customer.email ?? '', metadata: { [customerIdMetadataKey]: customer.id } };
    // Our own key, not the package's random one: derived from what is sent, so a retry of the same update replays
    // it and a later change (other parameters) gets its own key.
    const digest = createHash('sha256').update(JSON.stringify(update)).digest('base64url').slice(0, 22);
    await this.client().customers.update(stripeCustomerId, update, { idempotencyKey: work.key('customer', customer.id, 'update', digest) });
  }

  /**
   * The Stripe customer id of our customer, creating the Stripe customer if there is none. The create sends only
   * our id, so its idempotency key always carries the same parameters; `sync` sets the rest.
   */
  async ensure(customerId: string, work: StripeWork): Promise<string> {
    let lookFirst = work.mayHaveApplied;
    for (;;) {
      const known = await this.stripeIdOf(customerId);
      if (known) return known;
      const inFlight = this.creating.get(customerId);
      if (!inFlight) break;
      // Another work item is creating this customer. If it fails, its create may still have been applied.
      await inFlight.catch(() => {});
      lookFirst = true;
    }
    const creation = this.create(customerId, work, lookFirst);
    this.creating.set(customerId, creation);
    try {
      return await creation;
    } finally {
      this.creating.delete(customerId);
    }
  }

  private async create(customerId: string, work: StripeWork, lookFirst: boolean): Promise<string> {
    const customer = await this.ours(customerId);
    const found = lookFirst ? await this.findTagged(customer) : undefined;
    const stripeCustomer =
      found ??
      (await this.client().customers.create(
        { metadata: { [customerIdMetadataKey]: customerId } },
        { idempotencyKey: work.key('customer', customerId, 'create') },
      ));
    return this.remember(customerId, stripeCustomer.id);
  }

  async stripeIdOf(customerId: string, tx: Queryable = this.db): Promise<string | undefined> {
    const [row] = await tx.query<{ stripe_customer_id: string }>('SELECT stripe_customer_id FROM stripe_customers WHERE customer_id = $1', [customerId]);
    return row?.stripe_customer_id;
  }

  /**
   * Our customer id for a Stripe customer id (from a webhook): from the mapping, or else from the Stripe customer's
   * metadata, adopting it (a create whose answer was lost). Undefined for customers that are not ours.
   */
  async ourIdOf(stripeCustomerId: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ customer_id: string }>('SELECT customer_id FROM stripe_customers WHERE stripe_customer_id = $1', [stripeCustomerId]);
    if (row) return row.customer_id;
    if (!this.stripe) return undefined;
    const stripeCustomer = await this.stripe.customers.retrieve(stripeCustomerId);
    const customerId = stripeCustomer.deleted ? undefined : stripeCustomer.metadata[customerIdMetadataKey];
    if (!customerId) return undefined;
    const [exists] = await this.db.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
    if (!exists) return undefined;
    return (await this.remember(customerId, stripeCustomerId)) === stripeCustomerId ? customerId : undefined;
  }

  /** Records the mapping; if another attempt recorded one first, that one wins and is returned. */
  async remember(customerId: string, stripeCustomerId: string): Promise<string> {
    await this.db.query(
      'INSERT INTO stripe_customers (customer_id, stripe_customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [customerId, stripeCustomerId],
    );
    const recorded = await this.stripeIdOf(customerId);
    if (!recorded) throw conflict(`Stripe customer ${stripeCustomerId} is already another customer's`);
    return recorded;
  }

  /**
   * A Stripe customer carrying our id, made by an earlier attempt whose answer was lost. Stripe lists newest first,
   * so the scan stops at customers older than ours.
   */
  private async findTagged(customer: CustomerRow): Promise<Stripe.Customer | undefined> {
    const notBefore = Math.floor(customer.created_at.getTime() / 1000) - creationSkewSeconds;
    for await (const candidate of this.client().customers.list({ limit: 100 })) {
      if (candidate.created < notBefore) return undefined;
      if (candidate.metadata[customerIdMetadataKey] === customer.id) return candidate;
    }
    return undefined;
  }

  private async ours(customerId: string): Promise<CustomerRow> {
    const [row] = await this.db.query<CustomerRow>('SELECT id, name, email, created_at FROM customers WHERE id = $1', [customerId]);
    if (!row) throw notFound('customer', customerId);
    return row;
  }

  private client(): Stripe {
    if (!this.stripe) throw new TollgateError('unavailable', 'Stripe is not configured here (TOLLGATE_STRIPE_SECRET_KEY)');
    return this.stripe;
  }
}

interface CustomerRow {
  id: string;
  name: string;
  email: string | null;
  created_at: Date;
}
