import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AccountRecords, NewKey } from '../../src/identity/index.js';
import { TollgateError } from '../../src/kernel/errors.js';

/** A fresh, empty store per test; `close` removes whatever the factory created. */
export interface AccountRecordsSubject {
  records: AccountRecords;
  close(): Promise<void>;
}

const at = (iso: string) => new Date(iso);
const customer = (id: string, name = `name of ${id}`) => ({ id, name, email: `${id}@example.com`, metadata: { tier: 'gold' }, createdAt: at('2026-11-01T00:00:00Z') });
const subscription = (id: string, customerId: string, productId = 'petstore', planId = 'free') => ({
  id,
  customerId,
  productId,
  planId,
  startedAt: at('2026-11-02T00:00:00Z'),
  periodAnchor: at('2026-11-01T00:00:00Z'),
});

/** One contract for every AccountRecords: what the accounts rules rely on, failures told as domain errors. */
export function accountRecordsContract(name: string, open: () => Promise<AccountRecordsSubject>): void {
  describe(`AccountRecords: ${name}`, () => {
    let subject: AccountRecordsSubject;
    let records: AccountRecords;
    beforeEach(async () => {
      subject = await open();
      records = subject.records;
    });
    afterEach(() => subject.close());

    /** A customer with an app and an active subscription, ready for keys. */
    async function keyable(customerId: string) {
      await records.insertCustomer(customer(customerId));
      const app = await records.ensureApp(customerId, 'default', `app_${customerId}`);
      const sub = await records.insertSubscription(subscription(`sub_${customerId}`, customerId));
      const key = (id: string, status: NewKey['status'] = 'active'): NewKey => ({
        id,
        customerId,
        appId: app.id,
        subscriptionId: sub.id,
        name: `key ${id}`,
        hash: `hash_${id}`,
        prefix: id.slice(0, 8),
        status,
      });
      return { app, sub, key };
    }

    it('inserts a customer once and reads it back', async () => {
      const created = await records.insertCustomer(customer('cus_a'));
      expect(created).toEqual({
        id: 'cus_a',
        name: 'name of cus_a',
        email: 'cus_a@example.com',
        status: 'active',
        statusReason: null,
        metadata: { tier: 'gold' },
        createdAt: '2026-11-01T00:00:00.000Z',
      });
      expect(await records.insertCustomer(customer('cus_a', 'another'))).toBeUndefined();
      expect(await records.customer('cus_a')).toEqual(created);
      expect(await records.customer('cus_a', { forUpdate: true })).toEqual(created);
      expect(await records.customer('cus_missing')).toBeUndefined();
    });

    it('pages customers by id after a cursor', async () => {
      for (const id of ['cus_c', 'cus_a', 'cus_b', 'cus_d']) await records.insertCustomer(customer(id));
      expect((await records.customers({ limit: 2 })).map((c) => c.id)).toEqual(['cus_a', 'cus_b']);
      expect((await records.customers({ limit: 2, after: 'cus_b' })).map((c) => c.id)).toEqual(['cus_c', 'cus_d']);
      expect(await records.customers({ limit: 2, after: 'cus_d' })).toEqual([]);
    });

    it('updates only the given fields; null clears email and status reason', async () => {
      await records.insertCustomer(customer('cus_a'));
      const suspended = await records.updateCustomer('cus_a', { status: 'suspended', statusReason: 'unpaid' });
      expect(suspended).toMatchObject({ name: 'name of cus_a', email: 'cus_a@example.com', status: 'suspended', statusReason: 'unpaid', metadata: { tier: 'gold' } });
      const renamed = await records.updateCustomer('cus_a', { name: 'Acme', email: null, statusReason: null, metadata: { tier: 'silver' } });
      expect(renamed).toMatchObject({ name: 'Acme', email: null, status: 'suspended', statusReason: null, metadata: { tier: 'silver' } });
      expect(await records.updateCustomer('cus_missing', { name: 'x' })).toBeUndefined();
    });

    it('finds subscriptions by id, owner and active product, oldest first', async () => {
      await records.insertCustomer(customer('cus_a'));
      await records.insertCustomer(customer('cus_b'));
      const first = await records.insertSubscription(subscription('sub_1', 'cus_a'));
      expect(first).toEqual({
        id: 'sub_1',
        customerId: 'cus_a',
        productId: 'petstore',
        planId: 'free',
        status: 'active',
        startedAt: '2026-11-02T00:00:00.000Z',
        periodAnchor: '2026-11-01T00:00:00.000Z',
        canceledAt: null,
      });
      const second = await records.insertSubscription(subscription('sub_2', 'cus_a', 'weather', 'basic'));
      expect(await records.subscription('sub_1')).toEqual(first);
      expect(await records.subscription('sub_1', { customerId: 'cus_a', forUpdate: true })).toEqual(first);
      expect(await records.subscription('sub_1', { customerId: 'cus_b' })).toBeUndefined();
      expect(await records.subscription('sub_missing')).toBeUndefined();
      expect(await records.activeSubscription('cus_a', 'weather')).toEqual(second);
      expect(await records.activeSubscription('cus_b', 'weather')).toBeUndefined();
      expect((await records.subscriptions('cus_a')).map((s) => s.id)).toEqual(['sub_1', 'sub_2']);
      expect(await records.subscriptions('cus_b')).toEqual([]);
    });

    it('changes plans, cancels only active subscriptions and records changes', async () => {
      await records.insertCustomer(customer('cus_a'));
      await records.insertSubscription(subscription('sub_1', 'cus_a'));
      expect(await records.setPlan('sub_1', 'pro')).toMatchObject({ id: 'sub_1', planId: 'pro', status: 'active' });
      expect(await records.setPlan('sub_missing', 'pro')).toBeUndefined();
      const canceled = await records.cancelActiveSubscription('sub_1', at('2026-11-10T00:00:00Z'));
      expect(canceled).toMatchObject({ status: 'canceled', canceledAt: '2026-11-10T00:00:00.000Z', planId: 'pro' });
      expect(await records.cancelActiveSubscription('sub_1', at('2026-11-11T00:00:00Z'))).toBeUndefined();
      expect(await records.cancelActiveSubscription('sub_missing', at('2026-11-11T00:00:00Z'))).toBeUndefined();
      expect(await records.activeSubscription('cus_a', 'petstore')).toBeUndefined();
      expect(await records.lastSubscriptionChangeAt('sub_1')).toBeUndefined();
      const first = await records.insertSubscriptionChange({ subscriptionId: 'sub_1', kind: 'plan_change', fromPlanId: 'free', toPlanId: 'pro', effectiveAt: at('2026-11-05T00:00:00Z') });
      const second = await records.insertSubscriptionChange({ subscriptionId: 'sub_1', kind: 'cancellation', fromPlanId: 'pro', toPlanId: null, effectiveAt: at('2026-11-10T00:00:00Z') });
      expect(typeof first).toBe('string');
      expect(second).not.toBe(first);
      expect(await records.lastSubscriptionChangeAt('sub_1')).toEqual(at('2026-11-10T00:00:00Z'));
    });

    it('counts active subscriptions per plan', async () => {
      expect(await records.activeSubscriptionsByPlan()).toEqual([]);
      for (const id of ['cus_a', 'cus_b', 'cus_c']) await records.insertCustomer(customer(id));
      await records.insertSubscription(subscription('sub_1', 'cus_a', 'petstore', 'free'));
      await records.insertSubscription(subscription('sub_2', 'cus_b', 'petstore', 'free'));
      await records.insertSubscription(subscription('sub_3', 'cus_c', 'petstore', 'pro'));
      await records.insertSubscription(subscription('sub_4', 'cus_a', 'weather', 'basic'));
      await records.cancelActiveSubscription('sub_4', at('2026-11-10T00:00:00Z'));
      const byPlan = await records.activeSubscriptionsByPlan();
      expect(byPlan.sort((a, b) => a.planId.localeCompare(b.planId))).toEqual([{ planId: 'free', active: 2 }, { planId: 'pro', active: 1 }]);
    });

    it('refuses a second active subscription to one product as a conflict', async () => {
      await records.insertCustomer(customer('cus_a'));
      await records.insertSubscription(subscription('sub_1', 'cus_a'));
      await expect(records.insertSubscription(subscription('sub_2', 'cus_a'))).rejects.toMatchObject({ code: 'conflict' });
      await records.cancelActiveSubscription('sub_1', at('2026-11-10T00:00:00Z'));
      expect(await records.insertSubscription(subscription('sub_2', 'cus_a'))).toMatchObject({ id: 'sub_2', status: 'active' });
    });

    it('keeps one app per customer and name', async () => {
      await records.insertCustomer(customer('cus_a'));
      const app = await records.ensureApp('cus_a', 'mobile', 'app_1');
      expect(app).toMatchObject({ id: 'app_1', customerId: 'cus_a', name: 'mobile' });
      expect(await records.ensureApp('cus_a', 'mobile', 'app_2')).toEqual(app);
      await records.ensureApp('cus_a', 'backend', 'app_3');
      expect((await records.apps('cus_a')).map((a) => a.name)).toEqual(['backend', 'mobile']);
      expect(await records.apps('cus_missing')).toEqual([]);
    });

    it('stores keys, counts the unrevoked ones, revokes once and approves only pending keys', async () => {
      const { app, sub, key } = await keyable('cus_a');
      const active = await records.insertKey(key('key_1'));
      expect(active).toEqual({
        id: 'key_1',
        customerId: 'cus_a',
        appId: app.id,
        subscriptionId: sub.id,
        name: 'key key_1',
        prefix: 'key_1',
        status: 'active',
        createdAt: expect.any(String),
        revokedAt: null,
      });
      await records.insertKey(key('key_2', 'pending'));
      await records.insertKey(key('key_3'));
      expect(await records.countUnrevokedKeys(sub.id)).toBe(3);
      const revoked = await records.revokeKey('key_3', at('2026-11-03T00:00:00Z'));
      expect(revoked).toMatchObject({ status: 'revoked', revokedAt: '2026-11-03T00:00:00.000Z' });
      expect(await records.revokeKey('key_3', at('2026-11-04T00:00:00Z'))).toMatchObject({ revokedAt: '2026-11-03T00:00:00.000Z' });
      expect(await records.revokeKey('key_missing', at('2026-11-04T00:00:00Z'))).toBeUndefined();
      expect(await records.countUnrevokedKeys(sub.id)).toBe(2);
      expect(await records.activatePendingKey('key_1')).toBeUndefined();
      expect(await records.activatePendingKey('key_2')).toMatchObject({ id: 'key_2', status: 'active' });
      expect(await records.activatePendingKey('key_2')).toBeUndefined();
      expect(await records.key('key_2')).toMatchObject({ status: 'active' });
      expect(await records.key('key_missing')).toBeUndefined();
      expect((await records.keys('cus_a')).map((k) => k.id)).toEqual(['key_1', 'key_2', 'key_3']);
    });

    it('refuses a key hash stored twice as a conflict', async () => {
      const { key } = await keyable('cus_a');
      await records.insertKey(key('key_1'));
      const error = await records.insertKey({ ...key('key_2'), hash: 'hash_key_1' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TollgateError);
      expect(error).toMatchObject({ code: 'conflict' });
    });

    it('refuses writes for an erased customer as a conflict naming it', async () => {
      await records.insertCustomer(customer('cus_a'));
      await records.updateCustomer('cus_a', { status: 'erased' });
      await expect(records.updateCustomer('cus_a', { name: 'back' })).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('customer cus_a is erased') });
      await expect(records.insertSubscription(subscription('sub_1', 'cus_a'))).rejects.toMatchObject({ code: 'conflict' });
      await expect(records.ensureApp('cus_a', 'default', 'app_1')).rejects.toBeInstanceOf(TollgateError);
    });

    it('refuses a value it cannot store as invalid input', async () => {
      await expect(records.insertCustomer(customer('cus_a', 'nul\u0000name'))).rejects.toMatchObject({ code: 'invalid_request' });
      expect(await records.customer('cus_a')).toBeUndefined();
    });

    it('commits a transaction as a whole, or nothing of it', async () => {
      await records.transaction(async (tx) => {
        await tx.insertCustomer(customer('cus_a'));
        expect(await tx.customer('cus_a')).toBeDefined();
        // A nested transaction joins the open one.
        await tx.transaction((nested) => nested.insertSubscription(subscription('sub_1', 'cus_a')));
      });
      expect(await records.subscription('sub_1')).toBeDefined();
      await expect(
        records.transaction(async (tx) => {
          await tx.insertCustomer(customer('cus_b'));
          await tx.insertSubscription(subscription('sub_2', 'cus_b'));
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await records.customer('cus_b')).toBeUndefined();
      expect(await records.subscription('sub_2')).toBeUndefined();
    });
  });
}
