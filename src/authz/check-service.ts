import type * as grpc from '@grpc/grpc-js';
import { hashApiKey, isApiKey, oauthClientCredential } from '../accounts/keys.js';
import type { IdentityCache } from '../accounts/identity-cache.js';
import type { Catalog } from '../catalog/catalog.js';
import type { Clock } from '../kernel/clock.js';
import type { Logger } from '../kernel/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ResilientCounterStore } from '../quota/resilient.js';
import type { CheckRequestWire } from '../grpc/wire.js';
import { admit, conclude, denial, type CheckRequestFacts, type DecideOptions, type Period } from './decide.js';
import type { Decision } from './decision.js';
import { looksLikeJwt, type JwtVerifier } from './jwt.js';

export interface CheckDependencies {
  catalog: () => Catalog;
  identities: IdentityCache;
  counters: ResilientCounterStore;
  clock: Clock;
  options: DecideOptions;
  periodOf: (anchor: number, at: number) => Period;
  metrics: Metrics;
  logger: Logger;
  /** Present when bearer JWTs are accepted beside API keys. */
  jwt?: JwtVerifier | undefined;
}

/** Decides one Check: identity and entitlement from memory, counters in one store call, never a database query. */
export async function decide(wire: CheckRequestWire, deps: CheckDependencies): Promise<Decision> {
  const facts = toFacts(wire);
  const catalog = deps.catalog();
  if (!facts) {
    return denial(400, 'malformed_request', 'The Check request carries no HTTP request method and path.', '', {});
  }
  const now = deps.clock.now();
  const resolveApiKey = (key: string) => (isApiKey(key) ? deps.identities.resolve(hashApiKey(key)) : undefined);
  let resolveKey = resolveApiKey;
  let options = deps.options;
  // A bearer JWT is the credential unless an API key was sent in its own header.
  const bearer = deps.jwt && /^Bearer\s+(\S+)\s*$/i.exec(facts.headers.authorization ?? '')?.[1];
  if (deps.jwt && bearer && looksLikeJwt(bearer) && !facts.headers[deps.options.keyHeader]?.trim()) {
    const verified = await deps.jwt.verify(bearer);
    if (!verified.ok) {
      return denial(verified.failure === 'jwks_unavailable' ? 503 : 401, verified.failure, verified.message, facts.requestId, { request_id: facts.requestId });
    }
    const client = deps.identities.resolve(oauthClientCredential(verified.clientId).hash);
    resolveKey = (key) => (key === bearer ? client : resolveApiKey(key));
    // The verified token is the credential even where bearer API keys are turned off.
    options = { ...deps.options, keyFromBearer: true };
  }
  const admission = admit(facts, { catalog, options, now, resolveKey, periodOf: deps.periodOf });
  if (!admission.admitted) return admission.decision;
  const { next } = admission;
  const answer =
    next.limits.length === 0
      ? { allowed: true, outcomes: [] }
      : await deps.counters.consumeOrDegrade({ scope: next.scope, now, limits: next.limits });
  return conclude(next, answer, facts, deps.options, catalog.upgradeUrl);
}

/** The handler answers with the Decision itself: grpc/check-response-encoder.ts serializes it to a CheckResponse. */
export function createCheckHandler(deps: CheckDependencies): grpc.handleUnaryCall<CheckRequestWire, Decision> {
  // Label lookups hash their label set on every call; the combinations are few (result × reason × plan), so the
  // bound counters are kept.
  const decisionCounters = new Map<string, { inc(): void }>();
  const countDecision = (result: string, reason: string, plan: string) => {
    const id = `${result}\u0000${reason}\u0000${plan}`;
    let counter = decisionCounters.get(id);
    if (!counter) decisionCounters.set(id, (counter = deps.metrics.checkDecisions.labels({ result, reason, plan })));
    counter.inc();
  };
  const failed = (call: { request: CheckRequestWire }, error: unknown): Decision => {
    // A bug must not turn into Envoy's error path with unknown effect: answer an explicit 503 denial.
    deps.logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'check failed');
    const requestId = call.request?.attributes?.request?.http?.headers?.['x-request-id'] ?? '';
    return denial(503, 'internal_error', 'The request could not be authorized; retry shortly.', requestId, {});
  };
  return (call, callback) => {
    const started = performance.now();
    const respond = (decision: Decision) => {
      countDecision(decision.allowed ? 'allow' : 'deny', decision.allowed ? '' : decision.code, String(decision.metadata.plan_id ?? ''));
      deps.metrics.checkDuration.observe((performance.now() - started) / 1000);
      callback(null, decision);
    };
    decide(call.request, deps)
      .then(respond, (error: unknown) => respond(failed(call, error)))
      // Nothing after the decision may reject unhandled: that would end the process.
      .catch((error: unknown) => deps.logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'check response failed'));
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
