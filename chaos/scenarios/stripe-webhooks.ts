/**
 * Hostile Stripe webhook deliveries against a server with TOLLGATE_STRIPE_WEBHOOK_SECRET set: each must be refused
 * (or, for a genuine event delivered again, answered as a duplicate) without changing any state. The genuine
 * event pays a wallet top-up, so a state change is money: the wallet's ledger, the top-up's status and the record
 * of applied events are compared before and after each delivery.
 */
import Stripe from 'stripe';
import { TollgateServer } from '../processes.js';
import type { ScenarioContext, ScenarioResult } from '../scenario.js';

const secret = 'whsec_tollgate_chaos_0123456789';

interface Delivery {
  name: string;
  body: string | Buffer;
  signature?: string;
  /** Acceptable answers, and whether the delivery should change state. */
  expect: { statuses: number[]; changes: boolean };
}

export async function stripeWebhooks({ postgres, dataDir, log }: ScenarioContext): Promise<ScenarioResult> {
  const databaseUrl = await postgres.createDatabase();
  const server = await TollgateServer.start({ TOLLGATE_DATABASE_URL: databaseUrl, TOLLGATE_DATA_DIR: dataDir(), TOLLGATE_STRIPE_WEBHOOK_SECRET: secret });
  const findings: string[] = [];
  const rows: string[][] = [];
  try {
    await server.admin('POST', '/v1/customers', { id: 'webhook-customer', name: 'Webhook Customer' });
    // A top-up as Tollgate records it before Stripe Checkout is opened (no Stripe API here to open it).
    await postgres.query(
      `INSERT INTO stripe_topups (id, customer_id, amount, currency, success_url) VALUES ('top_chaos', 'webhook-customer', 5000, 'USD', 'https://example.com/ok')`,
      databaseUrl,
    );
    const state = async () =>
      JSON.stringify(
        await postgres.query(
          `SELECT (SELECT count(*) FROM stripe_webhook_events) AS events,
                  (SELECT coalesce(sum(amount), 0) FROM wallet_entries) AS ledger,
                  (SELECT string_agg(id || ':' || status, ',') FROM stripe_topups) AS topups,
                  (SELECT string_agg(id || ':' || status, ',') FROM customers) AS customers`,
          databaseUrl,
        ),
      );
    const now = () => Math.floor(Date.now() / 1000);
    const event = {
      id: 'evt_chaos_topup_paid',
      object: 'event',
      type: 'checkout.session.completed',
      created: now(),
      data: {
        object: {
          id: 'cs_chaos_1',
          object: 'checkout.session',
          payment_status: 'paid',
          amount_total: 5000,
          currency: 'usd',
          metadata: { tollgate_topup_id: 'top_chaos' },
        },
      },
    };
    const payload = JSON.stringify(event);
    const sign = (body: string, options: { secret?: string; timestamp?: number } = {}) =>
      Stripe.webhooks.generateTestHeaderString({ payload: body, secret: options.secret ?? secret, timestamp: options.timestamp ?? now() });
    const genuineSignature = sign(payload);
    const tampered = payload.replace('"amount_total":5000', '"amount_total":500000');
    const oversized = JSON.stringify({ ...event, id: 'evt_chaos_oversized', padding: 'x'.repeat(2 * 1024 * 1024) });
    const refused = { statuses: [400, 401, 403, 413], changes: false };
    const deliveries: Delivery[] = [
      { name: 'unsigned', body: payload, expect: refused },
      { name: 'forged (signed with another secret)', body: payload, signature: sign(payload, { secret: 'whsec_not_the_secret_0123' }), expect: refused },
      { name: 'tampered (amount changed after signing)', body: tampered, signature: genuineSignature, expect: refused },
      { name: 'garbage signature header', body: payload, signature: 't=abc,v1=zz,v1=' + 'f'.repeat(10_000), expect: refused },
      { name: 'stale (signed 10 minutes ago)', body: payload, signature: sign(payload, { timestamp: now() - 600 }), expect: refused },
      { name: 'oversized unsigned (2 MiB)', body: oversized, expect: { statuses: [413], changes: false } },
      { name: 'oversized, correctly signed (2 MiB)', body: oversized, signature: sign(oversized), expect: { statuses: [413], changes: false } },
      { name: 'correctly signed, not JSON', body: '{"id": "evt_x", ', signature: sign('{"id": "evt_x", '), expect: refused },
      { name: 'correctly signed, null body', body: 'null', signature: sign('null'), expect: refused },
      { name: 'correctly signed, event without data', body: '{"id":"evt_chaos_nodata","object":"event","type":"checkout.session.completed"}', signature: sign('{"id":"evt_chaos_nodata","object":"event","type":"checkout.session.completed"}'), expect: refused },
      { name: 'genuine (pays the top-up)', body: payload, signature: genuineSignature, expect: { statuses: [200], changes: true } },
      { name: 'replayed: the same delivery again', body: payload, signature: genuineSignature, expect: { statuses: [200], changes: false } },
      { name: 'replayed: re-signed with a fresh timestamp', body: payload, signature: sign(payload, { timestamp: now() + 1 }), expect: { statuses: [200], changes: false } },
      { name: 'replayed: stale copy of the genuine delivery', body: payload, signature: sign(payload, { timestamp: now() - 3_600 }), expect: refused },
    ];
    for (const delivery of deliveries) {
      const before = await state();
      // A delivery that gets no answer in 10 s counts as a hang (status 0).
      const { status, text } = await server
        .http('/webhooks/stripe', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(delivery.signature ? { 'stripe-signature': delivery.signature } : {}) },
          body: delivery.body,
        })
        .then(async (response) => ({ status: response.status, text: await response.text() }))
        .catch((error: unknown) => ({ status: 0, text: `no answer: ${(error as Error).message}` }));
      const after = await state();
      const changed = before !== after;
      const answer = `${status} ${text.slice(0, 120)}`;
      log(`${delivery.name}: ${answer}${changed ? ' (state changed)' : ''}`);
      const ok = delivery.expect.statuses.includes(status) && changed === delivery.expect.changes;
      rows.push([delivery.name, status === 0 ? 'no answer in 10 s' : String(status), summarizeAnswer(text), changed ? 'yes' : 'no', ok ? 'as expected' : `**unexpected** (expected ${delivery.expect.statuses.join('/')}, ${delivery.expect.changes ? 'a change' : 'no change'})`]);
      if (!ok) {
        const sample = delivery.body.length > 200 ? `a ${delivery.body.length}-byte body` : `the body ${JSON.stringify(delivery.body.toString())}`;
        findings.push(
          `Stripe webhook "${delivery.name}" ${status === 0 ? 'got no answer within 10 s (a hang: on a keep-alive connection that had carried earlier bodies over 1 MiB; a fresh connection gets its answer at once)' : `answered ${status}`}${changed ? ' and changed state' : ''} (expected ${delivery.expect.statuses.join(' or ')}${delivery.expect.changes ? '' : ', no change'}). ` +
            `Reproduce: POST /webhooks/stripe with ${sample}${delivery.signature ? ', signed with TOLLGATE_STRIPE_WEBHOOK_SECRET (stripe.webhooks.generateTestHeaderString)' : ''}.`,
        );
      }
    }
    const [wallet] = await postgres.query<{ ledger: string }>('SELECT coalesce(sum(amount), 0) AS ledger FROM wallet_entries', databaseUrl);
    log(`wallet ledger after all deliveries: ${wallet!.ledger} (the one genuine top-up: 5000)`);
    if (wallet!.ledger !== '5000') findings.push(`after all deliveries the wallet ledger holds ${wallet!.ledger} minor units, not the one genuine top-up of 5000.`);
    if (!server.running) findings.push('the server exited.');
  } finally {
    await server.stop();
  }
  return {
    title: 'Forged, stale, replayed and oversized Stripe webhooks',
    description:
      'POST /webhooks/stripe on a server with TOLLGATE_STRIPE_WEBHOOK_SECRET set (no Stripe API key: events are applied from their ' +
      'snapshot). The genuine event completes a Checkout session that pays a recorded top-up of 50.00 USD into the wallet. ' +
      'State = applied-event records, the wallet ledger, the top-ups\' and customers\' status, read from PostgreSQL before and ' +
      'after each delivery, in this order. Signatures are made with the stripe package (webhooks.generateTestHeaderString).',
    table: { head: ['delivery', 'status', 'answer', 'state changed', 'verdict'], rows },
    findings,
  };
}

function summarizeAnswer(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; field?: string }; result?: string };
    if (body.error) return `${body.error.code ?? 'error'}${body.error.field ? ` (${body.error.field})` : ''}`;
    if (body.result) return body.result;
  } catch {
    // not JSON: shown as text
  }
  return text.slice(0, 60);
}
