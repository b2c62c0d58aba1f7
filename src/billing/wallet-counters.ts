/** How prepaid wallets are mirrored in the counter store, in the Check's scope (the customer). */
import type { EndpointDocument } from '../catalog/index.js';
import type { CurrencyCode } from '../kernel/index.js';
import type { WalletLimit } from '../counters/index.js';
import type { BillingPeriod, RatePlan } from '../rating/index.js';
import { realTimeCallPrice } from './call-price.js';

/** The spendable balance of the customer's wallet in one currency. */
export const walletCounterName = (currency: CurrencyCode) => `w:${currency}`;

/** What a subscription's calls took from the wallet in one billing period, for settlement. */
export const walletSpendCounterName = (subscriptionId: string) => `ws:${subscriptionId}`;

/** The wallet charge of a call, consumed with the rate limits and quota; none on postpaid plans. */
export function prepaidWalletLimit(
  pricing: RatePlan | undefined,
  endpoint: EndpointDocument,
  subscriptionId: string,
  period: BillingPeriod,
): WalletLimit | undefined {
  if (pricing?.mode !== 'prepaid') return undefined;
  return {
    kind: 'wallet',
    name: walletCounterName(pricing.currency),
    cost: realTimeCallPrice(pricing, endpoint),
    spentName: walletSpendCounterName(subscriptionId),
    periodStart: period.start,
    periodEnd: period.end,
  };
}
