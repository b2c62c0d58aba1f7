import type Stripe from 'stripe';
import { newId } from '../identity/index.js';
import { type CurrencyCode, invalid, type Logger, notFound, TollgateError } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';
import { fromStripeAmount, roundForStripe, toStripeAmount } from './amounts.js';
import type { StripeCustomers } from './customers.js';
import type { StripeRecords, TopUpRecord } from './records.js';
import type { StripeWork } from './work.js';

const topUpIdMetadataKey = 'tollgate_topup_id';

/** Billing's wallet ledger: credits a top-up, at most once per reference. */
export type CreditWallet = (credit: { customerId: string; currency: CurrencyCode; amount: bigint; reference: string }) => Promise<void>;

export interface TopUp {
  id: string;
  customerId: string;
  /** Minor units. */
  amount: string;
  currency: CurrencyCode;
  status: 'pending' | 'open' | 'paid' | 'expired';
  checkoutUrl: string | null;
  stripeSessionId: string | null;
  paidAt: string | null;
  createdAt: string;
}

export interface CreateTopUpInput {
  amount: bigint;
  currency: CurrencyCode;
  successUrl: string;
  cancelUrl?: string | undefined;
}

/**
 * Wallet top-ups paid through Stripe Checkout (payment mode): the top-up is recorded with its outbox work, the
 * `topup.checkout` work opens the Checkout session, and the session's completion credits the wallet once.
 */
export class StripeTopUps {
  constructor(
    private readonly records: StripeRecords,
    private readonly stripe: Stripe | undefined,
    private readonly customers: StripeCustomers,
    private readonly creditWallet: CreditWallet,
    private readonly logger: Logger,
  ) {}

  async create(customerId: string, input: CreateTopUpInput): Promise<TopUp> {
    this.client(); // a top-up is refused up front when there is no Stripe to pay it through
    // The wallet is credited what Stripe collects: in three-decimal currencies, the amount rounded as Stripe requires.
    const amount = roundForStripe(input.amount, input.currency);
    if (amount <= 0n) throw invalid('amount', `${input.amount} ${input.currency} rounds to nothing Stripe can collect`);
    return this.records.transaction(async (tx) => {
      if (!(await tx.customerExists(customerId))) throw notFound('customer', customerId);
      const topUp = await tx.insertTopUp({ id: newId('top'), customerId, amount, currency: input.currency, successUrl: input.successUrl, cancelUrl: input.cancelUrl ?? null });
      await tx.enqueue('topup.checkout', topUp.id);
      return toTopUp(topUp);
    });
  }

  async get(id: string): Promise<TopUp> {
    const topUp = await this.records.topUp(id);
    if (!topUp) throw notFound('top-up', id);
    return toTopUp(topUp);
  }

  /** `topup.checkout`: opens the Checkout session whose URL the customer pays on. */
  async openCheckout(work: StripeWork): Promise<void> {
    const row = await this.records.topUp(work.item.subjectId);
    if (!row) throw notFound('top-up', work.item.subjectId);
    if (row.status !== 'pending') return;
    const stripeCustomerId = await this.customers.ensure(row.customerId, work);
    const session = await this.client().checkout.sessions.create(
      {
        mode: 'payment',
        customer: stripeCustomerId,
        client_reference_id: row.id,
        line_items: [{ quantity: 1, price_data: { currency: row.currency.toLowerCase(), unit_amount: toStripeAmount(row.amount, row.currency), product_data: { name: 'Wallet top-up' } } }],
        success_url: row.successUrl,
        ...(row.cancelUrl ? { cancel_url: row.cancelUrl } : {}),
        metadata: { [topUpIdMetadataKey]: row.id },
      },
      { idempotencyKey: work.key('topup', row.id, 'checkout') },
    );
    await this.records.openTopUp(row.id, session.id, session.url);
  }

  /**
   * A top-up's session was paid: credits the wallet, before the webhook's transaction, since the ledger writes in
   * its own. The ledger takes one entry per top-up (its reference), so a redelivery or a second event about the
   * same payment credits nothing more. Returns the transaction part (the top-up marked paid), or undefined for a
   * session that is not one of our top-ups.
   */
  async creditPaid(session: Stripe.Checkout.Session): Promise<((tx: Queryable) => Promise<void>) | undefined> {
    const topUpId = session.metadata?.[topUpIdMetadataKey];
    const row = topUpId ? await this.records.topUp(topUpId) : undefined;
    if (!row) return undefined;
    if (session.amount_total === null || fromStripeAmount(session.amount_total, row.currency) !== row.amount || session.currency !== row.currency.toLowerCase()) {
      // Tollgate made the session with the top-up's amount: a difference is a bug to look at, not money to guess.
      this.logger.error({ topUpId, sessionId: session.id, amountTotal: session.amount_total, currency: session.currency }, 'paid Checkout session does not match its top-up');
      throw new Error(`Checkout session ${session.id} does not match top-up ${row.id}`);
    }
    await this.creditWallet({ customerId: row.customerId, currency: row.currency, amount: row.amount, reference: `stripe_topup:${row.id}` });
    return (tx) => this.records.within(tx).markTopUpPaid(row.id, session.id);
  }

  private client(): Stripe {
    if (!this.stripe) throw new TollgateError('unavailable', 'Stripe is not configured here (TOLLGATE_STRIPE_SECRET_KEY)');
    return this.stripe;
  }

  /** In the webhook's transaction: the session expired unpaid. */
  async recordExpired(tx: Queryable, session: Stripe.Checkout.Session): Promise<void> {
    const topUpId = session.metadata?.[topUpIdMetadataKey];
    if (topUpId) await this.records.within(tx).expireTopUp(topUpId);
  }
}

const toTopUp = (record: TopUpRecord): TopUp => ({
  id: record.id,
  customerId: record.customerId,
  amount: record.amount.toString(),
  currency: record.currency,
  status: record.status,
  checkoutUrl: record.checkoutUrl,
  stripeSessionId: record.stripeSessionId,
  paidAt: record.paidAt ? record.paidAt.toISOString() : null,
  createdAt: record.createdAt.toISOString(),
});
