import Stripe from 'stripe';
import type { Catalog } from '../catalog/index.js';
import { type Clock, invalid, notFound } from '../kernel/index.js';
import { periodContaining } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import type { StripeCustomers } from './customers.js';
import { meterModePlanIds } from './invoices.js';
import { enqueueStripeWork } from './outbox.js';
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
    private readonly db: Queryable,
    private readonly stripe: Stripe,
    private readonly customers: StripeCustomers,
    private readonly catalog: () => Catalog,
    private readonly clock: Clock,
  ) {}

  /** Queues a report for each meter-mode subscription period whose usage grew since it was last reported. */
  async enqueueGrown(): Promise<void> {
    const meteredPlans = meterModePlanIds(this.catalog());
    if (meteredPlans.length === 0) return;
    const grown = await this.db.query<{ subscription_id: string; period_start: Date }>(
      `SELECT r.subscription_id, r.period_start
       FROM usage_rollups r
       JOIN subscriptions s ON s.id = r.subscription_id
       LEFT JOIN stripe_usage_reports u ON u.subscription_id = r.subscription_id AND u.period_start = r.period_start
       WHERE s.plan_id = ANY($1) AND r.period_start > $2
       GROUP BY r.subscription_id, r.period_start, u.reported_units, u.sending_units
       HAVING u.sending_units IS NULL AND sum(r.billable_units) > COALESCE(u.reported_units, 0)`,
      [meteredPlans, new Date(this.clock.now() - reportableHistoryMs)],
    );
    for (const row of grown) await enqueueStripeWork(this.db, 'usage.report', usageSubject(row.subscription_id, row.period_start));
  }

  /** `usage.report`: sends one meter event for the period's usage not reported yet. */
  async report(work: StripeWork): Promise<void> {
    const { subscriptionId, periodStart } = parseUsageSubject(work.item.subjectId);
    const [subscription] = await this.db.query<{ customer_id: string; plan_id: string; period_anchor: Date }>(
      'SELECT customer_id, plan_id, period_anchor FROM subscriptions WHERE id = $1',
      [subscriptionId],
    );
    if (!subscription) throw notFound('subscription', subscriptionId);
    const eventName = this.catalog().plan(subscription.plan_id)?.stripe?.meter_event_name;
    if (!eventName) return; // the plan left meter mode: Tollgate bills its usage now
    const pinned = await this.pin(subscriptionId, periodStart, this.eventTimestamp(subscription.period_anchor, periodStart));
    if (!pinned) return;
    if (this.clock.now() - pinned.timestamp * 1000 > meterEventMaxAgeMs) {
      throw invalid('timestamp', `usage of the period starting ${periodStart.toISOString()} is older than Stripe's 35-day meter event window`);
    }
    const stripeCustomerId = await this.customers.ensure(subscription.customer_id, work);
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
    await this.db.query(
      `UPDATE stripe_usage_reports SET reported_units = sending_units, sending_units = NULL, sending_timestamp = NULL
       WHERE subscription_id = $1 AND period_start = $2 AND sending_units = $3`,
      [subscriptionId, periodStart, sending],
    );
  }

  /**
   * The report in flight, or a new one for the usage since the last, pinned with `timestamp`; undefined when there
   * is nothing new. A report in flight keeps the timestamp it was pinned with, whatever the clock says now.
   */
  private async pin(subscriptionId: string, periodStart: Date, timestamp: number): Promise<{ reported: bigint; sending: bigint; timestamp: number } | undefined> {
    const [row] = await this.db.query<{ reported_units: string; sending_units: string | null; sending_timestamp: string }>(
      `INSERT INTO stripe_usage_reports (subscription_id, period_start, sending_units, sending_timestamp)
       SELECT $1, $2, NULLIF(sum(billable_units), 0), $3 FROM usage_rollups WHERE subscription_id = $1 AND period_start = $2
       ON CONFLICT (subscription_id, period_start) DO UPDATE SET
         sending_units = COALESCE(
           stripe_usage_reports.sending_units,
           CASE WHEN EXCLUDED.sending_units > stripe_usage_reports.reported_units THEN EXCLUDED.sending_units END),
         -- A report pinned before migration 9 has no timestamp yet: it gets one now, and keeps it.
         sending_timestamp = CASE WHEN stripe_usage_reports.sending_units IS NULL THEN EXCLUDED.sending_timestamp
                                  ELSE COALESCE(stripe_usage_reports.sending_timestamp, EXCLUDED.sending_timestamp) END
       RETURNING reported_units, sending_units, sending_timestamp`,
      [subscriptionId, periodStart, timestamp],
    );
    if (row!.sending_units === null) return undefined;
    return { reported: BigInt(row!.reported_units), sending: BigInt(row!.sending_units), timestamp: Number(row!.sending_timestamp) };
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
export async function markUsageReportsFailed(tx: Queryable, failures: readonly MeterEventFailure[], at: Date): Promise<MeterEventFailure[]> {
  const ours: MeterEventFailure[] = [];
  for (const failure of failures) {
    const report = parseMeterEventIdentifier(failure.identifier);
    if (!report) continue;
    // The identifier holds the period start in whole seconds; the period start itself may have milliseconds.
    await tx.query(`UPDATE stripe_usage_reports SET failed_at = $3, failure = $4 WHERE subscription_id = $1 AND date_trunc('second', period_start) = $2`, [
      report.subscriptionId,
      report.periodStart,
      at,
      `${failure.code}: ${failure.message}`.slice(0, 1000),
    ]);
    ours.push(failure);
  }
  return ours;
}
