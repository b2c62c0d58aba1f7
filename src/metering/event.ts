import type { CaptureDocument, Catalog } from '../catalog/index.js';
import type { UsageIdentity } from '../check/index.js';
import type { HttpAccessLogEntryWire, SecondsNanosWire } from '../grpc/index.js';

/** One call as metered: identity from the Check's dynamic metadata, facts from Envoy's access-log entry. */
export interface UsageEvent {
  /**
   * The de-duplication key: the usage id the Check issued and signed for an allowed call (a call logged twice is
   * stored once); for any other entry, one made up on receipt (the spool keeps it, so a replay stays de-duplicated).
   * Never anything a client can set.
   */
  usageId: string;
  /** Envoy's x-request-id, for correlation only: a client can choose it, so it decides nothing. */
  requestId: string | null;
  /** Epoch ms, Envoy's start_time. */
  occurredAt: number;
  /**
   * Epoch ms: start of the billing period the call is counted in. The Check's (signed) for an allowed call; else the
   * subscription's period containing occurredAt.
   */
  periodStart: number | null;
  customerId: string | null;
  subscriptionId: string | null;
  planId: string | null;
  productId: string | null;
  endpointId: string | null;
  keyId: string | null;
  method: string | null;
  status: number | null;
  /** The endpoint's cost weight: the units the Check counted against the quota. */
  weight: number;
  /** Header plus body bytes, at the HTTP layer (no TLS or framing overhead). */
  requestBytes: number;
  responseBytes: number;
  /** Envoy's time_to_last_downstream_tx_byte, in microseconds. */
  durationUs: number | null;
  /** The Check's decision; null without Check metadata, or when an allow's signature does not verify. */
  decision: 'allow' | 'deny' | null;
  /** The denial code for denied calls, else why an allowed call is not billable; null when billable. */
  reason: string | null;
  billable: boolean;
  /** Facts named by the plan's `capture:` list. */
  captured: Record<string, string | number> | null;
}

/**
 * Why a call is recorded but not billed (denied calls carry their denial code instead). `unsigned` and
 * `bad_signature`: the entry claims an allowed call, but without the Check's usage signature, or with one that does
 * not match its facts (forged or altered metadata); its claimed identity is kept, and counted nowhere.
 */
export type NotBillableReason = 'no_authz_metadata' | 'unsigned' | 'bad_signature' | 'unknown_plan' | 'no_response' | 'status_not_billable';

export interface MeteringContext {
  catalog: Catalog;
  /** Start of the subscription's billing period containing `at`. */
  periodStartOf(subscriptionId: string, at: number): number;
  /** Verifies the usage identity the Check signed into an allowed call's metadata. */
  usage: Pick<UsageIdentity, 'verify' | 'verifiesBytes'>;
  /** Used when Envoy sent no start_time. */
  now: number;
  /** A usage id for an entry the Check issued none for (see UsageEvent.usageId). */
  newUsageId(): string;
}

export interface PlanRules {
  billableClasses: ReadonlySet<number>;
  capture: CaptureDocument[];
}

export function toUsageEvent(entry: HttpAccessLogEntryWire, context: MeteringContext): UsageEvent {
  const common = entry.common_properties ?? {};
  const { request = {}, response = {} } = entry;
  const authz = common.authz ?? {};
  const text = (name: string) => (typeof authz[name] === 'string' && authz[name] !== '' ? (authz[name] as string) : null);
  const occurredAt = timestampMs(common.start_time) ?? context.now;
  const claimed = text('decision');
  const verdict = claimed === 'allow' ? context.usage.verify(authz) : undefined;
  const signed = verdict?.valid ? verdict : undefined;
  const customerId = signed?.facts.customerId ?? text('customer_id');
  const subscriptionId = signed?.facts.subscriptionId ?? text('subscription_id');
  const planId = signed?.facts.planId ?? text('plan_id');
  const decision = signed ? 'allow' : claimed === 'deny' ? 'deny' : null;
  const code = response.response_code?.value;
  const status = typeof code === 'number' && code >= 100 && code <= 599 ? code : null;
  const rules = planId ? planRules(context.catalog, planId) : undefined;

  let reason: string | null;
  if (signed) reason = whyNotBillable(rules, status);
  else if (decision === 'deny') reason = text('reason') ?? 'denied';
  else reason = verdict && !verdict.valid ? verdict.reason : 'no_authz_metadata';

  return {
    usageId: signed?.usageId ?? context.newUsageId(),
    requestId: request.request_id || text('request_id') || common.stream_id || null,
    occurredAt,
    periodStart: signed ? signed.facts.periodStart : subscriptionId ? context.periodStartOf(subscriptionId, occurredAt) : null,
    customerId,
    subscriptionId,
    planId,
    productId: text('product_id'),
    endpointId: signed?.facts.endpointId ?? text('endpoint_id'),
    keyId: text('key_id'),
    method: request.request_method && request.request_method !== 'METHOD_UNSPECIFIED' ? request.request_method : null,
    status,
    weight: signed ? signed.facts.weight : typeof authz.weight === 'number' ? count(authz.weight) : 0,
    requestBytes: count(request.request_headers_bytes) + count(request.request_body_bytes),
    responseBytes: count(response.response_headers_bytes) + count(response.response_body_bytes),
    durationUs: durationUs(common.time_to_last_downstream_tx_byte),
    decision,
    reason,
    billable: reason === null,
    captured: rules?.capture.length ? capture(rules.capture, entry) : null,
  };
}

export function whyNotBillable(rules: PlanRules | undefined, status: number | null): NotBillableReason | null {
  if (!rules) return 'unknown_plan';
  if (status === null) return 'no_response';
  return rules.billableClasses.has(Math.floor(status / 100)) ? null : 'status_not_billable';
}

const rulesByCatalog = new WeakMap<Catalog, Map<string, PlanRules | undefined>>();

/** A plan's billable status classes and capture list (product's, then the plan's by name), cached per catalog. */
export function planRules(catalog: Catalog, planId: string): PlanRules | undefined {
  let byPlan = rulesByCatalog.get(catalog);
  if (!byPlan) rulesByCatalog.set(catalog, (byPlan = new Map()));
  if (byPlan.has(planId)) return byPlan.get(planId);
  const plan = catalog.plan(planId);
  const rules = plan && {
    billableClasses: new Set(plan.billable.statuses.map((statusClass) => Number(statusClass[0]))),
    capture: [
      ...new Map([...(catalog.products.get(plan.product)?.capture ?? []), ...(plan.capture ?? [])].map((rule) => [rule.name, rule])).values(),
    ],
  };
  byPlan.set(planId, rules);
  return rules;
}

const maxCapturedStringLength = 256;

/** Values that do not parse as their declared type are left out rather than guessed. */
function capture(rules: CaptureDocument[], entry: HttpAccessLogEntryWire): Record<string, string | number> | null {
  const captured: Record<string, string | number> = {};
  for (const rule of rules) {
    const headers = rule.from === 'response_header' ? entry.response?.response_headers : entry.request?.request_headers;
    const raw = headers?.[rule.header]?.trim();
    if (!raw) continue;
    if (rule.type === 'integer') {
      const value = /^-?\d{1,15}$/.test(raw) ? Number(raw) : undefined;
      if (value !== undefined) captured[rule.name] = value;
    } else if (rule.type === 'decimal') {
      if (/^-?\d{1,30}(\.\d{1,30})?$/.test(raw)) captured[rule.name] = raw;
    } else {
      captured[rule.name] = cutAtCodePoint(raw, maxCapturedStringLength);
    }
  }
  return Object.keys(captured).length > 0 ? captured : null;
}

/** At most `length` UTF-16 units, never half of a surrogate pair (PostgreSQL's jsonb refuses a lone one). */
function cutAtCodePoint(text: string, length: number): string {
  if (text.length <= length) return text;
  const last = text.charCodeAt(length - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? length - 1 : length);
}

/** A non-negative safe integer from a uint64 (a string with longs: String) or a number; anything else is 0. */
function count(value: string | number | undefined): number {
  const number = Number(value ?? 0);
  return Number.isSafeInteger(number) && number >= 0 ? number : 0;
}

/** The last instant a JavaScript Date can hold. */
const maxDateMs = 8.64e15;

function timestampMs(timestamp: SecondsNanosWire | undefined): number | undefined {
  return timestamp ? epochMs(Number(timestamp.seconds ?? 0), timestamp.nanos ?? 0) : undefined;
}

/** Epoch ms of a Timestamp's seconds and nanos; undefined when not a positive instant a Date can hold. */
export function epochMs(seconds: number, nanos: number): number | undefined {
  const ms = seconds * 1000 + Math.floor(nanos / 1e6);
  return Number.isSafeInteger(ms) && ms > 0 && ms <= maxDateMs ? ms : undefined;
}

function durationUs(duration: SecondsNanosWire | undefined): number | null {
  return duration ? durationMicros(Number(duration.seconds ?? 0), duration.nanos ?? 0) : null;
}

/** Microseconds of a Duration's seconds and nanos; null when negative or not a safe integer. */
export function durationMicros(seconds: number, nanos: number): number | null {
  const us = seconds * 1e6 + Math.round(nanos / 1000);
  return Number.isSafeInteger(us) && us >= 0 ? us : null;
}
