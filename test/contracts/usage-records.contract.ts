import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EndpointRollup, UsageRecords } from '../../src/metering/index.js';

export type StoredRollup = EndpointRollup & { customerId: string; periodStart: number };
export interface StoredDay {
  customerId: string;
  day: string;
  endpointId: string;
  calls: number;
  units: number;
  deniedCalls: number;
}

/** A fresh, empty store per test; `addRollup` and `addDay` write usage as metering leaves it. */
export interface UsageRecordsSubject {
  records: UsageRecords;
  addRollup(rollup: StoredRollup): Promise<void>;
  addDay(day: StoredDay): Promise<void>;
  close(): Promise<void>;
}

const november = Date.parse('2026-11-01T00:00:00Z');
const december = Date.parse('2026-12-01T00:00:00Z');

const rollup = (subscriptionId: string, periodStart: number, endpointId: string, calls: number, customerId = 'cus_a'): StoredRollup => ({
  customerId,
  subscriptionId,
  periodStart,
  endpointId,
  calls,
  units: calls * 2,
  billableCalls: calls - 1,
  billableUnits: calls * 2 - 2,
  deniedCalls: 3,
  requestBytes: calls * 100,
  responseBytes: calls * 1_000,
});

/** One contract for every UsageRecords: the rollups the usage reports read. */
export function usageRecordsContract(name: string, open: () => Promise<UsageRecordsSubject>): void {
  describe(`UsageRecords: ${name}`, () => {
    let subject: UsageRecordsSubject;
    let records: UsageRecords;
    beforeEach(async () => {
      subject = await open();
      records = subject.records;
    });
    afterEach(() => subject.close());

    it('reads the rollups of the asked subscription periods, by subscription and endpoint', async () => {
      const wanted = [rollup('sub_b', november, 'get-pet', 4), rollup('sub_a', november, 'list-pets', 6), rollup('sub_a', november, '', 2)];
      for (const row of [...wanted, rollup('sub_a', december, 'get-pet', 9), rollup('sub_a', november, 'get-pet', 5, 'cus_b')]) await subject.addRollup(row);
      const rows = await records.rollups('cus_a', [
        { subscriptionId: 'sub_a', periodStart: november },
        { subscriptionId: 'sub_b', periodStart: november },
      ]);
      const strip = ({ customerId: _c, periodStart: _p, ...row }: StoredRollup): EndpointRollup => row;
      expect(rows).toEqual([strip(wanted[2]!), strip(wanted[1]!), strip(wanted[0]!)]);
      expect(await records.rollups('cus_a', [{ subscriptionId: 'sub_a', periodStart: december }])).toEqual([strip(rollup('sub_a', december, 'get-pet', 9))]);
      expect(await records.rollups('cus_a', [])).toEqual([]);
    });

    it('reads daily usage over a range of days, inclusive, by day and endpoint', async () => {
      const day = (date: string, endpointId: string, calls: number, customerId = 'cus_a'): StoredDay => ({ customerId, day: date, endpointId, calls, units: calls * 2, deniedCalls: 1 });
      for (const row of [day('2026-11-03', 'get-pet', 4), day('2026-11-01', 'list-pets', 2), day('2026-11-01', '', 1), day('2026-11-04', 'get-pet', 8), day('2026-11-02', 'get-pet', 5, 'cus_b')]) {
        await subject.addDay(row);
      }
      expect(await records.daily('cus_a', '2026-11-01', '2026-11-03')).toEqual([
        { day: '2026-11-01', endpointId: null, calls: 1, units: 2, deniedCalls: 1 },
        { day: '2026-11-01', endpointId: 'list-pets', calls: 2, units: 4, deniedCalls: 1 },
        { day: '2026-11-03', endpointId: 'get-pet', calls: 4, units: 8, deniedCalls: 1 },
      ]);
      expect(await records.daily('cus_a', '2026-11-05', '2026-11-30')).toEqual([]);
    });
  });
}
