import Stripe from 'stripe';
import type { Catalog } from '../catalog/index.js';
import { type Clock, invalid, notFound } from '../kernel/index.js';
import { periodContaining } from '../rating/index.js';
import type { StripeCustomers } from './customers.js';
import { meterModePlanIds } from './invoices.js';
import type { StripeRecords } from './records.js';
import type { StripeWork } from './work.js';

const day = 86_400_000;
/** Stripe takes meter events up to 35 days old; a margin keeps a report sent near the edge from being refused. */
const meterEventMaxAgeMs = 35 * day - 3_600_000;
/** Periods older than this have nothing left that Stripe would take. */
const reportableHistoryMs = 40 * day;

/** Our meter event identifiers: `tollgate:<subscription>:<period start, unix seconds>:<cumulative units sent>`. */
const meterEventIdentifier = (subscriptionId: string, periodStartSeconds: string, sending: string) =>
  `tollgate:${subscriptionId}:${periodStartSeconds}:${sending}`;

/** The subscription and period start (whole seconds) of one of our meter event identifiers; undefined if not ours. */
export function parseMeterEventIdentifier(identifier: string): { subscriptionId: string; periodStart: Date } | undefined {
  const match = /^tollgate:(.+):(\d+):\d+$/.exec(identifier);
  return match ? { subscriptionId: match[1]!, periodStart: new Date(Number(match[2]) * 1000) } : undefined;
}

/** A subscription period of usage, as the subject of a `usage.report` work item: `<subscription>@<period start>`. */
const usageSubject = (subscriptionId: string, periodStart: Date) => `${subscriptionId}@${periodStart.toISOString()}`;

function parseUsageSubject(subject: string): { subscriptionId: string; periodStart: Date } {
  const at = subject.lastIndexOf('@');
  return { subscriptionId: subject.slice(0, at), periodStart: new Date(subject.slice(at + 1)) };
}

/**
 * Meter mode: for plans with `stripe.meter_event_name`, billable usage goes to Stripe Billing Meters as the growth
 * of each subscription period's total since the last report. The total being reported is pinned before it is
 * sent, so a retry re-sends the same event with the same `identifier` (Stripe's de-duplication key for meter
 * events) and Stripe counts it once.
 */
export class StripeUsageReports {
  constructor(
    private readonly records: StripeRecords,
    private readonly stripe: Stripe,
    private readonly customers: StripeCustomers,
    private readonly catalog: () => Catalog,
    private readonly clock: Clock,
  ) {}

  /** Queues a report for each meter-mode subscription period whose usage grew since it was last reported. */
  async enqueueGrown(): Promise<void> {
    const meteredPlans = meterModePlanIds(this.catalog());
    if (meteredPlans.length === 0) return;
    const grown = await this.records.grownUsagePeriods(meteredPlans, new Date(this.clock.now() - reportableHistoryMs));
    for (const period of grown) await this.records.enqueue('usage.report', usageSubject(period.subscriptionId, period.periodStart));
  }

  /** `usage.report`: sends one meter event for the period's usage not reported yet. */
  async report(work: StripeWork): Promise<void> {
    const { subscriptionId, periodStart } = parseUsageSubject(work.item.subjectId);
    const subscription = await this.records.subscriptionToReport(subscriptionId);
    if (!subscription) throw notFound('subscription', subscriptionId);
    const eventName = this.catalog().plan(subscription.planId)?.stripe?.meter_event_name;
    if (!eventName) return; // the plan left meter mode: Tollgate bills its usage now
    const pinned = await this.records.pinUsageReport(subscriptionId, periodStart, this.eventTimestamp(subscription.periodAnchor, periodStart));
    if (!pinned) return;
    if (this.clock.now() - pinned.timestamp * 1000 > meterEventMaxAgeMs) {
      throw invalid('timestamp', `usage of the period starting ${periodStart.toISOString()} is older than Stripe's 35-day meter event window`);
    }
    const stripeCustomerId = await this.customers.ensure(subscription.customerId, work);
    const periodStartSeconds = String(Math.floor(periodStart.getTime() / 1000));
    const sending = pinned.sending.toString();
    try {
      await this.stripe.billing.meterEvents.create(
        {
          event_name: eventName,
          payload: { stripe_customer_id: stripeCustomerId, value: (pinned.sending - pinned.reported).toString() },
          identifier: meterEventIdentifier(subscriptionId, periodStartSeconds, sending),
          timestamp: pinned.timestamp,
        },
        { idempotencyKey: work.key('usage', subscriptionId, periodStartSeconds, sending) },
      );
    } catch (error) {
      if (!isDuplicateMeterEvent(error)) throw error;
    }
    await this.records.markUsageReported(subscriptionId, periodStart, pinned.sending);
  }

  /** Now, or the period's last second if it is over, so the usage lands in that period. */
  private eventTimestamp(anchor: Date, periodStart: Date): number {
    const periodEnd = periodContaining(anchor.getTime(), periodStart.getTime()).end;
    return Math.floor(Math.min(this.clock.now(), periodEnd - 1_000) / 1000);
  }
}

/**
 * Stripe already has an event with this identifier: an earlier attempt's report arrived. Stripe's error is not
 * documented to name the parameter, so any refusal that says the identifier (or the event) exists already counts.
 */
export function isDuplicateMeterEvent(error: unknown): boolean {
  if (!(error instanceof Stripe.errors.StripeInvalidRequestError)) return false;
  const code = error.code ?? '';
  const message = error.message ?? '';
  if (/duplicate|already_exists/i.test(code)) return true;
  const aboutIdentifier = error.param === 'identifier' || /identifier/i.test(message);
  return aboutIdentifier && /already exists|duplicate|already been (used|processed)|must be unique/i.test(message);
}

/** A meter event Stripe refused after accepting it (a sample of its meter error report). */
export interface MeterEventFailure {
  identifier: string;
  code: string;
  message: string;
}

/**
 * Marks the usage reports of refused meter events failed (`failed_at`, `failure`), for reconcile to list; returns
 * the ones that were ours. The usage stays counted as reported: sending it again needs the cause fixed in Stripe
 * first (a meter, a customer), and the meter totals in reconcile show what Stripe is missing.
 */
export async function markUsageReportsFailed(
  records: Pick<StripeRecords, 'markUsageReportFailed'>,
  failures: readonly MeterEventFailure[],
  at: Date,
): Promise<MeterEventFailure[]> {
  const ours: MeterEventFailure[] = [];
  for (const failure of failures) {
    const report = parseMeterEventIdentifier(failure.identifier);
    if (!report) continue;
    // The identifier holds the period start in whole seconds.
    await records.markUsageReportFailed(report.subscriptionId, report.periodStart, at, `${failure.code}: ${failure.message}`.slice(0, 1000));
    ours.push(failure);
  }
  return ours;
}
