import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StripeOutbox } from '../../src/stripe/index.js';

/** A fresh, empty outbox per test; `close` removes whatever the factory created. */
export interface StripeOutboxSubject {
  outbox: StripeOutbox;
  close(): Promise<void>;
}

/** One contract for every StripeOutbox: what the sync loop, the admin routes and the gauge rely on. */
export function stripeOutboxContract(name: string, open: () => Promise<StripeOutboxSubject>): void {
  describe(`StripeOutbox: ${name}`, () => {
    let subject: StripeOutboxSubject;
    let outbox: StripeOutbox;
    beforeEach(async () => {
      subject = await open();
      outbox = subject.outbox;
    });
    afterEach(() => subject.close());

    it('queues work once per kind and subject, due at once; queueing it again re-arms it', async () => {
      await outbox.enqueue('customer.sync', 'cus_a');
      const item = await outbox.find('customer.sync', 'cus_a');
      expect(item).toEqual({
        id: expect.any(String),
        kind: 'customer.sync',
        subjectId: 'cus_a',
        status: 'pending',
        revision: expect.any(Number),
        attempts: 0,
        keyGeneration: 0,
        nextAttemptAt: expect.any(String),
        lastError: null,
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      expect(await outbox.get(item!.id)).toEqual(item);
      expect(await outbox.due(10)).toEqual([item]);
      await outbox.enqueue('customer.sync', 'cus_a');
      const again = await outbox.find('customer.sync', 'cus_a');
      expect(again).toMatchObject({ id: item!.id, status: 'pending', revision: item!.revision + 1 });
      expect(await outbox.find('invoice.finalized', 'cus_a')).toBeUndefined();
      expect(await outbox.get('999999')).toBeUndefined();
    });

    it('completes work unless it was re-armed while it ran', async () => {
      await outbox.enqueue('customer.sync', 'cus_a');
      await outbox.enqueue('invoice.finalized', 'in_1');
      const [first, second] = await outbox.due(10);
      await outbox.complete(first!);
      expect(await outbox.get(first!.id)).toMatchObject({ status: 'done', attempts: 1, lastError: null });
      await outbox.enqueue(second!.kind, second!.subjectId);
      await outbox.complete(second!);
      expect(await outbox.get(second!.id)).toMatchObject({ status: 'pending', attempts: 0 });
      expect((await outbox.due(10)).map((item) => item.id)).toEqual([second!.id]);
      expect(await outbox.backlog()).toEqual({ pending: 1, dead: 0 });
    });

    it('reschedules a failed attempt, renewing keys when asked', async () => {
      await outbox.enqueue('usage.report', 'sub_1@2026-11-01T00:00:00.000Z');
      const [item] = await outbox.due(10);
      await outbox.reschedule(item!, 3_600_000, 'HTTP 500', false);
      expect(await outbox.due(10)).toEqual([]);
      expect(await outbox.get(item!.id)).toMatchObject({ status: 'pending', attempts: 1, lastError: 'HTTP 500', keyGeneration: 0 });
      await outbox.reschedule(item!, 0, 'idempotency key failed for good', true);
      const [retry] = await outbox.due(10);
      expect(retry).toMatchObject({ id: item!.id, attempts: 2, keyGeneration: 1, lastError: 'idempotency key failed for good' });
    });

    it('buries work in the dead letters and re-arms it, one or all', async () => {
      for (const subject of ['top_1', 'top_2', 'top_3']) await outbox.enqueue('topup.checkout', subject);
      const [one, two, three] = await outbox.due(10);
      await outbox.bury(one!, 'card declined');
      await outbox.bury(two!, 'no such customer');
      expect(await outbox.get(one!.id)).toMatchObject({ status: 'dead', attempts: 1, lastError: 'card declined' });
      expect((await outbox.due(10)).map((item) => item.id)).toEqual([three!.id]);
      expect(await outbox.backlog()).toEqual({ pending: 1, dead: 2 });
      // A re-armed item is not buried by the attempt that started before it.
      await outbox.enqueue(three!.kind, three!.subjectId);
      await outbox.bury(three!, 'stale');
      expect(await outbox.get(three!.id)).toMatchObject({ status: 'pending' });

      expect((await outbox.retryDead(one!.id)).map((item) => [item.id, item.status, item.attempts])).toEqual([[one!.id, 'pending', 0]]);
      expect(await outbox.retryDead(one!.id)).toEqual([]);
      expect((await outbox.retryDead()).map((item) => item.id)).toEqual([two!.id]);
      expect(await outbox.backlog()).toEqual({ pending: 3, dead: 0 });
    });

    it('lists work by status and kind, after a cursor', async () => {
      await outbox.enqueue('customer.sync', 'cus_a');
      await outbox.enqueue('invoice.finalized', 'in_1');
      await outbox.enqueue('customer.sync', 'cus_b');
      const [a, inv, b] = await outbox.list({ limit: 10 });
      expect([a, inv, b].map((item) => item?.subjectId)).toEqual(['cus_a', 'in_1', 'cus_b']);
      await outbox.bury(inv!, 'gone');
      expect((await outbox.list({ limit: 10, kind: 'customer.sync' })).map((item) => item.subjectId)).toEqual(['cus_a', 'cus_b']);
      expect((await outbox.list({ limit: 10, status: 'dead' })).map((item) => item.subjectId)).toEqual(['in_1']);
      expect((await outbox.list({ limit: 10, status: 'dead', kind: 'customer.sync' }))).toEqual([]);
      expect((await outbox.list({ limit: 1, after: a!.id })).map((item) => item.subjectId)).toEqual(['in_1']);
    });

    it('refuses a value it cannot store as invalid input', async () => {
      await expect(outbox.enqueue('customer.sync', 'cus_\u0000')).rejects.toMatchObject({ code: 'invalid_request' });
      expect(await outbox.backlog()).toEqual({ pending: 0, dead: 0 });
    });
  });
}
