import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { customerTables, tablesWithoutCustomerData } from '../src/privacy/customer-data.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { runCli } from './support/cli.js';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

const at = (iso: string) => Date.parse(iso);

/** Issue #8: export everything held about a customer, and erase the customer, on PostgreSQL and PGlite. */
describe.each(['production', 'embedded'] as const)('privacy: export and erasure (%s)', (mode) => {
  const clock = new ManualClock(at('2026-11-01T00:00:00Z'));
  /** The background jobs run when the test advances these, and only then. */
  const timers = new ManualClock(0);
  let service: TestApp;
  let envoy: FakeEnvoy;
  let als: AccessLogClient;
  const person = {
    id: 'zelda',
    name: 'Zelda Quartermaine',
    email: 'zelda.quartermaine@example.org',
    metadata: { office: 'Lisbon Annex 7', phone: '+351-555-0100' },
  };
  const appName = 'zelda-phone-app';
  const keyName = 'Zeldas laptop';
  const webhookUrl = 'https://hooks.example.org/zq-hook-4471';
  const topUpUrl = 'https://shop.example.org/thanks?who=zq-topup-9043';
  let keys: { key: string; prefix: string }[] = [];
  /** A call checked before the erasure whose access-log entry arrives after it. */
  let lateCall: Awaited<ReturnType<FakeEnvoy['check']>>;

  const cli = async (...args: string[]) => {
    const { code, stdout, stderr } = await runCli({ TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken }, ...args, '--json');
    return code === 0 ? { code, output: JSON.parse(stdout) } : { code, output: stderr };
  };
  const admin = async (method: string, path: string, body?: unknown) => {
    const response = await service.admin(method, path, body);
    expect(response.status, `${method} ${path}: ${JSON.stringify(response.body)}`).toBeLessThan(300);
    return response.body;
  };
  /** A call through the Check, then its access-log entry: a usage event with its request id. */
  const call = async (key: string) => {
    const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    const stream = als.open();
    await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, startMs: clock.now() })]);
    await stream.end();
    return outcome;
  };

  /** Every text and JSON cell of every table holding one of the needles, as `table.column`. */
  async function cellsHolding(needles: string[]): Promise<string[]> {
    const columns = await service.app.db.query<{ table_name: string; column_name: string }>(
      `SELECT c.table_name, c.column_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
       WHERE c.table_schema = current_schema() AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')`,
    );
    expect(columns.length).toBeGreaterThan(40);
    const found: string[] = [];
    for (const { table_name: table, column_name: column } of columns) {
      const [hit] = await service.app.db.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${table}" WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) needle WHERE strpos(lower("${column}"::text), lower(needle)) > 0)`,
        [needles],
      );
      if (Number(hit!.n) > 0) found.push(`${table}.${column}`);
    }
    return found.sort();
  }
  const needles = () => [person.name, person.email, ...Object.values(person.metadata), appName, keyName, 'zq-hook-4471', 'zq-topup-9043', ...keys.map((key) => key.prefix)];

  beforeAll(async () => {
    service = await startTestApp({ mode, clock, timers });
    await service.app.ratingLoop.stop();
    envoy = new FakeEnvoy(service.grpcAddress);
    als = new AccessLogClient(service.grpcAddress);

    await admin('POST', '/v1/customers', person);
    await admin('POST', `/v1/customers/${person.id}/purchases`, { plan: 'pro' });
    keys = await Promise.all(
      [keyName, 'ci'].map(async (name) => {
        const created = await admin('POST', '/v1/keys', { customer: person.id, plan: 'pro', name, app: appName });
        return { key: created.key as string, prefix: created.apiKey.prefix as string };
      }),
    );
    await admin('PUT', `/v1/customers/${person.id}/alert-webhook`, { url: webhookUrl });
    await admin('POST', `/v1/customers/${person.id}/wallet/top-ups`, { amount: '10.00', currency: 'USD', reference: 'R-1' });
    // A Checkout top-up as Stripe's flow leaves it (Stripe is not configured here).
    await service.app.db.query(
      `INSERT INTO stripe_topups (id, customer_id, amount, currency, success_url, status, checkout_url) VALUES ('top_z', $1, 500, 'USD', $2, 'open', $2)`,
      [person.id, topUpUrl],
    );
    // Stripe's answers can quote what was sent.
    await service.app.db.query(`UPDATE stripe_outbox SET last_error = $2 WHERE kind = 'customer.sync' AND subject_id = $1`, [
      person.id,
      `Invalid email address: ${person.email}`,
    ]);
    await admin('POST', '/v1/customers', { id: 'bystander', name: 'Bystander' });
    const bystanderKey = (await admin('POST', '/v1/keys', { customer: 'bystander', plan: 'free' })).key;
    await service.app.identities.refresh();
    for (let i = 0; i < 3; i++) await call(keys[0]!.key);
    await call(bystanderKey);
    lateCall = await envoy.check({ method: 'GET', path: '/api/v1/pets', key: keys[0]!.key });
    await service.app.metering.meter.flush();

    // November ends: its invoice is finalized, December's is a draft.
    clock.set(at('2026-12-01T00:10:00Z'));
    await admin('POST', '/v1/billing/run');
  });
  afterAll(async () => {
    als?.close();
    envoy?.close();
    await service?.close();
  });

  it('knows where every table stands: each one is searched for a customer, or holds nothing about one', async () => {
    const tables = await service.app.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`,
    );
    const known = [...customerTables.map((table) => table.table), ...tablesWithoutCustomerData].sort();
    expect(tables.map((row) => row.table_name)).toEqual(known);
  });

  it('exports everything held about the customer, without key hashes or the alert signing secret', async () => {
    const exported = (await cli('customers', 'export', person.id)).output;
    expect(exported).toMatchObject({ customerId: person.id, omitted: { api_keys: ['hash'], alert_webhooks: ['signing_secret'] } });
    const { tables } = exported;
    expect(Object.keys(tables).sort()).toEqual(customerTables.map((table) => table.table).sort());
    expect(tables.customers).toEqual([expect.objectContaining({ name: person.name, email: person.email, metadata: person.metadata })]);
    expect(tables.apps).toEqual([expect.objectContaining({ name: appName })]);
    expect(tables.subscriptions).toEqual([expect.objectContaining({ plan_id: 'pro', status: 'active' })]);
    expect(tables.api_keys.map((key: Record<string, unknown>) => key.prefix).sort()).toEqual(keys.map((key) => key.prefix).sort());
    expect(tables.api_keys.every((key: Record<string, unknown>) => !('hash' in key))).toBe(true);
    expect(tables.usage_events).toHaveLength(3);
    expect(tables.usage_events[0]).toMatchObject({ request_id: expect.any(String), customer_id: person.id, decision: 'allow', request_bytes: '200', response_bytes: '1100' });
    expect(tables.usage_rollups).toEqual([expect.objectContaining({ calls: '3' })]);
    expect(tables.customer_first_calls).toHaveLength(1);
    expect(tables.invoices.map((invoice: Record<string, unknown>) => [invoice.status, invoice.total])).toEqual([
      ['finalized', '4900'],
      ['draft', '4900'],
    ]);
    expect(tables.invoice_lines.length).toBeGreaterThanOrEqual(2);
    expect(tables.wallet_entries).toEqual([expect.objectContaining({ kind: 'top_up', amount: '1000' })]);
    expect(tables.stripe_topups).toEqual([expect.objectContaining({ success_url: topUpUrl })]);
    expect(tables.stripe_outbox).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'customer.sync', subject_id: person.id }), expect.objectContaining({ kind: 'invoice.finalized' })]),
    );
    expect(tables.alert_webhooks).toEqual([{ customer_id: person.id, url: webhookUrl, created_at: expect.any(String), updated_at: expect.any(String) }]);
  });

  describe('erasure', () => {
    let invoicesBefore: Record<string, unknown>[];
    let linesBefore: Record<string, unknown>[];
    let syncRevisionBefore: number;
    let erased: Record<string, any>;

    beforeAll(async () => {
      expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key: keys[1]!.key })).allowed).toBe(true);
      // The search sees the personal data before, so its silence after means something.
      expect(await cellsHolding(needles())).toEqual([
        'alert_webhooks.url',
        'api_keys.name',
        'api_keys.prefix',
        'apps.name',
        'customers.email',
        'customers.metadata',
        'customers.name',
        'stripe_outbox.last_error',
        'stripe_topups.checkout_url',
        'stripe_topups.success_url',
      ]);
      invoicesBefore = await service.app.db.query('SELECT * FROM invoices WHERE customer_id = $1 ORDER BY id', [person.id]);
      linesBefore = await service.app.db.query(
        'SELECT l.* FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id WHERE i.customer_id = $1 ORDER BY l.invoice_id, l.position',
        [person.id],
      );
      syncRevisionBefore = await syncRevision();

      const refused = await cli('customers', 'erase', person.id);
      expect(refused.code).toBe(2);
      expect(refused.output).toContain('--confirm');
      const result = await cli('customers', 'erase', person.id, '--confirm');
      expect(result.code).toBe(0);
      erased = result.output;
      // The Check stops the keys by the next identity sync after the erasure's answer.
      await timers.advance(service.app.config.syncIntervalMs);
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key: keys[1]!.key });
      expect(outcome).toMatchObject({ allowed: false, httpStatus: 401, body: { error: { code: 'invalid_key' } } });
    });

    const syncRevision = async () =>
      (await service.app.db.query<{ revision: number }>(`SELECT revision FROM stripe_outbox WHERE kind = 'customer.sync' AND subject_id = $1`, [person.id]))[0]!
        .revision;

    it('reports what it removed and kept', () => {
      expect(erased).toEqual({
        customerId: person.id,
        erasedAt: '2026-12-01T00:10:00.000Z',
        subscriptionsCanceled: 1,
        keysDestroyed: 2,
        usageEventsDeleted: 3,
        kept: { invoices: 2, usageRollups: 1, walletEntries: 1 },
      });
    });

    it('leaves nothing personal in any table', async () => {
      expect(await cellsHolding(needles())).toEqual([]);
    });

    it('keeps the invoices exactly as issued, and their immutability', async () => {
      expect(await service.app.db.query('SELECT * FROM invoices WHERE customer_id = $1 ORDER BY id', [person.id])).toEqual(invoicesBefore);
      expect(
        await service.app.db.query(
          'SELECT l.* FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id WHERE i.customer_id = $1 ORDER BY l.invoice_id, l.position',
          [person.id],
        ),
      ).toEqual(linesBefore);
      const finalized = invoicesBefore.find((invoice) => invoice.status === 'finalized')!;
      await expect(service.app.db.query('UPDATE invoices SET total = total + 1 WHERE id = $1', [finalized.id])).rejects.toThrow(/finalized and immutable/);
    });

    it('deletes per-request usage, keeps the rollups, and leaves other customers alone', async () => {
      const count = async (sql: string, customerId: string) => Number((await service.app.db.query<{ n: string }>(sql, [customerId]))[0]!.n);
      expect(await count('SELECT count(*) AS n FROM usage_events WHERE customer_id = $1', person.id)).toBe(0);
      expect(await count('SELECT sum(calls) AS n FROM usage_rollups WHERE customer_id = $1', person.id)).toBe(3);
      expect(await count('SELECT count(*) AS n FROM usage_events WHERE customer_id = $1', 'bystander')).toBe(1);
    });

    it('marks the customer erased, anonymised, and queues the redaction of its Stripe copy', async () => {
      expect(await admin('GET', `/v1/customers/${person.id}`)).toMatchObject({ name: 'Erased customer', email: null, metadata: {}, status: 'erased' });
      expect((await admin('GET', `/v1/customers/${person.id}/subscriptions`)).data).toEqual([expect.objectContaining({ status: 'canceled' })]);
      expect((await admin('GET', `/v1/keys?customer=${person.id}`)).data).toEqual([
        expect.objectContaining({ status: 'revoked', prefix: '', name: null }),
        expect.objectContaining({ status: 'revoked', prefix: '', name: null }),
      ]);
      expect(await syncRevision()).toBeGreaterThan(syncRevisionBefore);
    });

    it('refuses to use the customer again', async () => {
      const attempts = [
        ['POST', '/v1/customers', { id: person.id, name: person.name }],
        ['PATCH', `/v1/customers/${person.id}`, { status: 'active' }],
        ['POST', `/v1/customers/${person.id}/subscriptions`, { plan: 'pro' }],
        ['POST', '/v1/keys', { customer: person.id, plan: 'free' }],
        ['PUT', `/v1/customers/${person.id}/alert-webhook`, { url: webhookUrl }],
      ] as const;
      for (const [method, path, body] of attempts) {
        const response = await service.admin(method, path, body);
        expect(response.status, `${method} ${path}`).toBe(409);
      }
      expect(await cellsHolding(needles())).toEqual([]);
    });

    it('sweeps usage that arrives late when erased again, changing nothing else', async () => {
      // An event spooled before the erasure, stored after it.
      const stream = als.open();
      await stream.send([httpEntry({ requestId: 'late-request', authz: lateCall.metadata, startMs: clock.now() })]);
      await stream.end();
      await service.app.metering.meter.flush();
      const again = await service.admin('POST', `/v1/customers/${person.id}/erase`);
      expect(again).toMatchObject({ status: 200, body: { erasedAt: erased.erasedAt, subscriptionsCanceled: 0, keysDestroyed: 0, usageEventsDeleted: 1 } });
    });

    it('still exports what is kept', async () => {
      const { tables } = await admin('GET', `/v1/customers/${person.id}/export`);
      expect(tables.customers).toEqual([expect.objectContaining({ status: 'erased', erased_at: erased.erasedAt })]);
      expect(tables.invoices).toHaveLength(2);
      expect(tables.usage_events).toEqual([]);
      expect(tables.alert_webhooks).toEqual([]);
    });

    it('answers 404 for a customer that never existed', async () => {
      expect((await service.admin('POST', '/v1/customers/nobody/erase')).status).toBe(404);
      expect((await service.admin('GET', '/v1/customers/nobody/export')).status).toBe(404);
    });
  });
});
