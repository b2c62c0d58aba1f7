import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AccountRecords } from '../../src/identity/index.js';
import type { CustomerDataRecords } from '../../src/privacy/index.js';

/** A fresh, empty store per test; `accounts` writes the customer's records, `usageEvent` one of its usage events. */
export interface CustomerDataRecordsSubject {
  records: CustomerDataRecords;
  accounts: AccountRecords;
  usageEvent(customerId: string, usageId: string): Promise<void>;
  close(): Promise<void>;
}

/** One contract for every CustomerDataRecords: the export snapshot and the erasure's steps. */
export function customerDataRecordsContract(name: string, open: () => Promise<CustomerDataRecordsSubject>): void {
  describe(`CustomerDataRecords: ${name}`, () => {
    let subject: CustomerDataRecordsSubject;
    let records: CustomerDataRecords;
    beforeEach(async () => {
      subject = await open();
      records = subject.records;
      for (const id of ['cus_a', 'cus_b']) {
        await subject.accounts.insertCustomer({ id, name: `name of ${id}`, email: `${id}@example.com`, metadata: { tier: 'gold' }, createdAt: new Date('2026-11-01T00:00:00Z') });
        const app = await subject.accounts.ensureApp(id, 'mobile', `app_${id}`);
        const subscription = await subject.accounts.insertSubscription({
          id: `sub_${id}`,
          customerId: id,
          productId: 'petstore',
          planId: 'free',
          startedAt: new Date('2026-11-01T00:00:00Z'),
          periodAnchor: new Date('2026-11-01T00:00:00Z'),
        });
        await subject.accounts.insertKey({ id: `key_${id}`, customerId: id, appId: app.id, subscriptionId: subscription.id, name: 'laptop', hash: `hash_${id}`, prefix: 'tg_1234', status: 'active' });
      }
    });
    afterEach(() => subject.close());

    it('reads a snapshot of one customer\'s rows, without secrets', async () => {
      await subject.usageEvent('cus_a', 'use_1');
      const snapshot = await records.snapshot('cus_a');
      expect(snapshot!.omitted).toMatchObject({ api_keys: ['hash'], alert_webhooks: ['signing_secret'] });
      expect(snapshot!.tables.customers).toEqual([expect.objectContaining({ id: 'cus_a', email: 'cus_a@example.com' })]);
      expect(snapshot!.tables.subscriptions!.map((row) => row.id)).toEqual(['sub_cus_a']);
      expect(snapshot!.tables.api_keys).toEqual([expect.objectContaining({ id: 'key_cus_a', prefix: 'tg_1234' })]);
      expect(snapshot!.tables.api_keys![0]).not.toHaveProperty('hash');
      expect(snapshot!.tables.usage_events!.map((row) => row.usage_id)).toEqual(['use_1']);
      expect(snapshot!.tables.invoices).toEqual([]);
      expect(await records.snapshot('cus_missing')).toBeUndefined();
    });

    it('erases in steps: locks, destroys keys once, anonymises, sweeps usage events', async () => {
      await subject.usageEvent('cus_a', 'use_1');
      await subject.usageEvent('cus_a', 'use_2');
      await subject.usageEvent('cus_b', 'use_3');
      const now = new Date('2026-11-20T00:00:00Z');
      await subject.accounts.transaction(async (_accounts, tx) => {
        const inTx = records.within(tx);
        expect(await inTx.lockCustomer('cus_a')).toEqual({ erasedAt: null });
        expect(await inTx.lockCustomer('cus_missing')).toBeUndefined();
        expect(await inTx.destroyKeys('cus_a', now)).toBe(1);
        expect(await inTx.destroyKeys('cus_a', now)).toBe(0);
        await inTx.anonymise('cus_a', now);
      });
      expect(await subject.accounts.customer('cus_a')).toMatchObject({ name: 'Erased customer', email: null, metadata: {}, status: 'erased' });
      expect(await subject.accounts.key('key_cus_a')).toMatchObject({ status: 'revoked', revokedAt: now.toISOString(), name: null, prefix: '' });
      expect((await subject.accounts.apps('cus_a')).map((app) => app.name)).toEqual(['app_cus_a']);
      expect(await records.lockCustomer('cus_a')).toEqual({ erasedAt: now });
      // Again, as a second erasure does: the customer row is left as it is.
      await records.anonymise('cus_a', undefined);
      expect(await records.deleteUsageEvents('cus_a')).toBe(2);
      expect(await records.deleteUsageEvents('cus_a')).toBe(0);
      expect(await records.keptRecords('cus_a')).toEqual({ invoices: 0, usageRollups: 0, walletEntries: 0 });
      expect(await subject.accounts.customer('cus_b')).toMatchObject({ name: 'name of cus_b', status: 'active' });
      expect(await subject.accounts.key('key_cus_b')).toMatchObject({ status: 'active' });
      expect((await records.snapshot('cus_b'))!.tables.usage_events).toHaveLength(1);
    });
  });
}
