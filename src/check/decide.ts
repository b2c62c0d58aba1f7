import type { Plan, RouteMatch } from '../catalog/index.js';
import type { CustomerState, Identity, KeyState } from '../identity/index.js';
import type { ConsumeResult, Limit, LimitOutcome } from '../counters/index.js';
import { formatMicros } from '../billing/index.js';
import type { CheckPlans, KeyCheckPlan, Period } from './check-plan.js';
import type { Decision, DecisionMetadata, DenialCode, DenialStatus, Deny } from './decision.js';

/**
 * The Check's pure core, in two steps around the one I/O call (the counter store):
 * `admit` resolves identity, route, plan and entitlement to the key's compiled plan (check-plan.ts), which says which
 * counters to consume; `conclude` turns the counters' answer into the decision and its headers.
 */

export type { Period } from './check-plan.js';

export interface CheckRequestFacts {
  method: string;
  host: string;
  path: string;
  /** Lower-case header names. */
  headers: Readonly<Record<string, string>>;
  requestId: string;
}

export interface DecideOptions {
  keyHeader: string;
  keyFromBearer: boolean;
  headerPrefix: string;
}

export interface AdmitContext {
  /** The catalog's compiled plans (and the catalog itself). */
  plans: CheckPlans;
  options: DecideOptions;
  now: number;
  resolveKey: (key: string) => Identity | undefined;
  periodOf: (anchor: number, at: number) => Period;
}

export interface Admitted {
  plan: Plan;
  period: Period;
  /** Counter scope: one customer's counters share it (and one Redis Cluster slot). */
  scope: string;
  /** The compiled plan bound to this key and period: shared by its Checks of the endpoint, never modified. */
  compiled: KeyCheckPlan;
  /** The limits to count: `compiled.limits`; `limits[i]` enforces `compiled.checkPlan.rules[i]`. */
  limits: readonly Limit[];
  /** The allowed call's metadata facts: `compiled.metadata`. */
  metadata: Readonly<DecisionMetadata>;
}

export type Admission = { admitted: false; decision: Deny } | { admitted: true; next: Admitted };

export function extractKey(headers: Readonly<Record<string, string>>, options: DecideOptions): string | undefined {
  const direct = headers[options.keyHeader]?.trim();
  if (direct) return direct;
  if (!options.keyFromBearer) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

export function admit(request: CheckRequestFacts, context: AdmitContext): Admission {
  const { catalog } = context.plans;
  let route: RouteMatch | undefined;
  let identity: Identity | undefined;
  let planId: string | undefined;
  // A denial's metadata holds what was learned before it: the key, then the route, then the plan.
  const deny = (status: DenialStatus, code: DenialCode, message: string, extra: Record<string, unknown> = {}): Admission => {
    const metadata: DecisionMetadata = { request_id: request.requestId };
    if (route) Object.assign(metadata, routeMetadata(route));
    if (identity) Object.assign(metadata, keyMetadata(identity.key));
    if (planId !== undefined) metadata.plan_id = planId;
    return { admitted: false, decision: denial(status, code, message, request.requestId, metadata, extra) };
  };

  const key = extractKey(request.headers, context.options);
  if (!key) return deny(401, 'missing_key', `Send your API key in the ${context.options.keyHeader} header.`);
  identity = context.resolveKey(key);
  if (!identity) return deny(401, 'invalid_key', 'The API key is not valid.');
  if (identity.key.status === 'revoked') return deny(401, 'key_revoked', 'The API key has been revoked.');
  if (identity.key.status === 'pending') return deny(403, 'key_pending_approval', 'The API key is waiting for approval.');
  // Only now, with a credential known, may the path reach the route cache: a stranger's paths must cost no memory.
  route = catalog.match(request.host, request.method, request.path);

  const { subscription, customer } = identity;
  if (!customer || customer.status !== 'active') return deny(402, 'account_suspended', ...suspension(customer));
  if (!subscription || subscription.status !== 'active') {
    return deny(403, 'subscription_inactive', 'The subscription for this API key is not active.');
  }
  planId = subscription.planId;
  const plan = catalog.plan(subscription.planId);
  if (!plan) return deny(403, 'plan_unavailable', `Plan ${subscription.planId} is no longer offered.`);

  if (!route) return deny(403, 'unknown_endpoint', `${request.method} ${stripQuery(request.path)} is not part of any API product.`);
  const checkPlan = context.plans.planFor(route, plan);
  if (!checkPlan) {
    return deny(403, 'not_entitled', `Plan ${plan.id} does not include ${route.endpoint.id}.`, {
      upgrade_url: catalog.upgradeUrl,
    });
  }

  const period = context.periodOf(subscription.periodAnchor, context.now);
  const compiled = context.plans.bind(checkPlan, identity.key, subscription, customer, period);
  return {
    admitted: true,
    next: {
      plan,
      period,
      scope: customer.id,
      compiled,
      limits: compiled.limits,
      metadata: compiled.metadata,
    },
  };
}

/** Why an account may not call, in words for its customer: only a suspension for non-payment asks them to pay. */
function suspension(customer: CustomerState | undefined): [message: string, extra: { reason: string }] {
  if (customer?.status === 'suspended' && customer.overdue) {
    return ['The account is suspended for an overdue payment; settle the outstanding balance to resume.', { reason: 'payment_overdue' }];
  }
  if (customer?.status === 'suspended') return ['The account is suspended by the API provider; contact them to resume.', { reason: 'suspended_by_provider' }];
  return ['The account is closed.', { reason: 'account_closed' }];
}

const routeMetadata = (route: RouteMatch): DecisionMetadata => ({ product_id: route.product.id, endpoint_id: route.endpoint.id, weight: route.endpoint.weight });
const keyMetadata = (key: KeyState): DecisionMetadata => ({ key_id: key.id, customer_id: key.customerId, subscription_id: key.subscriptionId });

export type CounterAnswer = ConsumeResult | { degraded: 'open' | 'closed' };

export function conclude(
  admitted: Admitted,
  answer: CounterAnswer,
  request: CheckRequestFacts,
  options: DecideOptions,
  upgradeUrl: string | undefined,
): Decision {
  const { plan, metadata, limits, compiled } = admitted;
  const { rules } = compiled.checkPlan;
  if ('degraded' in answer && answer.degraded === 'closed') {
    return denial(503, 'limits_unavailable', 'Usage limits cannot be checked right now; retry shortly.', request.requestId, withRequestId(metadata, request.requestId), {}, { 'retry-after': '1' });
  }
  const outcomes = 'outcomes' in answer ? answer.outcomes : [];
  // The store answers outcomes[i] for limits[i] (ConsumeResult), or nothing when it was not asked.
  if (outcomes.length !== 0 && outcomes.length !== limits.length) {
    throw new Error(`the counter store answered ${outcomes.length} outcomes for ${limits.length} limits`);
  }
  // The tightest rate limit and the quota are reported to the client (this runs on every Check: one plain loop).
  let tightest = -1;
  let quota = -1;
  for (let i = 0; i < outcomes.length; i++) {
    const kind = limits[i]!.kind;
    if (kind === 'sliding' && (tightest === -1 || tighter(outcomes[i]!, outcomes[tightest]!))) tightest = i;
    else if (kind === 'period') quota = i;
  }
  const denied = 'allowed' in answer && !answer.allowed;
  const blockedIndex = denied ? lastingBlock(outcomes, limits) : -1;
  // A window that denies is the one the RateLimit fields describe, so that they and Retry-After tell the same story.
  if (blockedIndex !== -1 && limits[blockedIndex]!.kind === 'sliding') tightest = blockedIndex;
  // A denied request counted nothing: what the limits that let it through report must not include it.
  const headers: Record<string, string> = {};
  if (tightest !== -1) addRateLimitHeaders(headers, denied ? uncounted(outcomes[tightest]!, limits[tightest]!) : outcomes[tightest]!, compiled.checkPlan.rateLimitPolicy);
  if (quota !== -1) addQuotaHeaders(headers, denied ? uncounted(outcomes[quota]!, limits[quota]!) : outcomes[quota]!);

  if (denied) {
    const blocked = outcomes[blockedIndex]!;
    const retryAfter = retryAfterSeconds(blocked);
    const blockedLimit = limits[blockedIndex]!;
    if (blockedLimit.kind === 'sliding') {
      const rule = rules[blockedIndex];
      if (rule?.kind !== 'rate') throw new Error(`limit ${blockedIndex} of plan ${plan.id} is counted as a rate limit but compiled as ${rule?.kind ?? 'nothing'}`);
      return denial(429, 'rate_limited', `Rate limit of ${blockedLimit.limit} requests per ${formatWindow(blockedLimit.windowMs)} exceeded.`, request.requestId, withRequestId(metadata, request.requestId), {
        limit: blockedLimit.limit,
        window: formatWindow(blockedLimit.windowMs),
        scope: rule.rateLimit.scope,
        retry_after_seconds: Number(retryAfter),
        plan: plan.id,
        upgrade_url: upgradeUrl,
      }, { ...headers, 'retry-after': retryAfter });
    }
    if (blockedLimit.kind === 'wallet') {
      const currency = plan.pricing!.currency;
      return denial(402, 'wallet_exhausted', 'The prepaid wallet cannot pay for this call; top it up to continue.', request.requestId, withRequestId(metadata, request.requestId), {
        balance: formatMicros(blocked.remaining, currency),
        price: formatMicros(blockedLimit.cost, currency),
        currency,
        plan: plan.id,
      }, headers);
    }
    const status: DenialStatus = plan.quota?.when_exhausted === 'deny_402' ? 402 : 429;
    return denial(status, 'quota_exhausted', `The quota of ${blockedLimit.limit} units for this billing period is used up.`, request.requestId, withRequestId(metadata, request.requestId), {
      limit: blockedLimit.limit,
      remaining: blocked.remaining,
      cost: blockedLimit.cost,
      period_end: new Date(admitted.period.end).toISOString(),
      plan: plan.id,
      upgrade_url: upgradeUrl,
    }, { ...headers, 'retry-after': retryAfter });
  }

  const names = compiled.checkPlan.headerNames;
  const removeHeaders: string[] = [];
  for (const name in request.headers) if (name.startsWith(options.headerPrefix) && !names.all.has(name)) removeHeaders.push(name);
  const requestMetadata: DecisionMetadata = { request_id: request.requestId };
  if ('degraded' in answer) requestMetadata.degraded = answer.degraded;
  return { allowed: true, upstreamHeaders: compiled.upstreamHeaders, removeHeaders, responseHeaders: headers, metadata, requestMetadata, preEncoded: compiled.encoded };
}

/** The shared facts of an admitted call, named with its request as admit()'s own denials are. */
const withRequestId = (metadata: Readonly<DecisionMetadata>, requestId: string): DecisionMetadata => ({ request_id: requestId, ...metadata });

export function denial(
  status: DenialStatus,
  code: DenialCode,
  message: string,
  requestId: string,
  metadata: Readonly<DecisionMetadata>,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Deny {
  const details = Object.fromEntries(Object.entries(extra).filter(([, value]) => value !== undefined));
  return {
    allowed: false,
    status,
    code,
    message,
    headers,
    body: { error: { code, message, ...details, request_id: requestId } },
    metadata: { ...metadata, decision: 'deny', reason: code },
  };
}

/** Reports the tightest rate limit in the IETF RateLimit header fields (draft 7 names, seconds). */
function addRateLimitHeaders(headers: Record<string, string>, tightest: LimitOutcome, policy: string): void {
  headers['ratelimit-limit'] = String(tightest.limit);
  headers['ratelimit-remaining'] = String(tightest.remaining);
  // A window that blocks resets, for the client, when the request fits again: the instant Retry-After names, not
  // the later one when the window holds no request at all.
  headers['ratelimit-reset'] = tightest.allowed ? String(Math.ceil(tightest.resetMs / 1000)) : retryAfterSeconds(tightest);
  headers['ratelimit-policy'] = policy;
}

/** Whole seconds until a blocked request fits, rounded up and at least 1 (Retry-After, RateLimit-Reset, the body). */
const retryAfterSeconds = (blocked: LimitOutcome) => String(Math.max(1, Math.ceil(blocked.retryAfterMs / 1000)));

function addQuotaHeaders(headers: Record<string, string>, outcome: LimitOutcome): void {
  headers['x-quota-limit'] = String(outcome.limit);
  headers['x-quota-remaining'] = String(outcome.remaining);
  headers['x-quota-reset'] = String(Math.ceil(outcome.resetMs / 1000));
}

const windowUnits: [number, string][] = [
  [86_400_000, 'd'],
  [3_600_000, 'h'],
  [60_000, 'm'],
  [1_000, 's'],
];

/** The rate limit to report: one that blocked, else the one with the least left. */
function tighter(candidate: LimitOutcome, than: LimitOutcome): boolean {
  return candidate.allowed === than.allowed ? candidate.remaining < than.remaining : !candidate.allowed;
}

/**
 * An outcome that let the request through, for a request another limit denied: without this request's cost. A
 * remaining of 0 may have been clamped (an overage quota past its limit), so it stays 0 rather than guess.
 */
function uncounted(outcome: LimitOutcome, limit: { cost: number }): LimitOutcome {
  return outcome.allowed && outcome.remaining > 0 ? { ...outcome, remaining: Math.min(outcome.limit, outcome.remaining + limit.cost) } : outcome;
}

/**
 * Of the limits that blocked a request, the one a client must wait out (or act on) longest, so that retrying after
 * its Retry-After can succeed: an empty wallet (no wait refills it), then a used-up quota, then the rate limit with
 * the longest wait.
 */
function lastingBlock(outcomes: readonly LimitOutcome[], limits: readonly { kind: string }[]): number {
  let lasting = -1;
  for (let i = 0; i < outcomes.length; i++) {
    if (outcomes[i]!.allowed) continue;
    if (lasting === -1 || blockRank(limits[i]!.kind) > blockRank(limits[lasting]!.kind)) lasting = i;
    else if (limits[i]!.kind === limits[lasting]!.kind && outcomes[i]!.retryAfterMs > outcomes[lasting]!.retryAfterMs) lasting = i;
  }
  return lasting;
}

const blockRank = (kind: string) => (kind === 'wallet' ? 2 : kind === 'period' ? 1 : 0);

export function formatWindow(ms: number): string {
  const unit = windowUnits.find(([size]) => ms % size === 0);
  return unit ? `${ms / unit[0]}${unit[1]}` : `${ms}ms`;
}

const stripQuery = (path: string) => path.split('?')[0]!;

/**
 * Remembers each anchor's current period: the Check asks for it on every request and it changes once a month.
 * One entry per distinct anchor (about one per subscription), replaced when the period rolls over.
 */
export function memoizePeriods(periodOf: (anchor: number, at: number) => Period): (anchor: number, at: number) => Period {
  const current = new Map<number, Period>();
  return (anchor, at) => {
    const cached = current.get(anchor);
    if (cached && cached.start <= at && at < cached.end) return cached;
    const period = periodOf(anchor, at);
    current.set(anchor, period);
    return period;
  };
}
