import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { CatalogError, parseCatalog } from '../src/catalog/load.js';
import { loadConfig } from '../src/config/config.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { jsonOf, runCli } from './support/cli.js';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';
import { markForRating } from './support/usage.js';

/** Issue #8: usage alerts, from the catalog's thresholds to a signed webhook a customer's server verifies. */

const at = (iso: string) => Date.parse(iso);

const catalogYaml = `version: 1
products:
  - id: api
    name: API
    endpoints:
      - { id: list, method: GET, path: /api/v1/pets }
plans:
  - id: metered
    product: api
    name: Metered
    entitlements: ["*"]
    quota: { units: 1000, when_exhausted: allow_overage }
    pricing: { currency: USD, usage: { model: per_unit, unit_price: "0.15" } }
    alerts:
      - { quota_percent: 80 }
      - { quota_percent: 100 }
      - { spend_above: "100.00" }
  - id: prepaid
    product: api
    name: Prepaid
    entitlements: ["*"]
    pricing: { currency: USD, mode: prepaid, setup_fee: "5.00", endpoint_prices: { "*": "0.01" } }
    alerts:
      - { wallet_below: "5.00" }
  - id: small
    product: api
    name: Small
    entitlements: ["*"]
    quota: { units: 10 }
    alerts:
      - { quota_percent: 80 }
`;

/** The verification recipe of docs/USAGE-ALERTS.md, as a customer's server runs it. */
function verifySignature(secret: string, rawBody: string, header: string, toleranceSeconds = 300): boolean {
  const fields = new Map(header.split(',').map((part) => part.split('=', 2) as [string, string]));
  const timestamp = fields.get('t') ?? '';
  const expected = createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest();
  const given = Buffer.from(fields.get('v1') ?? '', 'hex');
  const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) <= toleranceSeconds;
  return fresh && given.length === expected.length && timingSafeEqual(given, expected);
}

/** A status, a status with a Retry-After header, or no answer at all. */
type Answer = number | { status: number; retryAfter: string } | 'hang';

/** A customer's webhook endpoint: records every request and answers as told per path (200 once told nothing). */
class AlertReceiver {
  readonly received: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
  private readonly answers = new Map<string, Answer[]>();

  private constructor(private readonly server: Server) {
    server.on('request', (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const path = request.url ?? '/';
        this.received.push({ path, headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        const answer = this.answers.get(path)?.shift() ?? 200;
        if (answer === 'hang') return;
        const { status, retryAfter } = typeof answer === 'number' ? { status: answer, retryAfter: undefined } : answer;
        response.writeHead(status, { 'content-type': 'text/plain', ...(retryAfter ? { 'retry-after': retryAfter } : {}) }).end(status === 200 ? 'ok' : 'receiver failed');
      });
    });
  }

  static async start(): Promise<AlertReceiver> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new AlertReceiver(server);
  }

  url(path: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  answerNext(path: string, ...answers: Answer[]): void {
    this.answers.set(path, answers);
  }

  at(path: string) {
    return this.received.filter((request) => request.path === path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('usage alerts in the catalog', () => {
  const withAlerts = (plan: string, alerts: string) => `version: 1
products:
  - id: api
    name: API
    endpoints:
      - { id: list, method: GET, path: /things }
plans:
  - id: p
    product: api
    name: P
    entitlements: ["*"]
${plan}
    alerts:
${alerts}`;
  const problemsOf = (text: string) => {
    try {
      parseCatalog(text, 'c.yaml');
    } catch (error) {
      expect(error).toBeInstanceOf(CatalogError);
      return (error as CatalogError).problems.map(({ line, path, message }) => ({ line, path, message }));
    }
    throw new Error('the catalog loaded');
  };

  it('loads thresholds of each kind', () => {
    const catalog = parseCatalog(catalogYaml);
    expect(catalog.plan('metered')!.alerts).toEqual([{ quota_percent: 80 }, { quota_percent: 100 }, { spend_above: '100.00' }]);
    expect(catalog.plan('prepaid')!.alerts).toEqual([{ wallet_below: '5.00' }]);
  });

  it('reports a malformed threshold at its line', () => {
    const problems = problemsOf(
      withAlerts('    quota: { units: 100 }', ['      - { quota_percent: 80, spend_above: "1.00" }', '      - { quota_percent: "80" }', '      - { spend_below: "1.00" }'].join('\n')),
    );
    expect(problems).toEqual([
      { line: 14, path: 'plans[0].alerts[0]', message: 'an alert names exactly one of quota_percent, wallet_below, spend_above; this one names 2' },
      { line: 15, path: 'plans[0].alerts[1].quota_percent', message: expect.stringContaining('expected number') },
      { line: 16, path: 'plans[0].alerts[2].spend_below', message: expect.stringMatching(/unrecognized key/i) },
      { line: 16, path: 'plans[0].alerts[2]', message: 'an alert names exactly one of quota_percent, wallet_below, spend_above; this one names 0' },
    ]);
  });

  it('checks thresholds against the plan: its quota, prepaid mode, currency, and duplicates', () => {
    expect(problemsOf(withAlerts('    pricing: { currency: JPY }', ['      - { quota_percent: 80 }', '      - { wallet_below: "5" }', '      - { spend_above: "1.5" }'].join('\n')))).toEqual([
      { line: 14, path: 'plans[0].alerts[0].quota_percent', message: 'the plan has no quota to take a percentage of' },
      { line: 15, path: 'plans[0].alerts[1].wallet_below', message: 'wallet_below needs a prepaid plan (pricing.mode: prepaid)' },
      { line: 16, path: 'plans[0].alerts[2].spend_above', message: '"1.5" has more decimals than JPY allows (0)' },
    ]);
    expect(problemsOf(withAlerts('    quota: { units: 100 }', '      - { spend_above: "1.00" }'))).toEqual([
      { line: 14, path: 'plans[0].alerts[0].spend_above', message: "spend_above needs the plan's pricing, whose currency it is in" },
    ]);
    expect(problemsOf(withAlerts('    pricing: { currency: USD }', ['      - { spend_above: "5" }', '      - { spend_above: "5.00" }'].join('\n')))).toEqual([
      { line: 15, path: 'plans[0].alerts[1].spend_above', message: 'duplicate alert threshold' },
    ]);
  });
});

/** A temporary catalog file with the plans above, for the service to load. */
function writeCatalog(): { file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-alerts-'));
  const file = join(dir, 'catalog.yaml');
  writeFileSync(file, catalogYaml);
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

describe.each(['embedded', 'production'] as const)('usage alerts (%s)', (mode) => {
  let service: TestApp;
  let receiver: AlertReceiver;
  let catalog: ReturnType<typeof writeCatalog>;
  const clock = new ManualClock(at('2026-11-01T00:00:00Z'));
  let suffix = 0;

  beforeAll(async () => {
    receiver = await AlertReceiver.start();
    catalog = writeCatalog();
    service = await startTestApp({
      mode,
      clock,
      env: {
        TOLLGATE_CATALOG: catalog.file,
        // Evaluation runs when a test asks, at the clock it set; deliveries go out by themselves, quickly.
        TOLLGATE_ALERTS_EVALUATION_INTERVAL_MS: '0',
        TOLLGATE_ALERTS_DELIVERY_INTERVAL_MS: '20',
        TOLLGATE_ALERTS_RETRY_BASE_MS: '50',
        TOLLGATE_ALERTS_RETRY_MAX_MS: '100',
        TOLLGATE_ALERTS_MAX_ATTEMPTS: '3',
        TOLLGATE_ALERTS_TIMEOUT_MS: '300',
      },
    });
    await service.app.ratingLoop.stop();
  });
  afterAll(async () => {
    await service?.close();
    await receiver?.close();
    catalog?.remove();
  });

  /** A customer whose webhook is `receiver` at /hooks/<customer> (unless told otherwise), subscribed to `plan`. */
  async function subscribedCustomer(plan: string, options: { webhook: boolean } = { webhook: true }) {
    const id = `alerted-${mode}-${++suffix}`;
    expect((await service.admin('POST', '/v1/customers', { id, name: id })).status).toBe(201);
    const path = `/hooks/${id}`;
    let secret = '';
    if (options.webhook) {
      const set = await service.admin('PUT', `/v1/customers/${id}/alert-webhook`, { url: receiver.url(path) });
      expect(set.status, JSON.stringify(set.body)).toBe(200);
      secret = set.body.secret;
    }
    if (plan === 'prepaid') expect((await service.admin('POST', `/v1/customers/${id}/wallet/top-ups`, { amount: '8.00', reference: `${id}-1` })).status).toBe(201);
    const purchase = await service.admin('POST', `/v1/customers/${id}/purchases`, { plan });
    expect(purchase.status, JSON.stringify(purchase.body)).toBe(201);
    return { id, path, secret, subscriptionId: purchase.body.subscription.id as string };
  }

  /** Sets a subscription period's metered units, as the metering pipeline's rollups would hold them. */
  async function setUsage(customerId: string, subscriptionId: string, periodStart: number, units: number) {
    await service.app.db.query(
      `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units,
         denied_calls, request_bytes, response_bytes) VALUES ($1, $2, $3, 'list', $4, $4, $4, $4, 0, 0, 0)
       ON CONFLICT (customer_id, subscription_id, period_start, endpoint_id) DO UPDATE SET
         calls = excluded.calls, units = excluded.units, billable_calls = excluded.billable_calls, billable_units = excluded.billable_units`,
      [customerId, subscriptionId, new Date(periodStart), units],
    );
    await markForRating(service.app.db, [subscriptionId]);
  }

  const evaluate = async () => (await service.app.alerts.evaluation.runOnce())!;
  const alertsOf = async (customerId: string) => (await service.admin('GET', `/v1/customers/${customerId}/alerts`)).body.data as { event: any; delivery: any }[];
  const deliveriesOf = async (customerId: string) => (await service.admin('GET', `/v1/alerts/deliveries?customer=${customerId}`)).body.data as any[];

  it('sends a signed quota alert the receiver verifies, once per period however often the threshold is crossed, and again next period', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customer = await subscribedCustomer('metered');
    expect(customer.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const shown = await service.admin('GET', `/v1/customers/${customer.id}/alert-webhook`);
    expect(shown.body).toEqual(expect.objectContaining({ url: receiver.url(customer.path), secretPrefix: customer.secret.slice(0, 12) }));
    expect(JSON.stringify(shown.body)).not.toContain(customer.secret);

    const november = at('2026-11-01T00:00:00Z');
    clock.set(at('2026-11-10T00:00:00Z'));
    await setUsage(customer.id, customer.subscriptionId, november, 700);
    expect(await evaluate()).toEqual([]);
    await setUsage(customer.id, customer.subscriptionId, november, 850);
    expect((await evaluate()).map((alert) => alert.type)).toEqual(['quota.threshold_reached']);

    await expect.poll(() => receiver.at(customer.path).length, { timeout: 5_000, interval: 20 }).toBe(1);
    const [request] = receiver.at(customer.path);
    expect(request!.headers['content-type']).toBe('application/json');
    const signature = request!.headers['tollgate-signature'] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifySignature(customer.secret, request!.body, signature)).toBe(true);
    expect(verifySignature(customer.secret, request!.body.replace('850', '851'), signature)).toBe(false);
    expect(verifySignature('whsec_another', request!.body, signature)).toBe(false);
    // Stripe's own library accepts the header too: same scheme, same key handling.
    expect(Stripe.webhooks.constructEvent(request!.body, signature, customer.secret)).toMatchObject({ type: 'quota.threshold_reached' });
    const event = JSON.parse(request!.body);
    expect(event).toEqual({
      id: expect.stringMatching(/^alrt_/),
      type: 'quota.threshold_reached',
      created_at: '2026-11-10T00:00:00.000Z',
      customer: customer.id,
      subscription: customer.subscriptionId,
      plan: 'metered',
      period: { start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' },
      threshold: { quota_percent: 80 },
      current: { used_units: 850, quota_units: 1000, percent: 85 },
    });

    // Down under 80 % (a correction) and over it again: the period's alert has fired, nothing more is sent.
    await setUsage(customer.id, customer.subscriptionId, november, 500);
    expect(await evaluate()).toEqual([]);
    await setUsage(customer.id, customer.subscriptionId, november, 900);
    expect(await evaluate()).toEqual([]);
    // PostgreSQL itself refuses a second record of it, whatever a replica's memory says.
    await expect(
      service.app.db.query(
        `INSERT INTO usage_alerts (id, customer_id, subscription_id, plan_id, period_start, period_end, type, threshold, observed, fired_at)
         SELECT 'alrt_duplicate', customer_id, subscription_id, plan_id, period_start, period_end, type, threshold, observed, fired_at
         FROM usage_alerts WHERE id = $1`,
        [event.id],
      ),
    ).rejects.toMatchObject({ code: '23505' });

    clock.set(at('2026-11-20T00:00:00Z'));
    await setUsage(customer.id, customer.subscriptionId, november, 1000);
    expect((await evaluate()).map((alert) => alert.threshold)).toEqual([{ quota_percent: 100 }]);

    // The next period fires again.
    clock.set(at('2026-12-02T00:00:00Z'));
    await setUsage(customer.id, customer.subscriptionId, at('2026-12-01T00:00:00Z'), 810);
    expect((await evaluate()).map((alert) => alert.period.start)).toEqual([at('2026-12-01T00:00:00Z')]);

    await expect.poll(() => receiver.at(customer.path).length, { timeout: 5_000, interval: 20 }).toBe(3);
    const sent = receiver.at(customer.path).map((received) => JSON.parse(received.body));
    expect(sent.map((sentEvent) => [sentEvent.period.start.slice(0, 7), sentEvent.threshold.quota_percent])).toEqual([
      ['2026-11', 80],
      ['2026-11', 100],
      ['2026-12', 80],
    ]);
    expect(receiver.at(customer.path).every((received) => verifySignature(customer.secret, received.body, received.headers['tollgate-signature'] as string))).toBe(true);
    await expect.poll(async () => (await deliveriesOf(customer.id)).map((delivery) => [delivery.status, delivery.attempts])).toEqual([
      ['delivered', 1],
      ['delivered', 1],
      ['delivered', 1],
    ]);
    expect((await alertsOf(customer.id)).map(({ event: listed }) => listed.id)).toEqual(sent.map((sentEvent) => sentEvent.id).reverse());
  });

  it('retries a refused delivery with backoff: 500, then 200, two attempts in the log and the CLI', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customer = await subscribedCustomer('metered');
    receiver.answerNext(customer.path, 500, 200);
    await setUsage(customer.id, customer.subscriptionId, at('2026-11-01T00:00:00Z'), 820);
    expect(await evaluate()).toHaveLength(1);

    await expect.poll(async () => (await deliveriesOf(customer.id))[0]?.status, { timeout: 5_000, interval: 20 }).toBe('delivered');
    const [delivery] = await deliveriesOf(customer.id);
    expect(delivery).toMatchObject({ attempts: 2, lastStatusCode: 200, lastError: 'HTTP 500: receiver failed', type: 'quota.threshold_reached' });
    const [first, second] = receiver.at(customer.path);
    expect(JSON.parse(second!.body).id).toBe(JSON.parse(first!.body).id);
    expect(verifySignature(customer.secret, second!.body, second!.headers['tollgate-signature'] as string)).toBe(true);

    const listed = await runCli({ TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken }, 'alerts', 'deliveries', '--customer', customer.id, '--json');
    expect(jsonOf(listed).data).toEqual([expect.objectContaining({ id: delivery.id, status: 'delivered', attempts: 2, lastError: 'HTTP 500: receiver failed' })]);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_alert_deliveries_total\{result="retry"\} [1-9]/);
    expect(metrics).toMatch(/tollgate_alerts_fired_total\{type="quota.threshold_reached"\} [1-9]/);
  });

  it("waits as long as a refusing webhook's Retry-After asks before the next attempt", async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customer = await subscribedCustomer('metered');
    receiver.answerNext(customer.path, { status: 429, retryAfter: '3600' });
    await setUsage(customer.id, customer.subscriptionId, at('2026-11-01T00:00:00Z'), 800);
    expect(await evaluate()).toHaveLength(1);
    await expect.poll(async () => (await deliveriesOf(customer.id))[0]?.attempts, { timeout: 5_000, interval: 20 }).toBe(1);
    const [delivery] = await deliveriesOf(customer.id);
    expect(delivery).toMatchObject({ status: 'pending', lastStatusCode: 429 });
    // The backoff alone would retry within seconds; the next attempt is an hour out (the database's clock, not the test's).
    expect(Date.parse(delivery.nextAttemptAt) - Date.now()).toBeGreaterThan(3_590_000);
    expect(receiver.at(customer.path)).toHaveLength(1);
  });

  it('gives a delivery up after the last attempt (timeouts, 5xx) and sends it again on request', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customer = await subscribedCustomer('metered');
    receiver.answerNext(customer.path, 'hang', 503, 502);
    await setUsage(customer.id, customer.subscriptionId, at('2026-11-01T00:00:00Z'), 800);
    expect(await evaluate()).toHaveLength(1);

    await expect.poll(async () => (await deliveriesOf(customer.id))[0]?.status, { timeout: 5_000, interval: 20 }).toBe('dead');
    const [dead] = await service.admin('GET', '/v1/alerts/deliveries?status=dead').then((listed) => listed.body.data.filter((d: any) => d.customerId === customer.id));
    expect(dead).toMatchObject({ attempts: 3, lastStatusCode: 502, lastError: 'gave up after 3 attempts: HTTP 502: receiver failed' });
    expect(receiver.at(customer.path)).toHaveLength(3);

    expect((await service.admin('POST', `/v1/alerts/deliveries/${dead.id}/retry`)).body).toMatchObject({ status: 'pending', attempts: 0 });
    await expect.poll(async () => (await deliveriesOf(customer.id))[0]?.status, { timeout: 5_000, interval: 20 }).toBe('delivered');
    expect((await service.admin('POST', `/v1/alerts/deliveries/${dead.id}/retry`)).status).toBe(409);
  });

  it('refuses a webhook URL with a user name or password (fetch never sends to one), naming the field', async () => {
    const customer = await subscribedCustomer('metered', { webhook: false });
    const refused = await service.admin('PUT', `/v1/customers/${customer.id}/alert-webhook`, { url: 'https://hook:s3cret@hooks.example.com/alerts' });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 'invalid_request', field: 'url' });
    expect(JSON.stringify(refused.body)).not.toContain('s3cret');
    for (const url of ['not a url', 'http://']) {
      const malformed = await service.admin('PUT', `/v1/customers/${customer.id}/alert-webhook`, { url });
      expect([malformed.status, malformed.body.error?.field], url).toEqual([400, 'url']);
    }
  });

  it('times a silent webhook out and records that it got no answer', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customer = await subscribedCustomer('metered');
    receiver.answerNext(customer.path, 'hang', 'hang', 'hang');
    await setUsage(customer.id, customer.subscriptionId, at('2026-11-01T00:00:00Z'), 800);
    await evaluate();
    await expect.poll(async () => (await deliveriesOf(customer.id))[0]?.attempts, { timeout: 5_000, interval: 20 }).toBeGreaterThanOrEqual(1);
    expect((await deliveriesOf(customer.id))[0]).toMatchObject({ lastStatusCode: null, lastError: expect.stringContaining('no answer within 300 ms') });
  });

  it('alerts on a running invoice over its spend threshold and on a low prepaid wallet, recorded even without a webhook', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const spender = await subscribedCustomer('metered');
    await setUsage(spender.id, spender.subscriptionId, at('2026-11-01T00:00:00Z'), 700);
    expect(await evaluate()).toEqual([]);
    await service.app.ratingLoop.runOnce();
    // The other tests' customers pass $100 too, now that their drafts are rated.
    const [spent] = (await evaluate()).filter((alert) => alert.customerId === spender.id);
    expect(spent).toMatchObject({ type: 'spend.threshold_exceeded', threshold: { spend_above: '100.00', currency: 'USD' } });
    expect(spent!.observed).toEqual({ spend: '105.00', currency: 'USD', invoice: expect.stringMatching(/^inv_/) });

    // $8.00 topped up, $5.00 setup fee paid: $3.00 left, under $5.00.
    const prepaid = await subscribedCustomer('prepaid', { webhook: false });
    const fired = (await evaluate()).filter((alert) => alert.customerId === prepaid.id);
    expect(fired.map((alert) => [alert.type, alert.threshold, alert.observed])).toEqual([
      ['wallet.balance_low', { wallet_below: '5.00', currency: 'USD' }, { balance: '3.00', currency: 'USD' }],
    ]);
    expect(await alertsOf(prepaid.id)).toEqual([{ event: expect.objectContaining({ type: 'wallet.balance_low' }), delivery: null }]);
  });

  it('stops sending once the webhook is removed', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customer = await subscribedCustomer('metered');
    expect((await service.admin('DELETE', `/v1/customers/${customer.id}/alert-webhook`)).body).toEqual({ deleted: true });
    expect((await service.admin('GET', `/v1/customers/${customer.id}/alert-webhook`)).status).toBe(404);
    await setUsage(customer.id, customer.subscriptionId, at('2026-11-01T00:00:00Z'), 800);
    expect((await evaluate()).map((alert) => alert.customerId)).toContain(customer.id);
    expect(await alertsOf(customer.id)).toEqual([{ event: expect.objectContaining({ type: 'quota.threshold_reached' }), delivery: null }]);
    expect(receiver.at(customer.path)).toEqual([]);
  });
});

/**
 * The loops on their own, on two replicas of one PostgreSQL: usage metered from Envoy's access logs alerts once. Each
 * replica's jobs run on a manual clock, so evaluation sees all nine calls (not eight, at 80 %) and "still one alert"
 * is checked after many passes on both, not after a sleep.
 */
describe('usage alert loops on two replicas', () => {
  let first: TestApp;
  let second: App;
  let receiver: AlertReceiver;
  let catalog: ReturnType<typeof writeCatalog>;
  const firstTimers = new ManualClock(0);
  const secondTimers = new ManualClock(0);
  /** Both replicas' jobs, side by side, as time passes for both. */
  const advanceBoth = (ms: number) => Promise.all([firstTimers.advance(ms), secondTimers.advance(ms)]);

  beforeAll(async () => {
    receiver = await AlertReceiver.start();
    catalog = writeCatalog();
    const env = { TOLLGATE_CATALOG: catalog.file, TOLLGATE_ALERTS_EVALUATION_INTERVAL_MS: '50', TOLLGATE_ALERTS_DELIVERY_INTERVAL_MS: '20' };
    first = await startTestApp({ mode: 'production', env, timers: firstTimers });
    second = await startApp(loadConfig({ ...first.env, TOLLGATE_DATA_DIR: `${first.dataDir}/second` }), silentLogger, { timers: secondTimers });
  });
  afterAll(async () => {
    await second?.stop();
    await first?.close();
    await receiver?.close();
    catalog?.remove();
  });

  it('evaluates and delivers by themselves, each alert once', async () => {
    await first.admin('POST', '/v1/customers', { id: 'looped', name: 'Looped' });
    const { body: webhook } = await first.admin('PUT', '/v1/customers/looped/alert-webhook', { url: receiver.url('/looped') });
    const { body: created } = await first.admin('POST', '/v1/keys', { customer: 'looped', plan: 'small' });
    await first.app.identities.refresh();
    const envoy = new FakeEnvoy(first.grpcAddress);
    const accessLogs = new AccessLogClient(first.grpcAddress);
    const stream = accessLogs.open();
    for (let call = 0; call < 9; call++) {
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key: created.key });
      expect(outcome.allowed).toBe(true);
      await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, status: 200 })]);
    }
    // The stream's answer comes once its entries are in the spool; the flush puts them in the rollups.
    await stream.end();
    envoy.close();
    accessLogs.close();
    await first.app.metering.meter.flush();
    expect(receiver.at('/looped')).toEqual([]);

    // The evaluations fall due at 50 ms (one replica leads, or both run one after the other), a delivery at 60 ms.
    await advanceBoth(60);
    expect(receiver.at('/looped')).toHaveLength(1);
    const [request] = receiver.at('/looped');
    expect(verifySignature(webhook.secret, request!.body, request!.headers['tollgate-signature'] as string)).toBe(true);
    expect(JSON.parse(request!.body)).toMatchObject({ type: 'quota.threshold_reached', plan: 'small', current: { used_units: 9, quota_units: 10, percent: 90 } });
    // Both replicas keep evaluating (ten more passes each) and delivering; the alert stays one.
    await advanceBoth(500);
    expect(receiver.at('/looped')).toHaveLength(1);
    expect((await first.admin('GET', '/v1/customers/looped/alerts')).body.data).toHaveLength(1);
  });
});
