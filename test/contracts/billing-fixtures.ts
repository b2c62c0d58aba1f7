import type { BillableSubscription, InvoiceLine, RatedPeriod } from '../../src/billing/index.js';
import type { AccountRecords } from '../../src/identity/index.js';

/** Records the billing contracts build on, written through the identity port. */
export const at = (iso: string) => Date.parse(iso);
export const november = { start: at('2026-11-01T00:00:00Z'), end: at('2026-12-01T00:00:00Z') };
export const december = { start: at('2026-12-01T00:00:00Z'), end: at('2027-01-01T00:00:00Z') };

export async function customerWithSubscription(
  accounts: AccountRecords,
  customerId: string,
  subscriptionId: string,
  options: { productId?: string; planId?: string; startedAt?: string } = {},
): Promise<BillableSubscription> {
  if (!(await accounts.customer(customerId))) {
    await accounts.insertCustomer({ id: customerId, name: customerId, email: null, metadata: {}, createdAt: new Date('2026-10-01T00:00:00Z') });
  }
  const startedAt = new Date(options.startedAt ?? '2026-11-01T00:00:00Z');
  const subscription = await accounts.insertSubscription({
    id: subscriptionId,
    customerId,
    productId: options.productId ?? 'petstore',
    planId: options.planId ?? 'pro',
    startedAt,
    periodAnchor: new Date('2026-11-01T00:00:00Z'),
  });
  return {
    id: subscription.id,
    customerId,
    productId: subscription.productId,
    planId: subscription.planId,
    startedAt: startedAt.getTime(),
    periodAnchor: at('2026-11-01T00:00:00Z'),
    changes: [],
    billedThrough: undefined,
  };
}

export const feeLine = (planId: string, amount: bigint): InvoiceLine => ({
  plan_id: planId,
  kind: 'recurring_fee',
  description: `Recurring fee, plan ${planId}`,
  quantity: '1',
  unit_price: '10.00',
  amount,
  billed: 'in_advance',
});

export const shareLine = (planId: string, partner: string, amount: bigint): InvoiceLine => ({
  plan_id: planId,
  kind: 'revenue_share',
  description: `Revenue share, ${partner}`,
  quantity: '1',
  unit_price: null,
  amount,
  billed: 'in_arrears',
  partner,
  percent: 10,
});

/** A rated period of `lines`, billed in USD on the subscription's plan, with one endpoint's usage. */
export function rated(
  subscription: BillableSubscription,
  period: { start: number; end: number },
  options: { lines?: InvoiceLine[]; revenueShare?: InvoiceLine[]; calls?: bigint; finalize?: boolean; mode?: 'postpaid' | 'prepaid' } = {},
): RatedPeriod {
  const lines = options.lines ?? [feeLine(subscription.planId, 1_000n)];
  const calls = options.calls ?? 10n;
  return {
    subscription,
    period,
    invoice: {
      currency: 'USD',
      planId: subscription.planId,
      mode: options.mode ?? 'postpaid',
      lines,
      total: lines.reduce((sum, line) => sum + line.amount, 0n),
      revenueShare: options.revenueShare ?? [],
      advanceCharges: [],
      calls,
      units: calls * 2n,
    },
    usage: { endpoints: [{ endpointId: 'get-pet', calls, units: calls * 2n }] },
    finalize: options.finalize ?? false,
  };
}
