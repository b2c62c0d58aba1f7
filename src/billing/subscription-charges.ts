import type { Subscription, SubscriptionChange, SubscriptionHooks } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
import { periodContaining } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import { loadSubscriptionHistory } from './histories.js';
import { catalogPricing, ratePeriodInvoice } from './period-invoice.js';
import type { WalletService } from './wallet.js';

/**
 * Charges prepaid wallets as subscriptions start, change plan and end, inside the transaction of the change: a
 * purchase or an upgrade the wallet cannot pay for fails with insufficient_funds and leaves nothing behind. A
 * purchase pays the setup fee and the first (prorated) recurring fee, both billed in advance.
 */
export class SubscriptionCharges implements SubscriptionHooks {
  constructor(
    private readonly wallets: WalletService,
    private readonly catalog: () => Catalog,
  ) {}

  async subscribed(tx: Queryable, subscription: Subscription): Promise<void> {
    await this.charge(tx, subscription.id, Date.parse(subscription.startedAt), true);
  }

  async changed(tx: Queryable, _subscription: Subscription, change: SubscriptionChange): Promise<void> {
    await this.charge(tx, change.subscriptionId, change.effectiveAt, change.kind === 'plan_change');
  }

  private async charge(tx: Queryable, subscriptionId: string, at: number, requireFunds: boolean): Promise<void> {
    const history = (await loadSubscriptionHistory(tx, subscriptionId))!;
    const period = periodContaining(history.periodAnchor, at);
    const invoice = ratePeriodInvoice(history, period, catalogPricing(this.catalog(), history.productId));
    if (invoice) await this.wallets.postAdvanceCharges(tx, history, period, invoice, { requireFunds });
  }
}
