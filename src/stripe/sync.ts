import { invalid, type Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import { noTracing, spanNames, type SpanScope, type Tracing } from '../tracing/index.js';
import type { Dunning } from './dunning.js';
import type { OutboxItem, StripeOutbox, StripeWorkKind } from './outbox.js';
import { decideAfterFailure, type RetryPolicy } from './retry.js';
import type { StripeUsageReports } from './usage.js';
import { workFor, type StripeWork } from './work.js';

const batchSize = 100;

export type WorkHandler = (work: StripeWork) => Promise<void>;

export interface StripeSyncDeps {
  db: Db;
  outbox: StripeOutbox;
  /** Without handlers (no secret key), the loop only applies payment grace expiry; work waits in the outbox. */
  handlers: Record<StripeWorkKind, WorkHandler> | undefined;
  dunning: Dunning;
  usage: StripeUsageReports | undefined;
  policy: RetryPolicy;
  /** Work items run at once. */
  concurrency: number;
  metrics: Metrics;
  logger: Logger;
  /** A span per pass, with a child per work item; runNow's item gets a span of its own. */
  tracing?: Pick<Tracing, 'span'> | undefined;
}

export interface PassSummary {
  /** Work items attempted, by outcome. */
  done: number;
  retried: number;
  dead: number;
  suspended: number;
}

/**
 * The Stripe sync loop's pass, run by the scheduler (src/app.ts) on the leader only:
 * suspend customers whose payment grace period is over, queue meter-mode usage that grew (when a scan is due), then
 * work through the due outbox items.
 */
export class StripeSync {
  /** The first pass scans; later ones when requestUsageScan() said so (a job of its own, on its own interval). */
  private usageScanDue = true;

  private readonly tracing: Pick<Tracing, 'span'>;

  constructor(private readonly deps: StripeSyncDeps) {
    this.tracing = deps.tracing ?? noTracing;
  }

  /** The next pass queues the meter-mode usage that grew; until then passes only work through the outbox. */
  requestUsageScan(): void {
    this.usageScanDue = true;
  }

  /** One pass; an aborted `signal` (the service stopping) ends it after the items in hand. Run it as the leader. */
  pass(signal?: AbortSignal): Promise<PassSummary> {
    return this.tracing.span(spanNames.stripeSyncPass, {}, async (scope) => {
      const summary = await this.work(scope, signal);
      scope.set({ 'tollgate.leader': true, ...summaryAttributes(summary) });
      return summary;
    });
  }

  private async work(scope: SpanScope, signal: AbortSignal | undefined): Promise<PassSummary> {
    const summary: PassSummary = { done: 0, retried: 0, dead: 0, suspended: await this.deps.dunning.suspendOverdue() };
    const { usage, handlers } = this.deps;
    if (!handlers) return summary;
    if (usage && this.usageScanDue) {
      this.usageScanDue = false;
      await usage.enqueueGrown();
    }
    for (;;) {
      const due = await this.deps.outbox.due(batchSize);
      const queue = [...due];
      await Promise.all(
        Array.from({ length: this.deps.concurrency }, async () => {
          for (let item = queue.shift(); item && !signal?.aborted; item = queue.shift()) summary[await this.run(item, handlers, scope)] += 1;
        }),
      );
      if (due.length < batchSize || signal?.aborted) return summary;
    }
  }

  /**
   * Runs one item now, outside the loop (a top-up's Checkout session, whose URL the caller waits for). Safe next
   * to the leader: every handler is idempotent.
   */
  async runNow(kind: StripeWorkKind, subjectId: string): Promise<void> {
    const item = await this.deps.outbox.find(kind, subjectId);
    if (item?.status === 'pending' && this.deps.handlers) await this.run(item, this.deps.handlers, undefined);
  }

  /** Runs one item in a span: a child of the pass's, or a root of its own outside a pass. */
  private run(item: OutboxItem, handlers: Record<StripeWorkKind, WorkHandler>, pass: SpanScope | undefined): Promise<'done' | 'retried' | 'dead'> {
    const attributes = { 'tollgate.stripe.work.kind': item.kind, 'tollgate.stripe.work.attempt': item.attempts + 1 };
    const work = async (scope: SpanScope) => {
      const outcome = await this.attempt(item, handlers);
      scope.set({ 'tollgate.stripe.work.outcome': outcome });
      return outcome;
    };
    return pass ? pass.child(spanNames.stripeWork, attributes, work) : this.tracing.span(spanNames.stripeWork, attributes, work);
  }

  private async attempt(item: OutboxItem, handlers: Record<StripeWorkKind, WorkHandler>): Promise<'done' | 'retried' | 'dead'> {
    const { outbox, policy, metrics, logger } = this.deps;
    const handler = handlers[item.kind] as WorkHandler | undefined;
    try {
      if (!handler) throw invalid('kind', `no handler for Stripe work of kind ${item.kind}`);
      await handler(workFor(item));
      await outbox.complete(item);
      metrics.stripeSyncAttempts.inc({ kind: item.kind, result: 'done' });
      return 'done';
    } catch (error) {
      const decision = decideAfterFailure(error, item.attempts + 1, policy);
      if (decision.action === 'retry') {
        await outbox.reschedule(item, decision.delayMs, decision.reason, decision.renewKeys);
        metrics.stripeSyncAttempts.inc({ kind: item.kind, result: 'retry' });
        logger.debug({ item: item.id, kind: item.kind, subject: item.subjectId, delayMs: decision.delayMs, err: decision.reason }, 'Stripe work failed; retrying');
        return 'retried';
      }
      await outbox.bury(item, decision.reason);
      metrics.stripeSyncAttempts.inc({ kind: item.kind, result: 'dead' });
      logger.error({ item: item.id, kind: item.kind, subject: item.subjectId, err: decision.reason }, 'Stripe work moved to the dead letters');
      return 'dead';
    }
  }
}

const summaryAttributes = (summary: PassSummary) => ({
  'tollgate.stripe.done': summary.done,
  'tollgate.stripe.retried': summary.retried,
  'tollgate.stripe.dead': summary.dead,
  'tollgate.stripe.suspended': summary.suspended,
});
