import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/**
 * Data capture feeds rating: a price the upstream returns in a response header is captured per call, summed exactly
 * (numeric) per rollup by the metering insert, and billed on the period's invoice. Through the whole service: Checks,
 * ALS entries, the metering flush, the rating loop and the invoices API.
 */

const at = (iso: string) => Date.parse(iso);

const catalogYaml = `version: 1
products:
  - id: api
    name: API
    endpoints:
      - { id: search, method: GET, path: /api/v1/search, tags: [basic] }
      - { id: admin, method: GET, path: /api/v1/admin, tags: [admin] }
plans:
  - id: custom
    product: api
    name: Custom prices
    entitlements: [basic]
    capture:
      - { name: price, from: response_header, header: x-custom-price, type: decimal }
      - { name: units, from: response_header, header: x-usage-units, type: integer }
    pricing: { currency: USD, recurring_fee: "10.00" }
`;

interface Line {
  kind: string;
  description: string;
  unitPrice: string | null;
  amount: string;
}

interface Invoice {
  id: string;
  periodStart: string;
  status: 'draft' | 'finalized';
  total: string;
  lines: Line[];
}

describe.each(['embedded', 'production'] as const)('data capture billed (%s)', (mode) => {
  let service: TestApp;
  let envoy: FakeEnvoy;
  let als: AccessLogClient;
  let catalogDir: string;
  const clock = new ManualClock(at('2026-11-01T00:00:00Z'));

  beforeAll(async () => {
    catalogDir = mkdtempSync(join(tmpdir(), 'tollgate-capture-'));
    writeFileSync(join(catalogDir, 'catalog.yaml'), catalogYaml);
    service = await startTestApp({ mode, clock, env: { TOLLGATE_CATALOG: join(catalogDir, 'catalog.yaml') } });
    await service.app.ratingLoop.stop();
    envoy = new FakeEnvoy(service.grpcAddress);
    als = new AccessLogClient(service.grpcAddress);
  });
  afterAll(async () => {
    als?.close();
    envoy?.close();
    await service?.close();
    if (catalogDir) rmSync(catalogDir, { recursive: true, force: true });
  });

  /** A Check, then the access-log entry of its response with the given headers; returns the entry to replay it. */
  async function call(key: string, path: string, status: number, responseHeaders: Record<string, string>) {
    const outcome = await envoy.check({ method: 'GET', path, key });
    const entry = httpEntry({
      requestId: outcome.requestHeaders['x-request-id']!,
      authz: outcome.metadata,
      status: outcome.allowed ? status : outcome.httpStatus,
      startMs: at('2026-11-10T12:00:00Z'),
      responseHeaders,
    });
    await send([entry]);
    return { outcome, entry };
  }

  async function send(entries: Record<string, unknown>[]) {
    const stream = als.open();
    await stream.send(entries);
    expect(await stream.end()).toEqual({});
  }

  it('sums captured prices and unit counts of new billable calls exactly, and bills the captured price on the invoice', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const customerId = `capture-${mode}`;
    expect((await service.admin('POST', '/v1/customers', { id: customerId, name: customerId })).status).toBe(201);
    const created = await service.admin('POST', '/v1/keys', { customer: customerId, plan: 'custom' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const key = created.body.key as string;
    await service.app.identities.refresh();

    const cheap = await call(key, '/api/v1/search', 200, { 'x-custom-price': '0.005', 'x-usage-units': '3' });
    expect(cheap.outcome.allowed).toBe(true);
    const dear = await call(key, '/api/v1/search', 200, { 'x-custom-price': '1.25', 'x-usage-units': '4' });
    // Envoy resending entries (or a replayed spool) changes nothing: duplicates by request id are ignored.
    await send([cheap.entry, dear.entry]);
    // Not billable: a server error and a denied call (the plan is not entitled to admin) carry prices too.
    await call(key, '/api/v1/search', 503, { 'x-custom-price': '9.99', 'x-usage-units': '100' });
    const denied = await call(key, '/api/v1/admin', 200, { 'x-custom-price': '7.00', 'x-usage-units': '100' });
    expect(denied.outcome.allowed).toBe(false);
    // A billable call without the headers captures nothing.
    await call(key, '/api/v1/search', 200, {});
    await service.app.metering.meter.flush();
    await send([dear.entry]);
    await service.app.metering.meter.flush();

    const events = await service.app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_events WHERE customer_id = $1', [customerId]);
    expect(events[0]!.n).toBe(5);
    const captured = await service.app.db.query<{ endpoint_id: string; name: string; amount: string }>(
      'SELECT endpoint_id, name, amount::text AS amount FROM usage_captured_rollups WHERE customer_id = $1 ORDER BY name',
      [customerId],
    );
    expect(captured).toEqual([
      { endpoint_id: 'search', name: 'price', amount: '1.255' },
      { endpoint_id: 'search', name: 'units', amount: '7' },
    ]);

    clock.set(at('2026-11-20T00:00:00Z'));
    const run = await service.admin('POST', '/v1/billing/run');
    expect(run.body.led).toBe(true);
    const listed = await service.admin('GET', `/v1/customers/${customerId}/invoices`);
    expect(listed.status).toBe(200);
    const [draft] = (await Promise.all(
      listed.body.data.map(async (invoice: Invoice) => (await service.admin('GET', `/v1/invoices/${invoice.id}`)).body),
    )) as Invoice[];
    expect(draft).toMatchObject({ status: 'draft', periodStart: '2026-11-01T00:00:00.000Z' });
    // The captured price sum is billed as one line, rounded once (half-even); the integer unit count is not money.
    const capturedLines = draft!.lines.filter((line) => line.kind === 'captured_usage');
    expect(capturedLines).toEqual([expect.objectContaining({ description: 'Captured price', unitPrice: '1.255', amount: '1.26' })]);
    expect(draft!.total).toBe('11.26');
  });
});
