/** Subscriptions with their plan history, as rating needs them. */
import type { SubscriptionChange } from '../identity/index.js';
import type { Queryable } from '../store/index.js';
import type { SubscriptionHistory } from './period-invoice.js';

export interface BillableSubscription extends SubscriptionHistory {
  customerId: string;
  productId: string;
  /** End of the last finalized period: rating resumes there. */
  billedThrough: number | undefined;
}

/** Canceled subscriptions are looked at this long after their cancellation for a period still to finalize. */
const canceledLookbackMs = 62 * 86_400_000;

/** Every subscription that may still have a period to rate: active ones and those canceled after their last invoice. */
export function loadBillableSubscriptions(db: Queryable, now: number): Promise<BillableSubscription[]> {
  return load(db, `s.status = 'active' OR s.canceled_at > coalesce(f.billed_through, $1)`, [new Date(now - canceledLookbackMs)]);
}

export async function loadSubscriptionHistory(db: Queryable, subscriptionId: string): Promise<BillableSubscription | undefined> {
  const [history] = await load(db, 's.id = $1', [subscriptionId]);
  return history;
}

/** Every subscription started before `before`, with its plan history: reports replay which plan was in force when. */
export function loadSubscriptionHistoriesStartedBefore(db: Queryable, before: number): Promise<BillableSubscription[]> {
  return load(db, 's.started_at < $1', [new Date(before)]);
}

interface SubscriptionRow {
  id: string;
  customer_id: string;
  product_id: string;
  plan_id: string;
  started_at: Date;
  period_anchor: Date;
  billed_through: Date | null;
}

interface ChangeRow {
  id: string;
  subscription_id: string;
  kind: SubscriptionChange['kind'];
  from_plan_id: string;
  to_plan_id: string | null;
  effective_at: Date;
}

async function load(db: Queryable, where: string, params: unknown[]): Promise<BillableSubscription[]> {
  const rows = await db.query<SubscriptionRow>(
    `SELECT s.id, s.customer_id, s.product_id, s.plan_id, s.started_at, s.period_anchor, f.billed_through
     FROM subscriptions s
     LEFT JOIN LATERAL (SELECT max(period_end) AS billed_through FROM invoices i
                        WHERE i.subscription_id = s.id AND i.status = 'finalized') f ON true
     WHERE ${where}
     ORDER BY s.id`,
    params,
  );
  if (rows.length === 0) return [];
  const changes = await db.query<ChangeRow>(
    `SELECT id, subscription_id, kind, from_plan_id, to_plan_id, effective_at FROM subscription_changes
     WHERE subscription_id = ANY($1::text[]) ORDER BY subscription_id, effective_at, id`,
    [rows.map((row) => row.id)],
  );
  const changesBySubscription = new Map<string, SubscriptionChange[]>();
  for (const change of changes) {
    let list = changesBySubscription.get(change.subscription_id);
    if (!list) changesBySubscription.set(change.subscription_id, (list = []));
    list.push({
      id: String(change.id),
      subscriptionId: change.subscription_id,
      kind: change.kind,
      fromPlanId: change.from_plan_id,
      toPlanId: change.to_plan_id,
      effectiveAt: change.effective_at.getTime(),
    });
  }
  return rows.map((row) => ({
    id: row.id,
    customerId: row.customer_id,
    productId: row.product_id,
    planId: row.plan_id,
    startedAt: row.started_at.getTime(),
    periodAnchor: row.period_anchor.getTime(),
    changes: changesBySubscription.get(row.id) ?? [],
    billedThrough: row.billed_through?.getTime(),
  }));
}
