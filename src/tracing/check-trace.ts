import { ROOT_CONTEXT, SpanKind, defaultTextMapGetter, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { spanNames } from './span-names.js';
import { recordFailure } from './spans.js';
import type { CheckOutcome, CheckTrace, CheckTracer } from './tracing.js';

const rpcAttributes = { 'rpc.system': 'grpc', 'rpc.service': 'envoy.service.auth.v3.Authorization', 'rpc.method': 'Check' } as const;

/** A Check the sampler left out: nothing recorded, nothing allocated. */
const unrecorded: CheckTrace = {
  decided: () => {},
  countStarted: () => {},
  countEnded: () => {},
  countFailed: () => {},
  end: () => {},
};

/** Starts Check spans, continuing the caller's W3C trace. */
export class W3CCheckTracer implements CheckTracer {
  private readonly propagator = new W3CTraceContextPropagator();

  constructor(private readonly tracer: Tracer) {}

  start(headers: Readonly<Record<string, string>> | undefined, requestId: string): CheckTrace {
    const parent = headers?.traceparent ? this.propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter) : ROOT_CONTEXT;
    const span = this.tracer.startSpan(spanNames.check, { kind: SpanKind.SERVER, attributes: rpcAttributes }, parent);
    if (!span.isRecording()) return unrecorded;
    if (requestId) span.setAttribute('tollgate.request_id', requestId);
    return new RecordedCheckTrace(this.tracer, span, trace.setSpan(parent, span));
  }
}

class RecordedCheckTrace implements CheckTrace {
  private deciding: Span | undefined;
  private counting: Span | undefined;

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    private readonly context: Context,
  ) {
    this.deciding = tracer.startSpan(spanNames.checkDecide, { kind: SpanKind.INTERNAL }, context);
  }

  decided(): void {
    this.deciding?.end();
    this.deciding = undefined;
  }

  countStarted(limits: number): void {
    this.counting = this.tracer.startSpan(spanNames.checkCount, { kind: SpanKind.INTERNAL, attributes: { 'tollgate.limits': limits } }, this.context);
  }

  countEnded(degraded: string | undefined): void {
    if (degraded) this.counting?.setAttribute('tollgate.degraded', degraded);
    this.counting?.end();
    this.counting = undefined;
  }

  countFailed(error: unknown): void {
    if (this.counting) recordFailure(this.counting, error);
    this.countEnded(undefined);
  }

  end(outcome: CheckOutcome): void {
    this.decided();
    this.countEnded(undefined);
    const { span } = this;
    span.setAttribute('tollgate.decision', outcome.allowed ? 'allow' : 'deny');
    if (outcome.reason) span.setAttribute('tollgate.reason', outcome.reason);
    if (outcome.status !== undefined) span.setAttribute('tollgate.denial.status', outcome.status);
    if (outcome.customerId) span.setAttribute('tollgate.customer.id', outcome.customerId);
    if (outcome.planId) span.setAttribute('tollgate.plan.id', outcome.planId);
    if (outcome.endpointId) span.setAttribute('tollgate.endpoint.id', outcome.endpointId);
    if (outcome.degraded) span.setAttribute('tollgate.degraded', outcome.degraded);
    if (outcome.failure !== undefined) recordFailure(span, outcome.failure);
    span.end();
  }
}
