import { SpanKind, type Attributes } from '@opentelemetry/api';

export { SpanKind };
export type SpanAttributes = Attributes;

/** What the Check decided, as its span records it: identifiers and codes, never the key or other credentials. */
export interface CheckOutcome {
  allowed: boolean;
  /** The denial code; empty for an allow. */
  reason: string;
  /** The denial's HTTP status. */
  status?: number | undefined;
  customerId?: string | undefined;
  planId?: string | undefined;
  endpointId?: string | undefined;
  /** Set when the limits were not counted (the counter store was down): the failure mode applied. */
  degraded?: string | undefined;
  /** A bug that turned into a 503: the span is marked failed. */
  failure?: unknown;
}

/** One Check's spans: the Check itself (server), and its two children, the decision and the counter-store call. */
export interface CheckTrace {
  /** The decision is made (identity, route, entitlement, limits to count): ends its span. */
  decided(): void;
  countStarted(limits: number): void;
  countEnded(degraded: string | undefined): void;
  countFailed(error: unknown): void;
  /** Ends every span still open, the Check's last, with the outcome's attributes. */
  end(outcome: CheckOutcome): void;
}

/** Starts a Check's spans. Exists only while tracing is on (Tracing.check). */
export interface CheckTracer {
  /**
   * Starts a Check's span: a child of the caller's span when the HTTP request's headers (Envoy copies them into the
   * CheckRequest) carry a valid W3C `traceparent` (and `tracestate`), else the root of a new trace.
   */
  start(headers: Readonly<Record<string, string>> | undefined, requestId: string): CheckTrace;
}

/** The span work runs in: attributes learned along the way, and child spans. */
export interface SpanScope {
  set(attributes: SpanAttributes): void;
  /** Runs `work` in a child span; see Tracing.span. */
  child<T>(name: string, attributes: SpanAttributes, work: (scope: SpanScope) => T, kind?: SpanKind): T;
}

/**
 * The tracing port: the OpenTelemetry SDK behind it when tracing is on (tracing/otel.ts), `noTracing` when off.
 * Background work (ingest, rating, Stripe sync) runs its passes in spans; the Check has its own, allocation-free
 * when off, path (`check`).
 */
export interface Tracing {
  readonly enabled: boolean;
  /** The Check's spans; undefined when tracing is off, so the hot path tests one reference and allocates nothing. */
  readonly check: CheckTracer | undefined;
  /**
   * Runs `work` in a new root span, ended when `work` returns or, if it returns a promise, when that settles. A
   * throw or rejection marks the span failed (its message recorded, not its stack) and is passed on.
   */
  span<T>(name: string, attributes: SpanAttributes, work: (scope: SpanScope) => T, kind?: SpanKind): T;
  /** Exports every ended span now. */
  forceFlush(): Promise<void>;
  /** Exports what is left and stops exporting. */
  shutdown(): Promise<void>;
}

const noScope: SpanScope = {
  set: () => {},
  child: (_name, _attributes, work) => work(noScope),
};

export const noTracing: Tracing = {
  enabled: false,
  check: undefined,
  span: (_name, _attributes, work) => work(noScope),
  forceFlush: async () => {},
  shutdown: async () => {},
};
