import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { startStripeServer, type StripeServer } from './stripe-server/server.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/**
 * A customer's whole journey through the developer portal in Debian's Chromium: pricing, sign-up, a first call
 * (the Check and its access-log entry, as Envoy sends them), the usage chart, an upgrade with its proration shown
 * first, a top-up through Stripe Checkout (the local Stripe-compatible server), and the invoice. Each page is kept
 * as a screenshot in test-artifacts/portal/, one of them at a phone's width.
 */

const chromiumPath = '/usr/bin/chromium';
const artifacts = 'test-artifacts/portal';
const day = 86_400_000;
const webhookSecret = 'whsec_portal_browser_journey';
const skip = !existsSync(chromiumPath) && !process.env.CI;
if (skip) console.warn(`portal browser journey skipped: ${chromiumPath} is missing (apt-get install -y chromium); CI runs it`);

describe.skipIf(skip)('developer portal in a browser', () => {
  const clock = new ManualClock(Date.parse('2026-11-02T09:00:00Z'));
  let stripe: StripeServer;
  let service: TestApp;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let profile: string;

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    profile = mkdtempSync(join(tmpdir(), 'tollgate-chromium-'));
    stripe = await startStripeServer({ clock: () => clock.now() });
    service = await startTestApp({
      mode: 'embedded',
      clock,
      env: {
        TOLLGATE_PORTAL_PORT: '0',
        TOLLGATE_PORTAL_HOST: '127.0.0.1',
        TOLLGATE_PORTAL_NAME: 'PetStore developers',
        TOLLGATE_PORTAL_API_URL: 'https://api.petstore.example.com',
        // The journey moves the business clock on by days; a session must outlast it.
        TOLLGATE_PORTAL_SESSION_TTL_MS: String(20 * day),
        TOLLGATE_STRIPE_SECRET_KEY: 'sk_test_portal_journey',
        TOLLGATE_STRIPE_WEBHOOK_SECRET: webhookSecret,
        TOLLGATE_STRIPE_API_BASE: stripe.url,
        TOLLGATE_STRIPE_SYNC_INTERVAL_MS: '20',
        TOLLGATE_BILLING_INTERVAL_MS: '0',
      },
    });
    base = service.app.portal!.url;
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(10_000);
    // Nothing leaves the machine: any address but the portal's is refused.
    await context.route(/^(?!http:\/\/localhost:\d+\/)/, (route) => route.abort());
  }, 30_000);

  afterAll(async () => {
    await context?.close();
    await service?.close();
    await stripe?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  const shoot = (name: string) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  /** What a person with a screen reader or a keyboard would trip on first (run in the page, which has the DOM). */
  const accessibilityProblems = () =>
    page.evaluate(`(() => {
      const problems = [];
      if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
      if (!document.querySelector('main')) problems.push('no main landmark');
      if (!document.documentElement.lang) problems.push('no lang');
      for (const field of document.querySelectorAll('input:not([type=hidden]), select')) {
        const labelled = (field.id && document.querySelector('label[for="' + field.id + '"]')) || field.getAttribute('aria-label');
        if (!labelled) problems.push('unlabelled field ' + field.name);
      }
      for (const image of document.querySelectorAll('img')) if (!image.hasAttribute('alt')) problems.push('image without alt');
      for (const button of document.querySelectorAll('button:not([hidden])')) if (!button.textContent.trim()) problems.push('button without text');
      return problems;
    })()`);

  const pageWidth = () => page.evaluate('document.documentElement.scrollWidth');

  /** Sends one call the way Envoy would: the Check, then the access-log entry once the response went out. */
  async function callApi(key: string, method: string, path: string) {
    const envoy = new FakeEnvoy(service.grpcAddress);
    const als = new AccessLogClient(service.grpcAddress);
    try {
      const outcome = await envoy.check({ method, path, key });
      expect(outcome.allowed, JSON.stringify(outcome.body)).toBe(true);
      const stream = als.open();
      await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, method, startMs: clock.now() })]);
      expect(await stream.end()).toEqual({});
    } finally {
      envoy.close();
      als.close();
    }
  }

  it('sign up, call, see usage, upgrade, top up, see the invoice', async () => {
    // Pricing, with the calculator.
    await page.goto(`${base}/pricing`);
    expect(await page.title()).toBe('Pricing · PetStore developers');
    await page.getByLabel('Calls a month').fill('250000');
    await page.getByRole('button', { name: 'Estimate' }).click();
    await expect.poll(() => page.locator('#estimates caption').textContent()).toContain('250,000 calls');
    expect(await page.locator('#estimates').textContent()).toContain('1750.00 USD'); // Metered, graduated
    expect(await accessibilityProblems()).toEqual([]);
    await shoot('01-pricing');

    // Sign-up: the key is shown once, with the first call.
    await page.getByRole('link', { name: 'Start free' }).click();
    await page.getByLabel('Your name or company').fill('Acme Robotics');
    await page.getByLabel('Email').fill('dev@acme-robotics.example');
    expect(await accessibilityProblems()).toEqual([]);
    await shoot('02-sign-up');
    await page.getByRole('button', { name: 'Create account and key' }).click();
    const key = (await page.locator('#new-key').textContent())!.trim();
    expect(key).toMatch(/^tg_/);
    expect(await page.locator('#first-call').textContent()).toContain(`https://api.petstore.example.com/api/v1/pets`);
    await shoot('03-first-key');

    // Calls through "Envoy", a few days apart, then the usage chart.
    await service.app.identities.refresh();
    for (let i = 0; i < 3; i++) await callApi(key, 'GET', '/api/v1/pets');
    clock.advance(2 * day);
    for (let i = 0; i < 5; i++) await callApi(key, 'GET', '/api/v1/pets/7');
    await callApi(key, 'POST', '/api/v1/pets');
    await service.app.metering.meter.flush();
    await page.getByRole('link', { name: 'Go to your dashboard' }).click();
    expect(await page.locator('#usage-chart-desc').textContent()).toContain('9 calls');
    expect(await page.locator('.chart svg rect[fill]').count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator('main').textContent()).toContain('990 of 1,000 units left');
    expect(await accessibilityProblems()).toEqual([]);
    await shoot('04-usage');

    // Upgrade to Pro: the proration is shown before anything is charged, and the invoice then has exactly that.
    clock.advance(8 * day);
    await page.getByRole('navigation').getByRole('link', { name: 'Plan' }).click();
    await page.locator('.card', { hasText: 'Pro' }).getByRole('link', { name: 'See the cost of changing' }).click();
    const shownTotal = (await page.locator('#change-total').textContent())!;
    // 49.00 over the 20 days left of a 30-day period (Nov 2 to Dec 2): 32.67.
    expect(shownTotal).toBe('32.67 USD');
    expect(await page.locator('main table').textContent()).toContain('Recurring fee (monthly), prorated');
    await shoot('05-plan-change-preview');
    await page.getByRole('button', { name: 'Confirm: change to Pro' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain('You are now on the Pro plan');

    // Top-up through Stripe Checkout: the customer pays on Stripe's page (here: the test server marks it paid and
    // sends the webhook), and the wallet is credited.
    await page.getByRole('navigation').getByRole('link', { name: 'Wallet' }).click();
    await page.getByLabel('Amount').fill('25.00');
    await shoot('06-wallet');
    await page.getByRole('button', { name: 'Pay with Stripe' }).click();
    const checkout = page.locator('#checkout');
    await checkout.waitFor();
    expect(await checkout.getAttribute('href')).toMatch(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_/);
    const sessionId = (await checkout.getAttribute('href'))!.split('/').at(-1)!;
    stripe.completeCheckoutSession(sessionId);
    const delivered = await stripe.sendWebhook(`${service.httpUrl}/webhooks/stripe`, stripe.events.checkoutSession('checkout.session.completed', sessionId), {
      secret: webhookSecret,
      timestamp: Math.floor(clock.now() / 1000),
    });
    expect(delivered.status).toBe(200);
    await page.goto(`${base}/account/wallet?paid=1`);
    expect(await page.locator('dl.facts').textContent()).toContain('25.00 USD');
    await shoot('07-wallet-paid');

    // The invoice: the running period's draft, with the upgrade as previewed.
    await page.getByRole('navigation').getByRole('link', { name: 'Invoices' }).click();
    await shoot('08-invoices');
    await page.locator('main table a').first().click();
    const lines = await page.locator('main table tbody').textContent();
    expect(lines).toContain('Recurring fee (monthly), prorated');
    expect(lines).toContain('32.67 USD');
    expect(await page.locator('main table tfoot').textContent()).toContain('32.67 USD');
    expect(await accessibilityProblems()).toEqual([]);
    await shoot('09-invoice');

    // At a phone's width nothing runs off the side, and the navigation still works by keyboard.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/account`);
    expect(await pageWidth()).toBeLessThanOrEqual(390);
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
    await shoot('10-usage-phone');
    await page.goto(`${base}/account/keys`);
    expect(await pageWidth()).toBeLessThanOrEqual(390);
    await shoot('11-keys-phone');
  }, 30_000);
});
