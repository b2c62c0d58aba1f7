import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/**
 * The developer portal over HTTP, on the embedded stack: what a browser sends (forms, cookies), and what an attacker
 * might (foreign origins, missing CSRF tokens, big bodies, floods of sign-ups, a forged identity header).
 */

const hour = 3_600_000;

/** A browser's cookie jar, enough for one host; `from` picks the loopback address it connects from. */
class Browser {
  readonly cookies = new Map<string, string>();

  constructor(private readonly base: string, private readonly headers: Record<string, string> = {}, private readonly from = '127.0.0.1') {}

  async request(method: string, path: string, form?: Record<string, string>, extra: Record<string, string> = {}) {
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = httpRequest(`${this.base}${path}`, {
        method,
        localAddress: this.from,
        headers: {
          ...this.headers,
          ...(this.cookies.size > 0 ? { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') } : {}),
          ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) } : {}),
          ...extra,
        },
      });
      outgoing.on('response', resolve).on('error', reject);
      outgoing.end(body);
    });
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    const setCookies = response.headers['set-cookie'] ?? [];
    for (const cookie of setCookies) {
      const [pair] = cookie.split(';');
      const [name, value] = pair!.split('=') as [string, string];
      if (value === '' || /Max-Age=0/.test(cookie)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const header = (name: string) => {
      const value = response.headers[name];
      return value === undefined ? null : Array.isArray(value) ? value.join(', ') : String(value);
    };
    return { status: response.statusCode!, headers: { get: header, setCookies }, text: Buffer.concat(chunks).toString('utf8') };
  }

  get = (path: string) => this.request('GET', path);

  /** Posts a form with the CSRF token of the page it is on, as a browser submitting that page would. */
  async submit(pagePath: string, action: string, fields: Record<string, string>) {
    const page = await this.get(pagePath);
    return this.request('POST', action, { csrf: csrfOf(page.text), ...fields });
  }
}

const csrfOf = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
const keyOf = (page: string) => /id="new-key">(tg_[A-Za-z0-9]+)</.exec(page)?.[1];
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('developer portal over HTTP', () => {
  const clock = new ManualClock(Date.parse('2026-11-03T10:00:00Z'));
  let service: TestApp;
  let base: string;

  beforeAll(async () => {
    service = await startTestApp({
      mode: 'embedded',
      clock,
      env: {
        TOLLGATE_PORTAL_PORT: '0',
        TOLLGATE_PORTAL_HOST: '127.0.0.1',
        TOLLGATE_PORTAL_NAME: 'PetStore <Developers>',
        TOLLGATE_PORTAL_SIGNUP_PER_ADDRESS_PER_HOUR: '3',
        TOLLGATE_PORTAL_SIGNUPS_PER_HOUR: '50',
        TOLLGATE_PORTAL_TRUSTED_PROXIES: '127.0.0.2',
        TOLLGATE_PORTAL_IDENTITY_HEADER: 'x-forwarded-email',
        TOLLGATE_BILLING_INTERVAL_MS: '0',
      },
    });
    base = `http://127.0.0.1:${service.app.portal!.port}`;
  });
  afterAll(async () => {
    await service?.close();
  });

  /**
   * Through the trusted proxy (127.0.0.2) with a distinct client address each, so the per-address limit stays out
   * of tests about other things.
   */
  let address = 0;
  async function signUp(name: string, email: string) {
    const browser = new Browser(base, { 'x-forwarded-for': `203.0.113.${++address}` }, '127.0.0.2');
    const page = await browser.get('/sign-up');
    const created = await browser.request('POST', '/sign-up', { csrf: csrfOf(page.text), name, email });
    return { browser, created };
  }

  it('serves public pages with security headers, escaped brand text and a quote from the catalog', async () => {
    const browser = new Browser(base);
    const pricing = await browser.get('/pricing?calls=200000');
    expect(pricing.status).toBe(200);
    expect(pricing.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(pricing.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    expect(pricing.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(pricing.headers.get('x-frame-options')).toBe('DENY');
    expect(pricing.headers.get('referrer-policy')).toBe('same-origin');
    expect(pricing.text).toContain('PetStore &lt;Developers&gt;');
    expect(pricing.text).not.toContain('<Developers>');
    // Metered at 200,000 units: 100,000 × 0.01 + 100,000 × 0.005 = 1,500.00 USD (graduated), by the quote.
    expect(pricing.text).toMatch(/Metered<\/th><td class="amount">1500\.00 USD/);
    expect(pricing.text).toMatch(/Pro<\/th><td class="amount">49\.00 USD<\/td><td>Calls past 50,000 units a month are refused/);
    expect((await browser.get('/pricing?calls=-1')).status).toBe(400);
    const css = await browser.get('/assets/portal.css');
    expect(css.headers.get('content-type')).toMatch(/text\/css/);
    expect(css.text).toContain('--primary:#1d4ed8');
    expect((await browser.get('/nowhere')).status).toBe(404);
    expect((await browser.get('/account')).headers.get('location')).toBe('/sign-in');
    expect((await browser.request('PUT', '/pricing')).status).toBe(405);
  });

  it('signs up on the default plan: a key shown once, a first call, a session cookie, and the key works at once', async () => {
    const { browser, created } = await signUp('Acme <b>Labs</b>', 'dev@acme.example');
    expect(created.status, created.text).toBe(201);
    expect(created.text).toContain('Acme &lt;b&gt;Labs&lt;/b&gt;');
    const key = keyOf(created.text)!;
    expect(key).toBeDefined();
    expect(created.text).toContain(`curl -X GET -H 'x-api-key: ${key}' 'http://localhost:10000/api/v1/pets'`);
    expect(created.text).toContain(`tollgate check --key ${key} --method GET --path /api/v1/pets`);
    const session = created.headers.setCookies.find((cookie) => cookie.startsWith('tollgate_session='))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Lax/);
    const [customer] = await service.app.db.query<{ id: string; name: string; email: string }>(`SELECT id, name, email FROM customers WHERE email = 'dev@acme.example'`);
    expect(customer!.name).toBe('Acme <b>Labs</b>');
    expect((await service.app.accounts.listSubscriptions(customer!.id)).map((subscription) => subscription.planId)).toEqual(['free']);
    // Stored only as a hash: the session cookie's value is not in the table.
    const sessionId = browser.cookies.get('tollgate_session')!;
    expect(await service.app.db.query('SELECT 1 FROM portal_sessions WHERE id_hash = $1', [sessionId])).toEqual([]);
    expect(await service.app.db.query('SELECT 1 FROM portal_sessions WHERE id_hash = $1', [sha256(sessionId)])).toHaveLength(1);

    await service.app.identities.refresh();
    const envoy = new FakeEnvoy(service.grpcAddress);
    const als = new AccessLogClient(service.grpcAddress);
    try {
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
      expect(outcome.allowed).toBe(true);
      const stream = als.open();
      await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, startMs: clock.now() })]);
      await stream.end();
      await service.app.metering.meter.flush();
    } finally {
      envoy.close();
      als.close();
    }
    const overview = await browser.get('/account');
    expect(overview.status).toBe(200);
    expect(overview.headers.get('cache-control')).toBe('no-store');
    expect(overview.text).toContain('Free plan');
    expect(overview.text).toContain('999 of 1,000 units left');
    expect(overview.text).toMatch(/<title id="usage-chart-title">Calls per day and endpoint<\/title>/);
    expect(overview.text).toContain('<desc id="usage-chart-desc">1 calls from');
    expect(overview.text).toMatch(/<th scope="row">2026-11-03<\/th><td>1<\/td>/);

    // Sign-out ends the session in the database too: the old cookie opens nothing afterwards.
    const signedOut = await browser.submit('/account', '/sign-out', {});
    expect(signedOut.status).toBe(303);
    expect(await service.app.db.query('SELECT 1 FROM portal_sessions WHERE id_hash = $1', [sha256(sessionId)])).toEqual([]);
    const replay = new Browser(base);
    replay.cookies.set('tollgate_session', sessionId);
    expect((await replay.get('/account')).headers.get('location')).toBe('/sign-in');
  });

  it('refuses posts without the form token, from another origin, too big, or not a form', async () => {
    const browser = new Browser(base);
    await browser.get('/sign-up');
    const fields = { name: 'Mallory', email: 'mallory@evil.example' };
    const missing = await browser.request('POST', '/sign-up', fields);
    expect(missing.status).toBe(403);
    expect(missing.text).toContain('did not come from this site');
    const wrong = await browser.request('POST', '/sign-up', { ...fields, csrf: 'x'.repeat(43) });
    expect(wrong.status).toBe(403);
    // A token from another browser (another CSRF cookie) does not fit this one.
    const other = new Browser(base);
    const otherToken = csrfOf((await other.get('/sign-up')).text);
    expect((await browser.request('POST', '/sign-up', { ...fields, csrf: otherToken })).status).toBe(403);
    const page = await browser.get('/sign-up');
    const foreign = await browser.request('POST', '/sign-up', { ...fields, csrf: csrfOf(page.text) }, { origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toContain('another site');
    const big = await browser.request('POST', '/sign-up', { ...fields, csrf: csrfOf(page.text), padding: 'x'.repeat(9000) });
    expect(big.status).toBe(413);
    const json = await fetch(`${base}/sign-up`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(415);
    // Refused on its declared length before a byte of it is read.
    const declared = await browser.request('POST', '/sign-up', undefined, { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '100000000' });
    expect(declared.status).toBe(413);
    // Chunked, with no length to refuse it by: refused once read past the bound, and the server goes on serving.
    const chunks: Uint8Array[] = [new TextEncoder().encode('a'.repeat(8200))];
    const chunked = await fetch(`${base}/sign-up`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new ReadableStream({
        pull: (controller) => {
          const chunk = chunks.pop();
          if (chunk) controller.enqueue(chunk);
          else controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await browser.get('/sign-up')).status).toBe(200);
    expect(await service.app.db.query(`SELECT 1 FROM customers WHERE email = 'mallory@evil.example'`)).toEqual([]);
  });

  it('names the field of bad sign-up input, refuses an email in use, and limits sign-ups per address in bounded memory', async () => {
    const browser = new Browser(base);
    const badEmail = await browser.submit('/sign-up', '/sign-up', { name: 'Nameless', email: 'not-an-email' });
    expect(badEmail.status).toBe(400);
    expect(badEmail.text).toMatch(/id="email"[^>]*aria-invalid="true"/);
    expect(badEmail.text).toContain('value="Nameless"');
    expect((await browser.submit('/sign-up', '/sign-up', { name: '', email: 'a@b.example' })).status).toBe(400);
    await signUp('Taken', 'taken@example.com');
    const taken = await signUp('Again', 'TAKEN@example.com');
    expect(taken.created.status).toBe(409);

    const flood = async (i: number) => {
      // X-Forwarded-For counts only from a trusted proxy: these come straight from 127.0.0.1, one address.
      const visitor = new Browser(base, { 'x-forwarded-for': `198.51.100.${i}` });
      const page = await visitor.get('/sign-up');
      return visitor.request('POST', '/sign-up', { csrf: csrfOf(page.text), name: `Bot ${i}`, email: `bot${i}@spam.example` });
    };
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await flood(i)).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
    const refused = await flood(9);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.text).toContain('Too many sign-ups from your network');
    clock.advance(hour);
    expect((await flood(10)).status).toBe(201);
    expect(service.app.portal!.portal.signUps.trackedAddresses).toBeLessThanOrEqual(10_000);
  });

  it('signs in with an operator-issued link: hashed, single use, short-lived, and a GET does not use it up', async () => {
    const { created } = await signUp('Linked', 'linked@example.com');
    expect(created.status).toBe(201);
    const [customer] = await service.app.db.query<{ id: string }>(`SELECT id FROM customers WHERE email = 'linked@example.com'`);
    const issued = await service.admin('POST', `/v1/customers/${customer!.id}/portal-links`);
    expect(issued.status).toBe(201);
    const link = new URL(issued.body.url as string);
    const token = link.searchParams.get('token')!;
    expect(link.pathname).toBe('/sign-in/link');
    expect(Date.parse(issued.body.expiresAt) - clock.now()).toBe(15 * 60_000);
    expect(await service.app.db.query('SELECT 1 FROM portal_links WHERE token_hash = $1', [token])).toEqual([]);
    expect(await service.app.db.query('SELECT 1 FROM portal_links WHERE token_hash = $1', [sha256(token)])).toHaveLength(1);
    expect((await service.admin('POST', '/v1/customers/nobody/portal-links')).status).toBe(404);

    const browser = new Browser(base);
    const path = `/sign-in/link?token=${token}`;
    expect((await browser.get(path)).status).toBe(200);
    expect((await browser.get(path)).status).toBe(200); // a preview or a scanner's GET changes nothing
    const used = await browser.submit(path, '/sign-in/link', { token });
    expect(used.status).toBe(303);
    expect(used.headers.get('location')).toBe('/account');
    expect((await browser.get('/account')).text).toContain('Signed in as <strong>Linked</strong>');
    // Single use: the same link again, from another browser, opens nothing.
    const thief = new Browser(base);
    expect((await thief.get(path)).headers.get('location')).toBe('/sign-in?expired=1');
    const replayed = await thief.request('POST', '/sign-in/link', { csrf: csrfOf((await thief.get('/sign-up')).text), token });
    expect(replayed.headers.get('location')).toBe('/sign-in?expired=1');

    const late = (await service.admin('POST', `/v1/customers/${customer!.id}/portal-links`)).body.url as string;
    clock.advance(15 * 60_000);
    const lateBrowser = new Browser(base);
    expect((await lateBrowser.get(new URL(late).pathname + new URL(late).search)).headers.get('location')).toBe('/sign-in?expired=1');
  });

  it("believes the identity proxy's email header only from the proxy's own address", async () => {
    await signUp('Proxied', 'proxied@corp.example');
    // 127.0.0.1 is not the configured proxy (127.0.0.2): the header is ignored.
    const forged = await new Browser(base, { 'x-forwarded-email': 'proxied@corp.example' }).get('/account');
    expect(forged.status).toBe(303);
    expect(forged.headers.get('location')).toBe('/sign-in');
    // From the proxy's address, the header signs the person in on every request, with no session.
    const response = await new Browser(base, { 'x-forwarded-email': 'PROXIED@corp.example' }, '127.0.0.2').get('/account');
    expect(response.status).toBe(200);
    expect(response.text).toContain('Signed in as <strong>Proxied</strong>');
    const unknown = await new Browser(base, { 'x-forwarded-email': 'nobody@corp.example' }, '127.0.0.2').get('/account');
    expect(unknown.status).toBe(403);
  });

  it("shows only the signed-in customer's own invoices, keys and top-ups", async () => {
    const owner = await signUp('Owner', 'owner@example.com');
    const [ownerRow] = await service.app.db.query<{ id: string }>(`SELECT id FROM customers WHERE email = 'owner@example.com'`);
    const [subscription] = await service.app.accounts.listSubscriptions(ownerRow!.id);
    await service.app.accounts.changePlan(subscription!.id, 'pro');
    const invoice = await service.app.rating.refreshCurrent(subscription!.id);
    const [key] = await service.app.accounts.listKeys(ownerRow!.id);
    expect((await owner.browser.get(`/account/invoices/${invoice!.id}`)).status).toBe(200);

    const intruder = (await signUp('Intruder', 'intruder@example.com')).browser;
    const peek = await intruder.get(`/account/invoices/${invoice!.id}`);
    expect(peek.status).toBe(404);
    expect(peek.text).not.toContain(invoice!.id);
    expect((await intruder.submit('/account/keys', `/account/keys/${key!.id}/revoke`, {})).status).toBe(404);
    expect((await service.app.accounts.getKey(key!.id)).status).toBe('active');
    expect((await intruder.get('/account/wallet/top-ups/top_someone')).status).toBe(404);
    // Malformed percent-encoding in an id names no page: 404, not a 500.
    for (const path of ['/account/invoices/%E0', '/account/wallet/top-ups/%E0']) expect((await intruder.get(path)).status, path).toBe(404);
    expect((await intruder.submit('/account/keys', '/account/keys/%E0/revoke', {})).status).toBe(404);
    // The plan-change notice names catalog plans only, not whatever a crafted link puts in its query.
    expect((await intruder.get('/account/plan?changed=FREE%20MONEY%20credited.%20Call%20us')).text).not.toContain('FREE MONEY');
  });

  it('rotates and revokes keys, refuses private webhook addresses, and says when Stripe is not configured', async () => {
    const { browser, created } = await signUp('Keys', 'keys@example.com');
    const first = keyOf(created.text)!;
    const [customer] = await service.app.db.query<{ id: string }>(`SELECT id FROM customers WHERE email = 'keys@example.com'`);
    const [oldKey] = await service.app.accounts.listKeys(customer!.id);
    const rotated = await browser.submit('/account/keys', `/account/keys/${oldKey!.id}/rotate`, {});
    expect(rotated.status).toBe(201);
    const second = keyOf(rotated.text)!;
    expect(second).not.toBe(first);
    const keys = await service.app.accounts.listKeys(customer!.id);
    expect(keys.map((key) => [key.name, key.status])).toEqual([
      ['First key', 'revoked'],
      ['First key', 'active'],
    ]);
    // Free allows two keys: the rotation freed its slot, so one more fits and then no more.
    expect((await browser.submit('/account/keys', '/account/keys', { name: 'ci', subscription: keys[0]!.subscriptionId })).status).toBe(201);
    const third = await browser.submit('/account/keys', '/account/keys', { name: 'extra', subscription: keys[0]!.subscriptionId });
    expect(third.status).toBe(403);
    expect(third.text).toContain('at most 2 keys');

    for (const url of ['http://hooks.example.com/x', 'https://localhost/x', 'https://10.1.2.3/x', 'https://[::1]/x', 'https://user:pw@hooks.example.com/']) {
      expect((await browser.submit('/account/alerts', '/account/alerts', { url })).status, url).toBe(400);
    }
    const saved = await browser.submit('/account/alerts', '/account/alerts', { url: 'https://hooks.example.com/usage' });
    expect(saved.status).toBe(200);
    expect(saved.text).toMatch(/id="webhook-secret">whsec_/);

    const wallet = await browser.get('/account/wallet');
    expect(wallet.text).toContain('Online top-ups are not available here');
    expect((await browser.submit('/account/wallet', '/account/wallet/top-up', { amount: '10.00', currency: 'USD' })).status).toBe(503);
    // More than a wallet can hold is refused before anything else (it was a 500 from PostgreSQL's bigint).
    const huge = await browser.submit('/account/wallet', '/account/wallet/top-up', { amount: '99999999999999999999999999', currency: 'USD' });
    expect(huge.status).toBe(400);
    expect(huge.text).toContain('A wallet holds at most');
  });
});
