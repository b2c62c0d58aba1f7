import { hashApiKey, type Identities, type Identity, IdentityUnavailable, isApiKey, type JwtVerifier, looksLikeJwt, oauthClientCredential } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import { type Metrics, startSeries, type TallyIncrement } from '../metrics/index.js';
import type { ResilientCounterStore } from '../counters/index.js';
import type { CheckHandler } from './check-method.js';
import type { CheckRequestWire } from '../grpc/index.js';
import type { CheckOutcome, CheckTrace, Tracing } from '../tracing/index.js';
import { CheckPlans, type Period } from './check-plan.js';
import { admit, conclude, denial, extractKey, type Admitted, type CheckRequestFacts, type DecideOptions } from './decide.js';
import type { Decision, DenialCode } from './decision.js';
import type { UsageIdentity } from './usage-identity.js';

export interface CheckDependencies {
  /** The current catalog: a reload swaps in a new object, whose plans the handler then compiles (check-plan.ts). */
  catalog: () => Catalog;
  identities: Pick<Identities, 'lookup'>;
  counters: ResilientCounterStore;
  clock: Clock;
  options: DecideOptions;
  periodOf: (anchor: number, at: number) => Period;
  metrics: Metrics;
  logger: Logger;
  /** Present when bearer JWTs are accepted beside API keys. */
  jwt?: JwtVerifier | undefined;
  /** Gives each allowed call its usage id and signature. */
  usage: Pick<UsageIdentity, 'stamp'>;
  /** Spans for each Check when tracing is on; absent or off, the Check allocates nothing for tracing. */
  tracing?: Pick<Tracing, 'check'> | undefined;
}

/** A key's identity: at once when held in memory, a promise when the identity store must be asked. */
type ResolveKey = (key: string) => Identity | undefined | Promise<Identity | undefined>;

/**
 * Decides one Check: identity and entitlement from memory, counters in one store call, never a database query.
 * A denial that needs no counters is answered synchronously; only the counter call, a JWT to verify, or a key not held
 * in memory (read from Redis) makes it wait.
 */
function decide(
  facts: CheckRequestFacts | undefined,
  plans: CheckPlans,
  deps: CheckDependencies,
  resolveApiKey: ResolveKey,
  trace: CheckTrace | undefined,
): Decision | Promise<Decision> {
  if (!facts) {
    return denial(400, 'malformed_request', 'The Check request carries no HTTP request method and path.', '', {});
  }
  // A bearer JWT is the credential unless an API key was sent in its own header.
  const bearer = deps.jwt && /^Bearer\s+(\S+)\s*$/i.exec(facts.headers.authorization ?? '')?.[1];
  if (deps.jwt && bearer && looksLikeJwt(bearer) && !facts.headers[deps.options.keyHeader]?.trim()) {
    return decideWithJwt(facts, plans, bearer, deps.jwt, resolveApiKey, deps, trace);
  }
  return decideFor(facts, plans, resolveApiKey, deps.options, deps, trace);
}

async function decideWithJwt(
  facts: CheckRequestFacts,
  plans: CheckPlans,
  bearer: string,
  jwt: JwtVerifier,
  resolveApiKey: ResolveKey,
  deps: CheckDependencies,
  trace: CheckTrace | undefined,
): Promise<Decision> {
  const verified = await jwt.verify(bearer);
  if (!verified.ok) {
    return denial(verified.failure === 'jwks_unavailable' ? 503 : 401, verified.failure, verified.message, facts.requestId, { request_id: facts.requestId });
  }
  let client: Identity | undefined;
  try {
    client = await deps.identities.lookup(oauthClientCredential(verified.clientId).hash);
  } catch (error) {
    return identityUnavailable(error, facts);
  }
  const resolveKey = (key: string) => (key === bearer ? client : resolveApiKey(key));
  // The verified token is the credential even where bearer API keys are turned off.
  return decideFor(facts, plans, resolveKey, { ...deps.options, keyFromBearer: true }, deps, trace);
}

/** Resolves the key first (admit is pure and synchronous): from memory at once, or after the identity store answers. */
function decideFor(
  facts: CheckRequestFacts,
  plans: CheckPlans,
  resolveKey: ResolveKey,
  options: DecideOptions,
  deps: CheckDependencies,
  trace: CheckTrace | undefined,
): Decision | Promise<Decision> {
  const key = extractKey(facts.headers, options);
  const identity = key === undefined ? undefined : resolveKey(key);
  if (identity instanceof Promise) {
    return identity.then(
      (resolved) => admitAndCount(facts, plans, resolved, options, deps, trace),
      (error: unknown) => identityUnavailable(error, facts),
    );
  }
  return admitAndCount(facts, plans, identity, options, deps, trace);
}

/** The identity store could not say who the key belongs to: refused, never let through unidentified. */
function identityUnavailable(error: unknown, facts: CheckRequestFacts): Decision {
  if (!(error instanceof IdentityUnavailable)) throw error;
  return denial(503, 'identity_unavailable', 'The API key cannot be checked right now; retry shortly.', facts.requestId, { request_id: facts.requestId }, {}, { 'retry-after': '1' });
}

function admitAndCount(
  facts: CheckRequestFacts,
  plans: CheckPlans,
  identity: Identity | undefined,
  options: DecideOptions,
  deps: CheckDependencies,
  trace: CheckTrace | undefined,
): Decision | Promise<Decision> {
  const now = deps.clock.now();
  const admission = admit(facts, { plans, options, now, resolveKey: () => identity, periodOf: deps.periodOf });
  trace?.decided();
  if (!admission.admitted) return admission.decision;
  const { next } = admission;
  const { upgradeUrl } = plans.catalog;
  if (next.limits.length === 0) return stamped(conclude(next, { allowed: true, outcomes: [] }, facts, deps.options, upgradeUrl), next, deps);
  trace?.countStarted(next.limits.length);
  const counted = deps.counters.consumeOrDegrade({ scope: next.scope, now, limits: next.limits, limitSetId: next.compiled.limitSetId });
  return (trace ? traceCount(counted, trace) : counted).then((answer) => stamped(conclude(next, answer, facts, deps.options, upgradeUrl), next, deps));
}

/** Ends the counter-store call's span when the call settles. */
function traceCount<T extends object>(counted: Promise<T>, trace: CheckTrace): Promise<T> {
  return counted.then(
    (answer) => {
      trace.countEnded('degraded' in answer ? String(answer.degraded) : undefined);
      return answer;
    },
    (error: unknown) => {
      trace.countFailed(error);
      throw error;
    },
  );
}

/** An allowed call gets its usage identity here, outside the pure core: issuing ids is stateful. */
function stamped(decision: Decision, admitted: Admitted, deps: CheckDependencies): Decision {
  if (decision.allowed) deps.usage.stamp(decision.requestMetadata, admitted.compiled.usageFacts);
  return decision;
}

/** The handler answers with the Decision itself: check-response-encoder.ts serializes it to a CheckResponse. */
/** Denials decided once the key's plan is known (see decide.ts), and those decided before or without it. */
const denialsWithPlan = ['unknown_endpoint', 'not_entitled', 'rate_limited', 'quota_exhausted', 'wallet_exhausted', 'limits_unavailable'] as const satisfies readonly DenialCode[];
const denialsWithoutPlan = ['missing_key', 'invalid_key', 'key_revoked', 'account_suspended', 'subscription_inactive', 'identity_unavailable', 'malformed_request', 'internal_error'] as const satisfies readonly DenialCode[];

/**
 * Check decisions exported at 0 from the start, so that rate() sees their first event: for every plan of the
 * catalog, allowed and refused for the reasons decided once the plan is known; with no plan, refused for the
 * reasons decided before it (credentials) or without one (errors).
 */
export function startDecisionSeries(metrics: Pick<Metrics, 'checkDecisions'>, planIds: Iterable<string>): void {
  const labelSets: { result: string; reason: string; plan: string }[] = [];
  for (const plan of planIds) {
    labelSets.push({ result: 'allow', reason: '', plan }, ...denialsWithPlan.map((reason) => ({ result: 'deny', reason, plan })));
  }
  labelSets.push(...denialsWithoutPlan.map((reason) => ({ result: 'deny', reason, plan: '' })));
  startSeries(metrics.checkDecisions, labelSets);
}

export function createCheckHandler(deps: CheckDependencies): CheckHandler {
  // The label combinations are few (plan × reason, the reason empty for an allow): each is bound once and kept.
  const decisionCounters = new Map<string, Map<string, TallyIncrement>>();
  const checkDuration = deps.metrics.checkDuration.bind();
  const countDecision = (plan: string, reason: string) => {
    let byReason = decisionCounters.get(plan);
    if (!byReason) decisionCounters.set(plan, (byReason = new Map()));
    let counter = byReason.get(reason);
    if (!counter) byReason.set(reason, (counter = deps.metrics.checkDecisions.bind({ result: reason === '' ? 'allow' : 'deny', reason, plan })));
    counter.inc();
  };
  const failed = (request: CheckRequestWire, error: unknown): Decision => {
    // A bug must not turn into Envoy's error path with unknown effect: answer an explicit 503 denial.
    deps.logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'check failed');
    const requestId = request?.attributes?.request?.http?.headers?.['x-request-id'] ?? '';
    return denial(503, 'internal_error', 'The request could not be authorized; retry shortly.', requestId, {});
  };
  const logAnswerFailure = (error: unknown) =>
    deps.logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'check response failed');
  // Nothing here may throw or reject unhandled: a bug answers a 503, and a failure to answer must not end the process.
  type Call = Parameters<CheckHandler>[1];
  const answer = (call: Call, started: number, decision: Decision, trace: CheckTrace | undefined, failure?: unknown) => {
    try {
      countDecision(String(decision.metadata.plan_id ?? ''), decision.allowed ? '' : decision.code);
      checkDuration.observe((performance.now() - started) / 1000);
      call.respond(decision);
      trace?.end(checkOutcome(decision, failure));
    } catch (error) {
      logAnswerFailure(error);
    }
  };
  const answerFailure = (request: CheckRequestWire, call: Call, started: number, error: unknown, trace: CheckTrace | undefined) => {
    let decision: Decision;
    try {
      decision = failed(request, error);
    } catch (failure) {
      logAnswerFailure(failure);
      return;
    }
    answer(call, started, decision, trace, error);
  };
  const resolveApiKey = (key: string) => (isApiKey(key) ? deps.identities.lookup(hashApiKey(key)) : undefined);
  // Read once: with tracing off this stays undefined, and a Check neither reads trace headers nor allocates for spans.
  const checkTracer = deps.tracing?.check;
  // The catalog's plans, compiled on the first Check after each (re)load: one comparison per Check to notice a reload.
  let plans: CheckPlans | undefined;
  const currentPlans = (): CheckPlans => {
    const catalog = deps.catalog();
    if (plans?.catalog !== catalog) plans = new CheckPlans(catalog, deps.options.headerPrefix);
    return plans;
  };
  return (request, call) => {
    const started = performance.now();
    let trace: CheckTrace | undefined;
    let decision: Decision | Promise<Decision>;
    try {
      const facts = toFacts(request);
      if (checkTracer) trace = checkTracer.start(facts?.headers, facts?.requestId ?? '');
      decision = decide(facts, currentPlans(), deps, resolveApiKey, trace);
    } catch (error) {
      answerFailure(request, call, started, error, trace);
      return;
    }
    if (decision instanceof Promise) {
      decision.then(
        (decided) => answer(call, started, decided, trace),
        (error: unknown) => answerFailure(request, call, started, error, trace),
      );
    } else {
      answer(call, started, decision, trace);
    }
  };
}

/** A decision as the Check's span records it: identifiers and codes only. */
function checkOutcome(decision: Decision, failure: unknown): CheckOutcome {
  const { metadata } = decision;
  const text = (value: string | number | undefined) => (value === undefined ? undefined : String(value));
  return {
    allowed: decision.allowed,
    reason: decision.allowed ? '' : decision.code,
    status: decision.allowed ? undefined : decision.status,
    customerId: text(metadata.customer_id),
    planId: text(metadata.plan_id),
    endpointId: text(metadata.endpoint_id),
    degraded: decision.allowed ? text(decision.requestMetadata.degraded) : undefined,
    failure,
  };
}

function toFacts(wire: CheckRequestWire): CheckRequestFacts | undefined {
  const http = wire?.attributes?.request?.http;
  if (!http || !http.method || !http.path) return undefined;
  let headers = http.headers ?? {};
  if (http.header_map?.headers?.length) {
    headers = {};
    for (const header of http.header_map.headers) {
      headers[(header.key ?? '').toLowerCase()] = header.value ?? header.raw_value?.toString('utf8') ?? '';
    }
  }
  return {
    method: http.method,
    host: http.host ?? headers[':authority'] ?? headers.host ?? '',
    path: http.path,
    headers,
    requestId: headers['x-request-id'] ?? http.id ?? '',
  };
}
