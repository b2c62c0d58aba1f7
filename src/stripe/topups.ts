import type Stripe from 'stripe';
import { newId } from '../identity/index.js';
import { type CurrencyCode, invalid, type Logger, notFound, TollgateError } from '../kernel/index.js';
import type { Db, Queryable } from '../store/index.js';
import { fromStripeAmount, roundForStripe, toStripeAmount } from './amounts.js';
import type { StripeCustomers } from './customers.js';
import { enqueueStripeWork } from './outbox.js';
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
    private readonly db: Db,
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
    return this.db.transaction(async (tx) => {
      const [customer] = await tx.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
      if (!customer) throw notFound('customer', customerId);
      const [row] = await tx.query<TopUpRow>(
        `INSERT INTO stripe_topups (id, customer_id, amount, currency, success_url, cancel_url) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
        [newId('top'), customerId, amount.toString(), input.currency, input.successUrl, input.cancelUrl ?? null],
      );
      await enqueueStripeWork(tx, 'topup.checkout', row!.id);
      return toTopUp(row!);
    });
  }

  async get(id: string): Promise<TopUp> {
    const [row] = await this.db.query<TopUpRow>('SELECT * FROM stripe_topups WHERE id = $1', [id]);
    if (!row) throw notFound('top-up', id);
    return toTopUp(row);
  }

  /** `topup.checkout`: opens the Checkout session whose URL the customer pays on. */
  async openCheckout(work: StripeWork): Promise<void> {
    const [row] = await this.db.query<TopUpRow>('SELECT * FROM stripe_topups WHERE id = $1', [work.item.subjectId]);
    if (!row) throw notFound('top-up', work.item.subjectId);
    if (row.status !== 'pending') return;
    const stripeCustomerId = await this.customers.ensure(row.customer_id, work);
    const session = await this.client().checkout.sessions.create(
      {
        mode: 'payment',
        customer: stripeCustomerId,
        client_reference_id: row.id,
        line_items: [{ quantity: 1, price_data: { currency: row.currency.toLowerCase(), unit_amount: toStripeAmount(row.amount, row.currency), product_data: { name: 'Wallet top-up' } } }],
        success_url: row.success_url,
        ...(row.cancel_url ? { cancel_url: row.cancel_url } : {}),
        metadata: { [topUpIdMetadataKey]: row.id },
      },
      { idempotencyKey: work.key('topup', row.id, 'checkout') },
    );
    await this.db.query(
      `UPDATE stripe_topups SET status = 'open', stripe_session_id = $2, checkout_url = $3 WHERE id = $1 AND status = 'pending'`,
      [row.id, session.id, session.url],
    );
  }

  /**
   * A top-up's session was paid: credits the wallet, before the webhook's transaction, since the ledger writes in
   * its own. The ledger takes one entry per top-up (its reference), so a redelivery or a second event about the
   * same payment credits nothing more. Returns the transaction part (the top-up marked paid), or undefined for a
   * session that is not one of our top-ups.
   */
  async creditPaid(session: Stripe.Checkout.Session): Promise<((tx: Queryable) => Promise<void>) | undefined> {
    const topUpId = session.metadata?.[topUpIdMetadataKey];
    const [row] = topUpId ? await this.db.query<TopUpRow>('SELECT * FROM stripe_topups WHERE id = $1', [topUpId]) : [];
    if (!row) return undefined;
    if (session.amount_total === null || fromStripeAmount(session.amount_total, row.currency) !== BigInt(row.amount) || session.currency !== row.currency.toLowerCase()) {
      // Tollgate made the session with the top-up's amount: a difference is a bug to look at, not money to guess.
      this.logger.error({ topUpId, sessionId: session.id, amountTotal: session.amount_total, currency: session.currency }, 'paid Checkout session does not match its top-up');
      throw new Error(`Checkout session ${session.id} does not match top-up ${row.id}`);
    }
    await this.creditWallet({ customerId: row.customer_id, currency: row.currency, amount: BigInt(row.amount), reference: `stripe_topup:${row.id}` });
    return async (tx) => {
      await tx.query(
        `UPDATE stripe_topups SET status = 'paid', paid_at = clock_timestamp(), stripe_session_id = $2 WHERE id = $1 AND status <> 'paid'`,
        [row.id, session.id],
      );
    };
  }

  private client(): Stripe {
    if (!this.stripe) throw new TollgateError('unavailable', 'Stripe is not configured here (TOLLGATE_STRIPE_SECRET_KEY)');
    return this.stripe;
  }

  /** In the webhook's transaction: the session expired unpaid. */
  async recordExpired(tx: Queryable, session: Stripe.Checkout.Session): Promise<void> {
    const topUpId = session.metadata?.[topUpIdMetadataKey];
    if (topUpId) await tx.query(`UPDATE stripe_topups SET status = 'expired' WHERE id = $1 AND status IN ('pending', 'open')`, [topUpId]);
  }
}

interface TopUpRow {
  id: string;
  customer_id: string;
  amount: string;
  currency: CurrencyCode;
  success_url: string;
  cancel_url: string | null;
  status: TopUp['status'];
  stripe_session_id: string | null;
  checkout_url: string | null;
  paid_at: Date | null;
  created_at: Date;
}

const toTopUp = (row: TopUpRow): TopUp => ({
  id: row.id,
  customerId: row.customer_id,
  amount: row.amount,
  currency: row.currency,
  status: row.status,
  checkoutUrl: row.checkout_url,
  stripeSessionId: row.stripe_session_id,
  paidAt: row.paid_at ? row.paid_at.toISOString() : null,
  createdAt: row.created_at.toISOString(),
});
