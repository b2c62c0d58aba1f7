import { SpanKind, type Attributes } from '@opentelemetry/api';
import type { CheckTracer } from './check-trace.js';

export { SpanKind };
export type SpanAttributes = Attributes;

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
