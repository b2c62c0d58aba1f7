import Stripe from 'stripe';
import { z } from 'zod';
import type { AccountsService } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
import { type Clock, type Logger, TollgateError } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Queryable } from '../store/index.js';
import type { StripeCustomers } from './customers.js';
import type { Dunning, StripeInvoiceFacts } from './dunning.js';
import { invoiceIdMetadataKey } from './invoices.js';
import { accountStateOf, followStripeSubscription, planOfStripeSubscription } from './subscriptions.js';
import { markUsageReportsFailed, type MeterEventFailure } from './usage.js';
import type { StripeTopUps } from './topups.js';

/** Stripe's own tolerance: a signature older than this is a replay. */
const signatureToleranceSeconds = 300;

/** What every Stripe event carries; a signed body without it (`null`, no `data`) is refused, not half-applied. */
/** A snapshot event (v1): its object in `data`. */
const snapshotEventSchema = z.object({
  id: z.string().min(1),
  type: z.string().min(1),
  created: z.number().int(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});
/** A thin event (v2): fetched by id, `created` as an ISO timestamp. */
const thinEventSchema = z.object({ id: z.string().min(1), object: z.literal('v2.core.event'), type: z.string().min(1), created: z.string().min(1) });
const envelopeSchemaOf = (event: unknown) => ((event as { object?: unknown } | null)?.object === 'v2.core.event' ? thinEventSchema : snapshotEventSchema);

export type WebhookResult = 'applied' | 'duplicate' | 'ignored';

/** What an event does, run in the transaction that records the event. */
type Effect = (accounts: AccountsService, tx: Queryable) => Promise<void>;

export interface StripeWebhooksDeps {
  /** A delivery signed with any of them is accepted: Stripe signs each endpoint's deliveries with its own secret. */
  secrets: readonly string[];
  /** Re-reads objects whose latest state matters more than the event's snapshot; without it the snapshot is used. */
  stripe: Stripe | undefined;
  db: Queryable;
  accounts: AccountsService;
  catalog: () => Catalog;
  clock: Clock;
  customers: StripeCustomers;
  dunning: Dunning;
  topUps: StripeTopUps;
  metrics: Metrics;
  logger: Logger;
}

/**
 * POST /webhooks/stripe: verifies the signature over the raw body, then applies each event once, whatever the
 * order and number of deliveries. The event id is recorded in the transaction of its effect, so a redelivery
 * finds it and changes nothing, and a failure leaves neither (Stripe delivers again).
 */
export class StripeWebhooks {
  constructor(private readonly deps: StripeWebhooksDeps) {}

  async receive(rawBody: Buffer, signature: string | undefined): Promise<{ id: string; type: string; result: WebhookResult }> {
    const event = this.verify(rawBody, signature);
    const result = await this.apply(event).catch((error: unknown) => {
      if (!(error instanceof Stripe.errors.StripeError)) throw error;
      // Stripe keeps the event and delivers it again; by then the read it needed may work.
      throw new TollgateError('unavailable', `reading from Stripe failed: ${error.message}`);
    });
    this.deps.metrics.stripeWebhookEvents.inc({ type: event.type, result });
    this.deps.logger.info({ eventId: event.id, type: event.type, result }, 'Stripe webhook');
    return { id: event.id, type: event.type, result };
  }

  private verify(rawBody: Buffer, signature: string | undefined): Stripe.Event | ThinEvent {
    let event: unknown;
    try {
      if (!signature) throw new Error('no Stripe-Signature header');
      // Verified, then parsed here: constructEvent refuses thin (v2) events, which are signed the same way.
      verifyWithAny(rawBody, signature, this.deps.secrets, this.deps.clock.now());
    } catch (error) {
      this.deps.metrics.stripeWebhookEvents.inc({ type: 'unverified', result: 'rejected' });
      this.deps.logger.warn({ err: (error as Error).message }, 'Stripe webhook rejected');
      throw new TollgateError('invalid_request', `webhook signature verification failed: ${(error as Error).message}`, 'stripe-signature');
    }
    try {
      event = JSON.parse(rawBody.toString('utf8'));
    } catch (error) {
      this.deps.metrics.stripeWebhookEvents.inc({ type: 'malformed', result: 'rejected' });
      this.deps.logger.warn({ field: 'body' }, 'Stripe webhook rejected: not JSON');
      throw new TollgateError('invalid_request', `not a Stripe event: body: not JSON (${(error as Error).message})`, 'body');
    }
    const envelope = envelopeSchemaOf(event).safeParse(event);
    if (!envelope.success) {
      const issue = envelope.error.issues[0]!;
      const field = ['body', ...issue.path].join('.');
      this.deps.metrics.stripeWebhookEvents.inc({ type: 'malformed', result: 'rejected' });
      this.deps.logger.warn({ field }, 'Stripe webhook rejected: not an event');
      throw new TollgateError('invalid_request', `not a Stripe event: ${field}: ${issue.message}`, field);
    }
    return event as Stripe.Event | ThinEvent;
  }

  private async apply(event: Stripe.Event | ThinEvent): Promise<WebhookResult> {
    const [seen] = await this.deps.db.query('SELECT 1 FROM stripe_webhook_events WHERE id = $1', [event.id]);
    if (seen) return 'duplicate';
    const effect = await this.effectOf(event);
    if (!effect) return 'ignored';
    const applied = await this.deps.accounts.inTransaction(async (accounts, tx) => {
      // Two deliveries racing: the second waits on the first's insert and then finds the id taken.
      const recorded = await tx.query(
        'INSERT INTO stripe_webhook_events (id, type, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id',
        [event.id, event.type, createdAt(event)],
      );
      if (recorded.length === 0) return false;
      await effect(accounts, tx);
      return true;
    });
    return applied ? 'applied' : 'duplicate';
  }

  /** The event's effect, worked out before the transaction (it may read from Stripe); undefined if it is not ours. */
  private async effectOf(event: Stripe.Event | ThinEvent): Promise<Effect | undefined> {
    const { dunning, topUps } = this.deps;
    const at = createdAt(event);
    if (isThinEvent(event)) return this.thinEventEffect(event, at);
    switch (event.type) {
      case 'invoice.paid':
      case 'invoice.payment_succeeded':
      case 'invoice.voided': {
        const invoice = await this.invoiceFacts(event.data.object);
        return invoice && ((accounts, tx) => dunning.recordSettled(accounts, tx, invoice, at));
      }
      case 'invoice.payment_failed': {
        const invoice = await this.invoiceFacts(event.data.object);
        return invoice && ((_, tx) => dunning.recordFailure(tx, invoice, at));
      }
      case 'customer.subscription.created':
      case 'customer.subscription.updated':
      case 'customer.subscription.deleted':
        return this.subscriptionEffect(event.data.object, at);
      case 'checkout.session.completed':
      case 'checkout.session.async_payment_succeeded': {
        const session = event.data.object;
        if (session.payment_status !== 'paid') return undefined; // an asynchronous payment still to clear
        const markPaid = await topUps.creditPaid(session);
        return markPaid && ((_, tx) => markPaid(tx));
      }
      case 'checkout.session.expired': {
        const session = event.data.object;
        return (_, tx) => topUps.recordExpired(tx, session);
      }
      default:
        return undefined;
    }
  }

  /**
   * A meter error report: Stripe accepted meter events and refused them later (no such meter, customer unknown, …).
   * The usage reports of the sampled events are marked failed, and every error is logged and counted.
   */
  private async thinEventEffect(notification: ThinEvent, at: Date): Promise<Effect | undefined> {
    const { stripe, metrics, logger } = this.deps;
    if (!meterErrorEventTypes.has(notification.type)) return undefined;
    if (!stripe) {
      logger.warn({ eventId: notification.id, type: notification.type }, 'Stripe meter error report not read: TOLLGATE_STRIPE_SECRET_KEY is not set');
      return undefined;
    }
    const event = await stripe.v2.core.events.retrieve(notification.id);
    if (event.type !== 'v1.billing.meter.error_report_triggered' && event.type !== 'v1.billing.meter.no_meter_found') return undefined;
    const { reason, developer_message_summary: summary } = event.data;
    const failures: MeterEventFailure[] = reason.error_types.flatMap((type) =>
      type.sample_errors.map((sample) => ({ identifier: sample.request.identifier, code: type.code, message: sample.error_message })),
    );
    return async (_, tx) => {
      const ours = await markUsageReportsFailed(tx, failures, at);
      for (const type of reason.error_types) metrics.stripeMeterErrors.inc({ code: type.code }, type.error_count);
      logger.error({ eventId: event.id, type: event.type, errorCount: reason.error_count, summary, failed: ours }, 'Stripe refused meter events after accepting them');
    };
  }

  private async invoiceFacts(invoice: Stripe.Invoice): Promise<StripeInvoiceFacts | undefined> {
    const customerId = invoice.customer ? await this.deps.customers.ourIdOf(idOf(invoice.customer)) : undefined;
    if (!customerId) return undefined;
    return {
      stripeInvoiceId: invoice.id,
      customerId,
      invoiceId: invoice.metadata?.[invoiceIdMetadataKey],
      status: invoice.status ?? 'open',
    };
  }

  /**
   * Subscription events arrive in any order, so the event only says which subscription changed: its current state
   * is read from Stripe and applied, which makes a late `updated` after `deleted` harmless.
   */
  private async subscriptionEffect(snapshot: Stripe.Subscription, at: Date): Promise<Effect | undefined> {
    const { stripe, customers, catalog, dunning, logger } = this.deps;
    const subscription = stripe ? await stripe.subscriptions.retrieve(snapshot.id) : snapshot;
    const customerId = await customers.ourIdOf(idOf(subscription.customer));
    if (!customerId) return undefined;
    const plan = planOfStripeSubscription(catalog(), subscription);
    if (!plan) {
      logger.warn({ stripeSubscriptionId: subscription.id, customerId }, 'Stripe subscription maps to no plan (set tollgate_plan metadata or plans[].stripe.prices)');
      return undefined;
    }
    const state = accountStateOf(subscription.status);
    if (!state) {
      logger.warn({ stripeSubscriptionId: subscription.id, customerId, status: subscription.status }, 'Stripe subscription status unknown to this version; nothing changed');
      return undefined;
    }
    const latestInvoiceId = subscription.latest_invoice ? idOf(subscription.latest_invoice) : undefined;
    const latestInvoice = latestInvoiceId && { stripeInvoiceId: latestInvoiceId, customerId, invoiceId: undefined, status: 'open' };
    return async (accounts, tx) => {
      const outcome = await followStripeSubscription(accounts, catalog(), customerId, plan, state);
      if (state === 'paid_plan') await dunning.recordSubscriptionCurrent(accounts, tx, customerId, latestInvoiceId, at);
      else if (state === 'grace' || state === 'suspended') {
        if (!latestInvoice) logger.warn({ stripeSubscriptionId: subscription.id, customerId, status: subscription.status }, 'Stripe subscription in arrears without a latest invoice');
        else if (state === 'grace') await dunning.recordFailure(tx, latestInvoice, at);
        else await dunning.suspendNow(accounts, tx, latestInvoice, at);
      }
      logger.info({ customerId, stripeSubscriptionId: subscription.id, plan: plan.id, status: subscription.status, state, outcome }, 'Stripe subscription applied');
    };
  }
}

const idOf = (value: string | { id: string }) => (typeof value === 'string' ? value : value.id);

/** A thin event (API v2, `object: 'v2.core.event'`): the delivery carries its id and type; the rest is fetched. */
interface ThinEvent {
  id: string;
  object: 'v2.core.event';
  type: string;
  created: string;
}

function verifyWithAny(rawBody: Buffer, signature: string, secrets: readonly string[], now: number): void {
  let failure: unknown;
  for (const secret of secrets) {
    try {
      Stripe.webhooks.signature!.verifyHeader(rawBody, signature, secret, signatureToleranceSeconds, undefined, now);
      return;
    } catch (error) {
      failure = error;
    }
  }
  throw failure;
}

const isThinEvent = (event: Stripe.Event | ThinEvent): event is ThinEvent => (event as { object: string }).object === 'v2.core.event';

/** Snapshot events give `created` in unix seconds, thin events as an ISO timestamp. */
const createdAt = (event: { created: number | string }) => new Date(typeof event.created === 'number' ? event.created * 1000 : event.created);

/** The meter error reports of Stripe's asynchronous meter event validation. */
const meterErrorEventTypes = new Set(['v1.billing.meter.error_report_triggered', 'v1.billing.meter.no_meter_found']);
