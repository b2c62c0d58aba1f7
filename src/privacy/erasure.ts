/**
 * Erasing a customer (GDPR art. 17): what identifies the person goes, what the books need stays, anonymised.
 * docs/OPERATIONS.md ("Privacy") lists what is removed and what is kept, and why.
 */
import type { AccountsService } from '../identity/index.js';
import { type Clock, notFound } from '../kernel/index.js';
import type { CustomerDataRecords, KeptRecords } from './records.js';

export interface ErasureReport {
  customerId: string;
  erasedAt: string;
  /** What this call did; erasing again only sweeps usage events that arrived since. */
  subscriptionsCanceled: number;
  keysDestroyed: number;
  usageEventsDeleted: number;
  /** Financial records kept, anonymised by the erasure of the customer record they point to. */
  kept: KeptRecords;
}

export class CustomerErasure {
  constructor(
    private readonly records: CustomerDataRecords,
    private readonly accounts: AccountsService,
    private readonly clock: Clock,
  ) {}

  async erase(customerId: string): Promise<ErasureReport> {
    const { erasedAt, subscriptionsCanceled, keysDestroyed } = await this.accounts.inTransaction(async (accounts, tx) => {
      const records = this.records.within(tx);
      const customer = await records.lockCustomer(customerId);
      if (!customer) throw notFound('customer', customerId);
      const now = new Date(this.clock.now());
      // Through the accounts service, so billing settles the canceled subscriptions as any cancellation.
      const active = (await accounts.listSubscriptions(customerId)).filter((subscription) => subscription.status === 'active');
      for (const subscription of active) await accounts.cancelSubscription(subscription.id);
      const keys = await records.destroyKeys(customerId, now);
      await accounts.changedElsewhere(customerId);
      // erasedAt is set on the first erasure only: the customer row refuses every change once erased.
      await records.anonymise(customerId, customer.erasedAt === null ? now : undefined);
      return { erasedAt: customer.erasedAt ?? now, subscriptionsCanceled: active.length, keysDestroyed: keys };
    });
    // After the commit: the keys are dead already while this scans usage_events (it has no index by customer).
    const usageEventsDeleted = await this.records.deleteUsageEvents(customerId);
    const kept = await this.records.keptRecords(customerId);
    return {
      customerId,
      erasedAt: erasedAt.toISOString(),
      subscriptionsCanceled,
      keysDestroyed,
      usageEventsDeleted,
      kept,
    };
  }
}
