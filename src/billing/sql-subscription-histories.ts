import type { SubscriptionChange } from '../identity/index.js';
import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { BillableSubscription, SubscriptionHistories } from './records.js';

/** Subscriptions with their plan history and how far they are billed, from PostgreSQL or PGlite. */
export class SqlSubscriptionHistories implements SubscriptionHistories {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  within(tx: Queryable): SubscriptionHistories {
    return new SqlSubscriptionHistories(joinedTransaction(this.db, tx));
  }

  billable(canceledAfter: number): Promise<BillableSubscription[]> {
    return load(this.db, billableWhere, [new Date(canceledAfter)]);
  }

  async billableIds(canceledAfter: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT s.id FROM subscriptions s ${billedThroughJoin} WHERE ${billableWhere} ORDER BY s.id`,
      [new Date(canceledAfter)],
    );
    return rows.map((row) => row.id);
  }

  histories(subscriptionIds: readonly string[]): Promise<BillableSubscription[]> {
    return load(this.db, 's.id = ANY($1::text[])', [subscriptionIds]);
  }

  async history(subscriptionId: string): Promise<BillableSubscription | undefined> {
    const [history] = await load(this.db, 's.id = $1', [subscriptionId]);
    return history;
  }

  startedBefore(before: number): Promise<BillableSubscription[]> {
    return load(this.db, 's.started_at < $1', [new Date(before)]);
  }

  async activeByPlan(): Promise<{ planId: string; subscriptions: number }[]> {
    const rows = await this.db.query<{ plan_id: string; subscriptions: string }>(
      `SELECT plan_id, count(*) AS subscriptions FROM subscriptions WHERE status = 'active' GROUP BY plan_id ORDER BY plan_id`,
    );
    return rows.map((row) => ({ planId: row.plan_id, subscriptions: Number(row.subscriptions) }));
  }
}

const billedThroughJoin = `LEFT JOIN LATERAL (SELECT max(period_end) AS billed_through FROM invoices i
                        WHERE i.subscription_id = s.id AND i.status = 'finalized') f ON true`;
const billableWhere = `s.status = 'active' OR s.canceled_at > coalesce(f.billed_through, $1)`;

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
     ${billedThroughJoin}
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
