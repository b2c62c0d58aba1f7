import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertRecords, UsageAlert } from '../../src/alerts/index.js';

/** Rows of other modules the alert records read, written by the factory's own means. */
export interface AlertFixtures {
  customer(id: string): Promise<void>;
  subscription(id: string, customerId: string, planId: string, options?: { canceled?: boolean; periodAnchor?: Date }): Promise<void>;
  usage(customerId: string, subscriptionId: string, periodStart: Date, endpointId: string, units: number): Promise<void>;
  invoice(id: string, customerId: string, subscriptionId: string, periodStart: Date, total: bigint, currency: string): Promise<void>;
  walletEntry(customerId: string, currency: string, amount: bigint, reference: string): Promise<void>;
  /** A wallet with no entries yet. */
  wallet(customerId: string, currency: string): Promise<void>;
}

/** A fresh, empty store per test; `close` removes whatever the factory created. */
export interface AlertRecordsSubject {
  records: AlertRecords;
  fixtures: AlertFixtures;
  close(): Promise<void>;
}

const at = (iso: string) => new Date(iso);
const november = at('2026-11-01T00:00:00Z');
const december = at('2026-12-01T00:00:00Z');

const alert = (id: string, customerId: string, subscriptionId: string, percent = 80, periodStart = november): UsageAlert => ({
  id,
  customerId,
  subscriptionId,
  planId: 'pro',
  period: { start: periodStart.getTime(), end: periodStart.getTime() + 30 * 86_400_000 },
  type: 'quota.threshold_reached',
  threshold: { quota_percent: percent },
  observed: { used_units: 810, quota_units: 1000, percent: 81 },
  firedAt: at('2026-11-15T00:00:00Z').getTime() + percent,
});

/** One contract for every AlertRecords: what evaluation, delivery and the webhook rules rely on. */
export function alertRecordsContract(name: string, open: () => Promise<AlertRecordsSubject>): void {
  describe(`AlertRecords: ${name}`, () => {
    let subject: AlertRecordsSubject;
    let records: AlertRecords;
    let fixtures: AlertFixtures;
    beforeEach(async () => {
      subject = await open();
      ({ records, fixtures } = subject);
    });
    afterEach(() => subject.close());

    /** A customer with a subscription to `pro`, and a webhook when asked. */
    async function subscribed(customerId: string, options: { webhook?: boolean } = {}) {
      await fixtures.customer(customerId);
      await fixtures.subscription(`sub_${customerId}`, customerId, 'pro');
      if (options.webhook) await records.setWebhook(customerId, `https://hooks.example/${customerId}`, `whsec_${customerId}`);
      return `sub_${customerId}`;
    }

    /** Fires one alert of the customer and returns its delivery. */
    async function delivered(customerId: string) {
      const subscriptionId = await subscribed(customerId, { webhook: true });
      await records.insertAlerts([alert(`alrt_${customerId}`, customerId, subscriptionId)]);
      await records.queueDeliveries([`alrt_${customerId}`]);
      const [delivery] = await records.deliveries({ customerId, limit: 10 });
      return delivery!;
    }

    it('watches the active subscriptions of the given plans, by id', async () => {
      for (const id of ['cus_a', 'cus_b', 'cus_c']) await fixtures.customer(id);
      await fixtures.subscription('sub_2', 'cus_a', 'pro', { periodAnchor: at('2026-10-15T00:00:00Z') });
      await fixtures.subscription('sub_1', 'cus_b', 'basic');
      await fixtures.subscription('sub_3', 'cus_c', 'pro', { canceled: true });
      await fixtures.subscription('sub_4', 'cus_c', 'free');
      expect(await records.watchedSubscriptions(['pro', 'basic'])).toEqual([
        { id: 'sub_1', customerId: 'cus_b', planId: 'basic', periodAnchor: expect.any(Date) },
        { id: 'sub_2', customerId: 'cus_a', planId: 'pro', periodAnchor: at('2026-10-15T00:00:00Z') },
      ]);
      expect(await records.watchedSubscriptions([])).toEqual([]);
    });

    it('reads a period’s units, invoices and wallet balances', async () => {
      const subA = await subscribed('cus_a');
      const subB = await subscribed('cus_b');
      await fixtures.usage('cus_a', subA, november, 'ep_1', 500);
      await fixtures.usage('cus_a', subA, november, 'ep_2', 310);
      await fixtures.usage('cus_a', subA, december, 'ep_1', 7);
      await fixtures.usage('cus_b', subB, december, 'ep_1', 9);
      const novemberOf = (customerId: string, subscriptionId: string) => ({ customerId, subscriptionId, periodStart: november });
      expect(await records.periodUnits([novemberOf('cus_a', subA), novemberOf('cus_b', subB)])).toEqual([{ subscriptionId: subA, units: 810n }]);
      expect(await records.periodUnits([])).toEqual([]);

      await fixtures.invoice('in_a', 'cus_a', subA, november, 12_345n, 'USD');
      await fixtures.invoice('in_b', 'cus_b', subB, december, 1n, 'EUR');
      expect(await records.periodInvoices([novemberOf('cus_a', subA), novemberOf('cus_b', subB)])).toEqual([{ id: 'in_a', subscriptionId: subA, total: 12_345n, currency: 'USD' }]);

      await fixtures.walletEntry('cus_a', 'USD', 1_000n, 'top_1');
      await fixtures.walletEntry('cus_a', 'USD', -250n, 'use_1');
      await fixtures.wallet('cus_b', 'EUR');
      const balances = await records.walletBalances(['cus_a', 'cus_b', 'cus_missing']);
      expect(balances.sort((x, y) => x.customerId.localeCompare(y.customerId))).toEqual([
        { customerId: 'cus_a', currency: 'USD', balance: 750n },
        { customerId: 'cus_b', currency: 'EUR', balance: 0n },
      ]);
      expect(await records.walletBalances([])).toEqual([]);
    });

    it('records an alert once per threshold and period, and queues deliveries only to webhooks', async () => {
      const subA = await subscribed('cus_a', { webhook: true });
      const subB = await subscribed('cus_b');
      const first = alert('alrt_1', 'cus_a', subA);
      expect(await records.insertAlerts([first, alert('alrt_2', 'cus_b', subB)])).toEqual([first, alert('alrt_2', 'cus_b', subB)]);
      // The same threshold again, under another id: already fired this period.
      expect(await records.insertAlerts([alert('alrt_3', 'cus_a', subA), alert('alrt_4', 'cus_a', subA, 100)])).toEqual([alert('alrt_4', 'cus_a', subA, 100)]);
      expect(await records.insertAlerts([alert('alrt_5', 'cus_a', subA, 80, december)])).toHaveLength(1);
      await records.queueDeliveries(['alrt_1', 'alrt_2', 'alrt_4']);
      await records.queueDeliveries([]);

      const listed = await records.customerAlerts('cus_a', 10);
      // Newest first; alerts fired at the same time by id.
      expect(listed.map((row) => row.alert.id)).toEqual(['alrt_4', 'alrt_1', 'alrt_5']);
      expect(listed.find((row) => row.alert.id === 'alrt_1')).toEqual({ alert: first, delivery: { id: expect.any(String), status: 'pending', attempts: 0 } });
      expect(listed.find((row) => row.alert.id === 'alrt_5')!.delivery).toBeNull();
      expect(await records.customerAlerts('cus_b', 10)).toEqual([{ alert: alert('alrt_2', 'cus_b', subB), delivery: null }]);
      expect(await records.customerAlerts('cus_a', 1)).toHaveLength(1);
      expect(await records.customerExists('cus_b')).toBe(true);
      expect(await records.customerExists('cus_missing')).toBe(false);
    });

    it('hands out due deliveries with their webhook, and counts attempts to delivered or dead', async () => {
      const delivery = await delivered('cus_a');
      expect(delivery).toMatchObject({ alertId: 'alrt_cus_a', customerId: 'cus_a', subscriptionId: 'sub_cus_a', type: 'quota.threshold_reached', periodStart: november.toISOString(), status: 'pending', attempts: 0, lastError: null });
      const [due] = await records.dueDeliveries(10);
      expect(due).toEqual({ id: delivery.id, attempts: 0, alert: alert('alrt_cus_a', 'cus_a', 'sub_cus_a'), webhook: { url: 'https://hooks.example/cus_a', secret: 'whsec_cus_a' } });

      await records.rescheduleDelivery(delivery.id, 3_600_000, { statusCode: 503, error: 'HTTP 503' });
      expect(await records.dueDeliveries(10)).toEqual([]);
      expect(await records.delivery(delivery.id)).toMatchObject({ status: 'pending', attempts: 1, lastStatusCode: 503, lastError: 'HTTP 503', lastAttemptAt: expect.any(String) });
      await records.rescheduleDelivery(delivery.id, 0, { statusCode: null, error: 'no answer' });
      expect((await records.dueDeliveries(10)).map((d) => d.attempts)).toEqual([2]);
      await records.markDelivered(delivery.id, 204);
      expect(await records.delivery(delivery.id)).toMatchObject({ status: 'delivered', attempts: 3, lastStatusCode: 204, lastError: 'no answer', deliveredAt: expect.any(String) });
      // Only pending deliveries change.
      await records.buryDelivery(delivery.id, { statusCode: 500, error: 'late' });
      expect(await records.delivery(delivery.id)).toMatchObject({ status: 'delivered', attempts: 3 });
      expect(await records.delivery('999999')).toBeUndefined();
    });

    it('buries a delivery and re-arms only dead ones', async () => {
      const delivery = await delivered('cus_a');
      expect(await records.retryDeadDelivery(delivery.id)).toBeUndefined();
      await records.buryDelivery(delivery.id, { statusCode: 410, error: 'HTTP 410' });
      expect(await records.delivery(delivery.id)).toMatchObject({ status: 'dead', attempts: 1, lastStatusCode: 410 });
      expect(await records.dueDeliveries(10)).toEqual([]);
      expect(await records.retryDeadDelivery(delivery.id)).toMatchObject({ id: delivery.id, status: 'pending', attempts: 0, customerId: 'cus_a' });
      expect((await records.dueDeliveries(10)).map((d) => d.id)).toEqual([delivery.id]);
    });

    it('lists deliveries by customer and status, after a cursor; a removed webhook leaves them without one', async () => {
      const a = await delivered('cus_a');
      const b = await delivered('cus_b');
      await records.buryDelivery(b.id, { statusCode: null, error: 'gone' });
      expect((await records.deliveries({ limit: 10 })).map((d) => d.id)).toEqual([a.id, b.id]);
      expect((await records.deliveries({ limit: 10, after: a.id })).map((d) => d.id)).toEqual([b.id]);
      expect((await records.deliveries({ limit: 1 })).map((d) => d.id)).toEqual([a.id]);
      expect((await records.deliveries({ status: 'dead', limit: 10 })).map((d) => d.id)).toEqual([b.id]);
      expect(await records.deliveries({ customerId: 'cus_a', status: 'dead', limit: 10 })).toEqual([]);
      expect(await records.removeWebhook('cus_a')).toBe(true);
      expect((await records.dueDeliveries(10)).map((d) => [d.id, d.webhook])).toEqual([[a.id, undefined]]);
    });

    it('sets, replaces and removes a customer’s webhook', async () => {
      await fixtures.customer('cus_a');
      expect(await records.setWebhook('cus_missing', 'https://hooks.example/x', 'whsec_x')).toBeUndefined();
      const set = await records.setWebhook('cus_a', 'https://hooks.example/a', 'whsec_1');
      expect(set).toEqual({ customerId: 'cus_a', url: 'https://hooks.example/a', secret: 'whsec_1', createdAt: expect.any(String), updatedAt: expect.any(String) });
      const replaced = await records.setWebhook('cus_a', 'https://hooks.example/b', 'whsec_2');
      expect(replaced).toMatchObject({ url: 'https://hooks.example/b', secret: 'whsec_2', createdAt: set!.createdAt });
      expect(await records.webhook('cus_a')).toEqual(replaced);
      expect(await records.removeWebhook('cus_a')).toBe(true);
      expect(await records.removeWebhook('cus_a')).toBe(false);
      expect(await records.webhook('cus_a')).toBeUndefined();
    });

    it('refuses a value it cannot store as invalid input', async () => {
      await fixtures.customer('cus_a');
      await expect(records.setWebhook('cus_a', 'https://hooks.example/\u0000', 'whsec_1')).rejects.toMatchObject({ code: 'invalid_request' });
    });

    it('commits a transaction as a whole, or nothing of it', async () => {
      const subA = await subscribed('cus_a', { webhook: true });
      await expect(
        records.transaction(async (tx) => {
          await tx.insertAlerts([alert('alrt_1', 'cus_a', subA)]);
          await tx.queueDeliveries(['alrt_1']);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await records.customerAlerts('cus_a', 10)).toEqual([]);
      await records.transaction(async (tx) => {
        await tx.insertAlerts([alert('alrt_1', 'cus_a', subA)]);
        await tx.queueDeliveries(['alrt_1']);
      });
      expect((await records.customerAlerts('cus_a', 10)).map((row) => row.delivery?.status)).toEqual(['pending']);
    });
  });
}
