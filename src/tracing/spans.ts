import { SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { SpanAttributes, SpanScope } from './tracing.js';

/** Marks a span failed with the error's type and message; stacks stay in the logs. */
export function recordFailure(span: Span, error: unknown): void {
  const failure = error instanceof Error ? error : new Error(String(error));
  span.recordException({ name: failure.name, message: failure.message });
  span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
}

/** Runs work in a span under `parent` (the root context starts a new trace); see Tracing.span. */
export function runInSpan<T>(tracer: Tracer, parent: Context, name: string, attributes: SpanAttributes, work: (scope: SpanScope) => T, kind = SpanKind.INTERNAL): T {
  const span = tracer.startSpan(name, { kind, attributes }, parent);
  let result: T;
  try {
    result = work(new OtelScope(tracer, span, parent));
  } catch (error) {
    recordFailure(span, error);
    span.end();
    throw error;
  }
  if (!isPromiseLike(result)) {
    span.end();
    return result;
  }
  return Promise.resolve(result).then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      recordFailure(span, error);
      span.end();
      throw error;
    },
  ) as T;
}

class OtelScope implements SpanScope {
  private context: Context | undefined;

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    private readonly parent: Context,
  ) {}

  set(attributes: SpanAttributes): void {
    this.span.setAttributes(attributes);
  }

  child<T>(name: string, attributes: SpanAttributes, work: (scope: SpanScope) => T, kind?: SpanKind): T {
    this.context ??= trace.setSpan(this.parent, this.span);
    return runInSpan(this.tracer, this.context, name, attributes, work, kind);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null | undefined)?.then === 'function';
}
