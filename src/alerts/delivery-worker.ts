/**
 * Sends due alert deliveries: each alert's event, signed, POSTed to the customer's webhook. A non-2xx answer, a
 * timeout or a connection failure is retried with exponential backoff and jitter (the Stripe sync's policy) until the
 * attempt budget is spent; then the delivery is dead.
 */
import { type Logger, TollgateError } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { decideAfterFailure, parseRetryAfter, type RetryPolicy } from '../stripe/index.js';
import type { AlertDeliveryLog, DueDelivery } from './deliveries.js';
import { alertEvent } from './records.js';
import { signatureHeader, signatureHeaderName } from './signature.js';

export interface DeliveryPassSummary {
  delivered: number;
  retried: number;
  dead: number;
}

export interface AlertDeliveryWorkerDeps {
  log: AlertDeliveryLog;
  policy: RetryPolicy;
  /** Longest wait for a webhook's answer. */
  timeoutMs: number;
  userAgent: string;
  metrics: Metrics;
  logger: Logger;
}

/** Deliveries taken per pass, and sent at once: a slow webhook holds up one slot, not the others. */
const batchSize = 100;
const concurrency = 8;
/** How much of a refusing webhook's answer the log keeps. */
const answerExcerptLength = 200;

/** A webhook answered with a status other than 2xx; a Retry-After it sent delays the next attempt (see retry.ts). */
class WebhookRefused extends Error {
  constructor(
    readonly statusCode: number,
    answer: string,
    readonly retryAfterMs: number,
  ) {
    super(`HTTP ${statusCode}${answer ? `: ${answer.slice(0, answerExcerptLength)}` : ''}`);
  }
}

export class AlertDeliveryWorker {
  constructor(private readonly deps: AlertDeliveryWorkerDeps) {}

  /** Attempts one batch of due deliveries. */
  async deliverDue(): Promise<DeliveryPassSummary> {
    const summary: DeliveryPassSummary = { delivered: 0, retried: 0, dead: 0 };
    const queue = await this.deps.log.due(batchSize);
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let item = queue.shift(); item; item = queue.shift()) summary[await this.attempt(item)] += 1;
      }),
    );
    return summary;
  }

  private async attempt(item: DueDelivery): Promise<keyof DeliveryPassSummary> {
    const { log, policy, metrics, logger } = this.deps;
    const attempt = item.attempts + 1;
    const context = { deliveryId: item.id, alertId: item.alert.id, customerId: item.alert.customerId, type: item.alert.type, attempt };
    try {
      // Our own refusal: decideAfterFailure buries it at once rather than retrying.
      if (!item.webhook) throw new TollgateError('not_found', 'the customer has no alert webhook any more');
      const statusCode = await this.post(item.webhook, JSON.stringify(alertEvent(item.alert)));
      await log.delivered(item.id, statusCode);
      metrics.alertDeliveries.inc({ result: 'delivered' });
      logger.info(context, 'usage alert delivered');
      return 'delivered';
    } catch (error) {
      const decision = decideAfterFailure(error, attempt, policy);
      const failure = { statusCode: error instanceof WebhookRefused ? error.statusCode : null, error: decision.reason };
      if (decision.action === 'retry') {
        await log.reschedule(item.id, decision.delayMs, failure);
        metrics.alertDeliveries.inc({ result: 'retry' });
        logger.warn({ ...context, delayMs: decision.delayMs, err: decision.reason }, 'usage alert delivery failed; retrying');
        return 'retried';
      }
      await log.bury(item.id, failure);
      metrics.alertDeliveries.inc({ result: 'dead' });
      logger.error({ ...context, err: decision.reason }, 'usage alert delivery dead');
      return 'dead';
    }
  }

  /** POSTs the body signed; returns the 2xx status or throws. The URL is not logged: it may carry a token. */
  private async post(webhook: { url: string; secret: string }, body: string): Promise<number> {
    // Signed with the time of sending, not the business clock: receivers check it against their own clocks.
    const timestamp = Math.floor(Date.now() / 1000);
    let response: Response;
    try {
      response = await fetch(webhook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': this.deps.userAgent, [signatureHeaderName]: signatureHeader(webhook.secret, body, timestamp) },
        body,
        // A redirect is an answer other than 2xx, not somewhere else to send the alert.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.deps.timeoutMs),
      });
    } catch (error) {
      throw new Error(unreachable(error, this.deps.timeoutMs));
    }
    // Read so the connection can be reused, and kept in the log when the webhook refuses.
    const answer = await response.text().catch(() => '');
    if (!response.ok) throw new WebhookRefused(response.status, answer, parseRetryAfter(response.headers.get('retry-after'), Date.now()));
    return response.status;
  }
}

function unreachable(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  // Error texts may quote the URL, which may carry a token: it is never logged or stored.
  return `connection failed: ${cause?.code ?? (cause?.message ?? (error as Error).message).replace(/\bhttps?:\/\/\S*/gi, '<webhook URL>')}`;
}
