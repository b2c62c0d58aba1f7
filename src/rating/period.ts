/**
 * Billing period math, pure and in UTC. Instants are epoch milliseconds; a period is half-open: [start, end).
 *
 * Monthly periods are anchored to an instant (usually the subscription start), like Stripe's billing_cycle_anchor:
 * period k starts k months after the anchor, same time of day, on the anchor's day of month or the last day of a
 * shorter month. Every start is computed from the anchor, never from the previous period, so an anchor on the 31st
 * gives Jan 31 → Feb 28 (29) → Mar 31, not Mar 28.
 */
import { invalid } from '../kernel/index.js';

export interface BillingPeriod {
  /** Inclusive, epoch ms. */
  start: number;
  /** Exclusive, epoch ms. */
  end: number;
}

/** Start of the period `index` months after the one starting at `anchor` (negative indexes go back). */
export function periodStart(anchor: number, index: number): number {
  assertInstant(anchor, 'anchor');
  if (!Number.isSafeInteger(index)) throw invalid('index', `period index ${index} is not an integer`);
  const anchorDate = new Date(anchor);
  const year = anchorDate.getUTCFullYear();
  const month = anchorDate.getUTCMonth() + index;
  const start = new Date(0);
  // Day 0 of the next month is the last day of the target one. setUTCFullYear normalizes month overflow and,
  // unlike Date.UTC, does not map years 0-99 to 1900-1999.
  start.setUTCFullYear(year, month + 1, 0);
  start.setUTCFullYear(year, month, Math.min(anchorDate.getUTCDate(), start.getUTCDate()));
  start.setUTCHours(
    anchorDate.getUTCHours(),
    anchorDate.getUTCMinutes(),
    anchorDate.getUTCSeconds(),
    anchorDate.getUTCMilliseconds(),
  );
  return start.getTime();
}

/** The anchored monthly period that contains `at` (which may be before the anchor). */
export function periodContaining(anchor: number, at: number): BillingPeriod {
  assertInstant(at, 'at');
  const anchorDate = new Date(anchor);
  const atDate = new Date(at);
  // Period `index` starts in the same calendar month as `at`; if that start is still ahead, `at` is in the one before.
  let index =
    (atDate.getUTCFullYear() - anchorDate.getUTCFullYear()) * 12 + (atDate.getUTCMonth() - anchorDate.getUTCMonth());
  if (periodStart(anchor, index) > at) index -= 1;
  return { start: periodStart(anchor, index), end: periodStart(anchor, index + 1) };
}

/** The period right after `period`, which must be one of the anchor's periods. */
export function nextPeriod(anchor: number, period: BillingPeriod): BillingPeriod {
  return periodContaining(anchor, period.end);
}

/** Whether `at` falls in the half-open period. */
export function periodContains(period: BillingPeriod, at: number): boolean {
  return period.start <= at && at < period.end;
}

function assertInstant(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || Number.isNaN(new Date(value).getTime())) {
    throw invalid(name, `${name} ${value} is not an epoch-millisecond instant`);
  }
}
