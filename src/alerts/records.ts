/** Usage alerts fired, their deliveries and the customers' webhooks: the records and the port they are kept behind. */
import type { AlertType } from '../catalog/index.js';
import { eventTypes, type OutboxEvent } from '../events/index.js';
import type { BillingPeriod } from '../rating/index.js';
import type { Queryable } from '../store/index.js';

type JsonFields = Record<string, string | number>;

/** A threshold a subscription has crossed in its current billing period. */
export interface Crossing {
  customerId: string;
  subscriptionId: string;
  planId: string;
  period: BillingPeriod;
  type: AlertType;
  /** As `thresholdJson` gives it; with the plan, subscription and period, the alert's identity. */
  threshold: JsonFields;
  /** The value that crossed it. */
  observed: JsonFields;
}

export interface UsageAlert extends Crossing {
  id: string;
  /** Epoch ms, business time (the clock's). */
  firedAt: number;
}

/** The webhook body. Snake case, like the thresholds it names from the catalog. */
export interface AlertEvent {
  id: string;
  type: AlertType;
  created_at: string;
  customer: string;
  subscription: string;
  plan: string;
  period: { start: string; end: string };
  threshold: JsonFields;
  current: JsonFields;
}

export interface AlertWithDelivery {
  event: AlertEvent;
  /** null when the customer had no webhook when the alert fired. */
  delivery: { id: string; status: string; attempts: number } | null;
}

export const deliveryStatuses = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

/** One alert sent to a webhook, with its attempts, the last answer and when it is tried next. */
export interface AlertDelivery {
  id: string;
  alertId: string;
  customerId: string;
  subscriptionId: string;
  type: AlertType;
  periodStart: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastAttemptAt: string | null;
  /** null when the last attempt got no answer. */
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

/** A delivery whose time has come, with what its attempt needs. */
export interface DueDelivery {
  id: string;
  attempts: number;
  alert: UsageAlert;
  /** The customer's webhook now; undefined if it was removed since the alert fired. */
  webhook: { url: string; secret: string } | undefined;
}

/** The outcome of a failed attempt, as the log keeps it. */
export interface AttemptFailure {
  statusCode: number | null;
  error: string;
}

export interface DeliveryFilter {
  customerId?: string | undefined;
  status?: DeliveryStatus | undefined;
  limit: number;
  /** A delivery id: the page starts after it. */
  after?: string | undefined;
}

/** A customer's alert webhook as stored, its signing secret included. */
export interface AlertWebhookRecord {
  customerId: string;
  url: string;
  secret: string;
  createdAt: string;
  updatedAt: string;
}

/** An active subscription on a plan with alerts. */
export interface WatchedSubscriptionRecord {
  id: string;
  customerId: string;
  planId: string;
  periodAnchor: Date;
}

/** A subscription's billing period, as the evaluation's reads name it. */
export interface SubscriptionPeriod {
  customerId: string;
  subscriptionId: string;
  periodStart: Date;
}

/**
 * The alerts' records: what evaluation reads (subscriptions, usage, draft invoices, wallet balances) and writes
 * (alerts fired, deliveries queued), the delivery log, and the customers' webhooks. Scheduling of deliveries uses the
 * database's clock, which every replica shares. Reads answer undefined for a missing record; failures are domain
 * errors. `test/contracts/alert-records.contract.ts` is the contract.
 */
export interface AlertRecords {
  /** Runs `work` in one transaction: the records it is given read and write in it; `tx` lets other modules' writes join it. */
  transaction<T>(work: (records: AlertRecords, tx: Queryable) => Promise<T>): Promise<T>;

  /** Active subscriptions on these plans, ordered by id. */
  watchedSubscriptions(planIds: readonly string[]): Promise<WatchedSubscriptionRecord[]>;
  /** Metered units per subscription in the given periods; subscriptions without usage are absent. */
  periodUnits(periods: readonly SubscriptionPeriod[]): Promise<{ subscriptionId: string; units: bigint }[]>;
  /** The invoices of the given periods (the running period's draft), by subscription. */
  periodInvoices(periods: readonly SubscriptionPeriod[]): Promise<{ id: string; subscriptionId: string; total: bigint; currency: string }[]>;
  /** Ledger balances of the customers' wallets, one per wallet (customer and currency). */
  walletBalances(customerIds: readonly string[]): Promise<{ customerId: string; currency: string; balance: bigint }[]>;

  /**
   * Records the alerts that have not fired yet in their period; the unique key decides, so a threshold crossed again
   * (or seen by another pass) is not recorded twice. Returns the alerts recorded now.
   */
  insertAlerts(alerts: readonly UsageAlert[]): Promise<UsageAlert[]>;
  /** Queues a delivery of each alert whose customer has a webhook. */
  queueDeliveries(alertIds: readonly string[]): Promise<void>;
  /** A customer's alerts, newest first, with the state of their delivery. */
  customerAlerts(customerId: string, limit: number): Promise<{ alert: UsageAlert; delivery: AlertWithDelivery['delivery'] }[]>;
  customerExists(customerId: string): Promise<boolean>;

  /** Pending deliveries due now (the database's clock), oldest first. */
  dueDeliveries(limit: number): Promise<DueDelivery[]>;
  /** Marks a pending delivery delivered, keeping its last error. */
  markDelivered(id: string, statusCode: number): Promise<void>;
  /** Counts a failed attempt of a pending delivery and schedules the next one `delayMs` from now. */
  rescheduleDelivery(id: string, delayMs: number, failure: AttemptFailure): Promise<void>;
  /** Counts a failed attempt of a pending delivery and marks it dead. */
  buryDelivery(id: string, failure: AttemptFailure): Promise<void>;
  delivery(id: string): Promise<AlertDelivery | undefined>;
  /** Ordered by id, after the cursor. */
  deliveries(filter: DeliveryFilter): Promise<AlertDelivery[]>;
  /** Re-arms a dead delivery to be sent now with a fresh attempt budget; undefined if it is not dead. */
  retryDeadDelivery(id: string): Promise<AlertDelivery | undefined>;

  /** Sets (or replaces) the customer's webhook; undefined when there is no such customer. */
  setWebhook(customerId: string, url: string, secret: string): Promise<AlertWebhookRecord | undefined>;
  webhook(customerId: string): Promise<AlertWebhookRecord | undefined>;
  /** false when the customer had no webhook. */
  removeWebhook(customerId: string): Promise<boolean>;
}

export function alertEvent(alert: UsageAlert): AlertEvent {
  return {
    id: alert.id,
    type: alert.type,
    created_at: new Date(alert.firedAt).toISOString(),
    customer: alert.customerId,
    subscription: alert.subscriptionId,
    plan: alert.planId,
    period: { start: new Date(alert.period.start).toISOString(), end: new Date(alert.period.end).toISOString() },
    threshold: alert.threshold,
    current: alert.observed,
  };
}

/** The alert as the event stream carries it: the webhook's body, as data of an `alert.raised` CloudEvent. */
export function alertRaisedEvent(alert: UsageAlert): OutboxEvent {
  return { type: eventTypes.alertRaised, customerId: alert.customerId, occurredAt: alert.firedAt, data: { ...alertEvent(alert) } };
}
