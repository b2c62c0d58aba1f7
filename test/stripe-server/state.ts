// The server's in-memory Stripe account. Tests read it directly to check what Tollgate did to "Stripe".
import type Stripe from 'stripe';
import { noSuchResource } from './errors.js';

export type FaultKind = '500' | '429' | 'timeout' | 'drop';
/** `before`: nothing was applied. `after`: the request was applied (and its idempotent result saved), then failed. */
export type FaultPhase = 'before' | 'after';

export interface InjectedFault {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  kind: FaultKind;
  phase: FaultPhase;
}

export interface StripeState {
  customers: Map<string, Stripe.Customer>;
  invoices: Map<string, Stripe.Invoice>;
  invoiceItems: Map<string, Stripe.InvoiceItem>;
  meters: Map<string, Stripe.Billing.Meter>;
  /** Keyed by `identifier`, Stripe's de-duplication key for meter events. */
  meterEvents: Map<string, Stripe.Billing.MeterEvent>;
  checkoutSessions: Map<string, Stripe.Checkout.Session>;
  /** A session's line items by session id; Stripe returns them only on request (`expand[]=line_items`). */
  checkoutLineItems: Map<string, Stripe.LineItem[]>;
  paymentIntents: Map<string, Stripe.PaymentIntent>;
  products: Map<string, Stripe.Product>;
  prices: Map<string, Stripe.Price>;
  subscriptions: Map<string, Stripe.Subscription>;
  /** Events built for webhooks, which Stripe also serves from `/v1/events`. */
  events: Map<string, Stripe.Event>;
  /** Thin (v2) events: webhooks carry only their notification; `GET /v2/core/events/:id` serves them whole. */
  v2Events: Map<string, Stripe.V2.Core.Event>;
  /** Ids of deleted objects, which Stripe still answers for with `{ id, object, deleted: true }`. */
  deletedIds: Set<string>;
  stats: { requestsReceived: number; faultsInjected: number; idempotentReplays: number };
  faultLog: InjectedFault[];
  /** Every request received, with the headers that say how the client asked. */
  requestLog: LoggedRequest[];
}

export interface LoggedRequest {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  stripeVersion: string | undefined;
  /** The secret key presented, to tell several clients of one server apart. */
  apiKey: string | undefined;
}

export function createState(): StripeState {
  return {
    customers: new Map(),
    invoices: new Map(),
    invoiceItems: new Map(),
    meters: new Map(),
    meterEvents: new Map(),
    checkoutSessions: new Map(),
    checkoutLineItems: new Map(),
    paymentIntents: new Map(),
    products: new Map(),
    prices: new Map(),
    subscriptions: new Map(),
    events: new Map(),
    v2Events: new Map(),
    deletedIds: new Set(),
    stats: { requestsReceived: 0, faultsInjected: 0, idempotentReplays: 0 },
    faultLog: [],
    requestLog: [],
  };
}

/** The object `id` from `objects`, or Stripe's `No such <resource>` error naming `param`. */
export function requireObject<T>(objects: Map<string, T>, id: string, resource: string, param?: string): T {
  const found = objects.get(id);
  if (!found) throw noSuchResource(resource, id, param);
  return found;
}

/** Any stored object by id, for `expand`; Stripe ids carry their type in the prefix. */
export function findObject(state: StripeState, id: string): object | undefined {
  const prefix = id.slice(0, id.indexOf('_') + 1);
  const byPrefix: Record<string, Map<string, object>> = {
    cus_: state.customers,
    in_: state.invoices,
    ii_: state.invoiceItems,
    mtr_: state.meters,
    cs_: state.checkoutSessions,
    pi_: state.paymentIntents,
    prod_: state.products,
    price_: state.prices,
    sub_: state.subscriptions,
    evt_: state.events,
  };
  return byPrefix[prefix]?.get(id);
}

export interface PageParams {
  limit?: number | undefined;
  starting_after?: string | undefined;
  ending_before?: string | undefined;
}

/** One page of `newestFirst` in Stripe's list envelope, following Stripe's cursor semantics. */
export function listPage<T extends { id: string }>(
  newestFirst: T[],
  page: PageParams,
  url: string,
  resource: string,
): Stripe.ApiList<T> {
  const limit = page.limit ?? 10;
  const cursorIndex = (cursor: string, param: string): number => {
    const index = newestFirst.findIndex((item) => item.id === cursor);
    if (index < 0) throw noSuchResource(resource, cursor, param);
    return index;
  };
  if (page.ending_before !== undefined) {
    const end = cursorIndex(page.ending_before, 'ending_before');
    const start = Math.max(0, end - limit);
    return { object: 'list', data: newestFirst.slice(start, end), has_more: start > 0, url };
  }
  const start = page.starting_after === undefined ? 0 : cursorIndex(page.starting_after, 'starting_after') + 1;
  return {
    object: 'list',
    data: newestFirst.slice(start, start + limit),
    has_more: start + limit < newestFirst.length,
    url,
  };
}

export function newestFirst<T>(objects: Iterable<T>): T[] {
  return [...objects].reverse();
}

/** Stripe's metadata update: keys are merged, `key=''` removes a key and `metadata=''` removes them all. */
export function updatedMetadata(current: Stripe.Metadata, update: '' | Record<string, string> | undefined): Stripe.Metadata {
  if (update === undefined) return current;
  if (update === '') return {};
  const next = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (value === '') delete next[key];
    else next[key] = value;
  }
  return next;
}

/** An optional field's new value on update: unchanged when absent, `null` when sent empty. */
export function updatedField<T>(current: T | null, update: '' | T | undefined): T | null {
  if (update === undefined) return current;
  return update === '' ? null : update;
}
