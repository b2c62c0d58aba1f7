import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TollgateError } from '../src/kernel/errors.js';
import { nextPeriod, periodContaining, periodContains, periodStart, type BillingPeriod } from '../src/rating/period.js';

const at = (iso: string) => Date.parse(iso);
const DAY_MS = 86_400_000;
const timeOfDay = (instant: number) => ((instant % DAY_MS) + DAY_MS) % DAY_MS;
const iso = (period: BillingPeriod) => ({
  start: new Date(period.start).toISOString(),
  end: new Date(period.end).toISOString(),
});

describe('monthly periods anchored to the subscription start', () => {
  it('keeps the anchor day and time of day', () => {
    const anchor = at('2025-03-15T09:30:00.000Z');
    expect(iso(periodContaining(anchor, anchor))).toEqual({
      start: '2025-03-15T09:30:00.000Z',
      end: '2025-04-15T09:30:00.000Z',
    });
    expect(iso(periodContaining(anchor, at('2025-04-15T09:29:59.999Z')))).toEqual({
      start: '2025-03-15T09:30:00.000Z',
      end: '2025-04-15T09:30:00.000Z',
    });
    expect(iso(periodContaining(anchor, at('2025-04-15T09:30:00.000Z')))).toEqual({
      start: '2025-04-15T09:30:00.000Z',
      end: '2025-05-15T09:30:00.000Z',
    });
  });

  it('clamps an anchor on the 31st to the end of shorter months and returns to the 31st (leap year)', () => {
    const anchor = at('2024-01-31T10:00:00.000Z');
    const starts = [0, 1, 2, 3, 4, 12, 13].map((index) => new Date(periodStart(anchor, index)).toISOString());
    expect(starts).toEqual([
      '2024-01-31T10:00:00.000Z',
      '2024-02-29T10:00:00.000Z',
      '2024-03-31T10:00:00.000Z',
      '2024-04-30T10:00:00.000Z',
      '2024-05-31T10:00:00.000Z',
      '2025-01-31T10:00:00.000Z',
      '2025-02-28T10:00:00.000Z',
    ]);
  });

  it('walks Jan 31 → Feb 28 → Mar 31 with nextPeriod in a common year', () => {
    const anchor = at('2025-01-31T00:00:00.000Z');
    const january = periodContaining(anchor, anchor);
    const february = nextPeriod(anchor, january);
    const march = nextPeriod(anchor, february);
    expect([january, february, march].map(iso)).toEqual([
      { start: '2025-01-31T00:00:00.000Z', end: '2025-02-28T00:00:00.000Z' },
      { start: '2025-02-28T00:00:00.000Z', end: '2025-03-31T00:00:00.000Z' },
      { start: '2025-03-31T00:00:00.000Z', end: '2025-04-30T00:00:00.000Z' },
    ]);
  });

  it('crosses year boundaries and handles instants before the anchor', () => {
    const anchor = at('2024-12-20T00:00:00.000Z');
    expect(iso(periodContaining(anchor, at('2025-01-05T00:00:00.000Z')))).toEqual({
      start: '2024-12-20T00:00:00.000Z',
      end: '2025-01-20T00:00:00.000Z',
    });
    expect(iso(periodContaining(anchor, at('2024-11-01T00:00:00.000Z')))).toEqual({
      start: '2024-10-20T00:00:00.000Z',
      end: '2024-11-20T00:00:00.000Z',
    });
  });

  it('gives calendar months for an anchor on the 1st at midnight', () => {
    const anchor = at('2025-01-01T00:00:00.000Z');
    expect(iso(periodContaining(anchor, at('2025-04-16T12:00:00.000Z')))).toEqual({
      start: '2025-04-01T00:00:00.000Z',
      end: '2025-05-01T00:00:00.000Z',
    });
  });

  it('rejects non-instants', () => {
    expect(() => periodContaining(Number.NaN, 0)).toThrow(TollgateError);
    expect(() => periodContaining(0, 1.5)).toThrow(/at 1.5 is not an epoch-millisecond instant/);
    expect(() => periodStart(0, 0.5)).toThrow(TollgateError);
  });
});

describe('period properties', () => {
  const instant = fc.integer({ min: at('1970-01-01T00:00:00.000Z'), max: at('2200-01-01T00:00:00.000Z') });

  it('consecutive periods tile time with no gaps or overlaps, and each contains its start', () => {
    fc.assert(
      fc.property(instant, instant, fc.integer({ min: 1, max: 30 }), (anchor, from, count) => {
        let period = periodContaining(anchor, from);
        expect(periodContains(period, from)).toBe(true);
        for (let step = 0; step < count; step += 1) {
          expect(period.start).toBeLessThan(period.end);
          expect(periodContains(period, period.start)).toBe(true);
          expect(periodContains(period, period.end)).toBe(false);
          expect(periodContaining(anchor, period.start)).toEqual(period);
          expect(periodContaining(anchor, period.end - 1)).toEqual(period);
          const next = nextPeriod(anchor, period);
          expect(next.start).toBe(period.end);
          period = next;
        }
      }),
    );
  });

  it('every period starts on the anchor day, or the last day of a shorter month, at the anchor time', () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: -600, max: 600 }), (anchor, index) => {
        const anchorDate = new Date(anchor);
        const start = new Date(periodStart(anchor, index));
        const lastDayOfMonth = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 0)).getUTCDate();
        expect(start.getUTCDate()).toBe(Math.min(anchorDate.getUTCDate(), lastDayOfMonth));
        expect(timeOfDay(start.getTime())).toBe(timeOfDay(anchor));
        const years = start.getUTCFullYear() - anchorDate.getUTCFullYear();
        expect(years * 12 + start.getUTCMonth() - anchorDate.getUTCMonth()).toBe(index);
      }),
    );
  });

  it('a period lasts between 28 and 31 days', () => {
    fc.assert(
      fc.property(instant, instant, (anchor, when) => {
        const { start, end } = periodContaining(anchor, when);
        const days = (end - start) / DAY_MS;
        expect(days).toBeGreaterThanOrEqual(28);
        expect(days).toBeLessThanOrEqual(31);
      }),
    );
  });
});
