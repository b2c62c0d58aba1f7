import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RatingWork } from '../../src/billing/index.js';
import type { AccountRecords } from '../../src/identity/index.js';
import { at, customerWithSubscription } from './billing-fixtures.js';

/** A fresh, empty store per test; `accounts` writes the subscriptions whose changes mark them. */
export interface RatingWorkSubject {
  work: RatingWork;
  accounts: AccountRecords;
  close(): Promise<void>;
}

/** One contract for every RatingWork: marks from subscription writes, versions, due times. */
export function ratingWorkContract(name: string, open: () => Promise<RatingWorkSubject>): void {
  describe(`RatingWork: ${name}`, () => {
    let subject: RatingWorkSubject;
    let work: RatingWork;
    beforeEach(async () => {
      subject = await open();
      work = subject.work;
    });
    afterEach(() => subject.close());

    it('marks a new, re-planned or canceled subscription, and bumps the mark each time', async () => {
      expect(await work.pending(0)).toEqual(new Map());
      await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      const first = (await work.pending(0)).get('sub_a');
      expect(first).toEqual(expect.any(Number));
      await subject.accounts.setPlan('sub_a', 'enterprise');
      const second = (await work.pending(0)).get('sub_a')!;
      expect(second).toBeGreaterThan(first!);
      await subject.accounts.insertSubscriptionChange({
        subscriptionId: 'sub_a',
        kind: 'cancellation',
        fromPlanId: 'enterprise',
        toPlanId: null,
        effectiveAt: new Date('2026-11-20T00:00:00Z'),
      });
      expect((await work.pending(0)).get('sub_a')).toBeGreaterThan(second);
    });

    it('takes only the marks still at the versions read, and answers the subscriptions due by then', async () => {
      await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      await customerWithSubscription(subject.accounts, 'cus_b', 'sub_b');
      const read = (await work.pending(0)) as Map<string, number>;
      await subject.accounts.setPlan('sub_b', 'enterprise');
      await work.rated(read, [
        { subscriptionId: 'sub_a', dueAt: at('2026-12-01T00:00:00Z') },
        { subscriptionId: 'sub_b', dueAt: at('2026-12-01T01:00:00Z') },
      ]);
      expect([...(await work.pending(at('2026-11-30T00:00:00Z'))).keys()]).toEqual(['sub_b']);
      expect(await work.pending(at('2026-12-01T00:00:00Z'))).toEqual(new Map([['sub_b', read.get('sub_b')! + 1], ['sub_a', undefined]]));
      await work.rated(new Map(), [{ subscriptionId: 'sub_a', dueAt: undefined }]);
      expect([...(await work.pending(at('2027-01-01T00:00:00Z'))).keys()]).toEqual(['sub_b']);
    });

    it('works inside the caller\'s transaction', async () => {
      await subject.accounts.transaction(async (accounts, tx) => {
        await customerWithSubscription(accounts, 'cus_a', 'sub_a');
        const inside = work.within(tx);
        const read = (await inside.pending(0)) as Map<string, number>;
        expect([...read.keys()]).toEqual(['sub_a']);
        await inside.rated(read, []);
        expect(await inside.pending(0)).toEqual(new Map());
      });
    });
  });
}
