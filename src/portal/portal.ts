/**
 * The developer portal's pages: what each route reads and writes, rendered as plain HTML. The HTTP details
 * (cookies, CSRF, limits, headers) are the server's (server.ts); here every handler gets a parsed request and the
 * viewer, and answers a reply.
 */
import type { AccountsService } from '../identity/index.js';
import type { ApiKey, Subscription } from '../identity/index.js';
import type { UsageAlerts } from '../alerts/index.js';
import type { BillingQueries, SubscriptionHistories } from '../billing/index.js';
import { catalogPricing, maxWalletMinorUnits, previewPlanChange, type PlanChangePreview } from '../billing/index.js';
import type { RatingLoop } from '../billing/index.js';
import type { WalletService } from '../billing/index.js';
import type { Catalog, Plan } from '../catalog/index.js';
import type { Clock } from '../kernel/index.js';
import { TollgateError } from '../kernel/index.js';
import type { Logger } from '../kernel/index.js';
import { formatMajor, isCurrencyCode, parseMajorAmount, type CurrencyCode } from '../kernel/index.js';
import type { UsageService } from '../metering/index.js';
import type { StripeTopUps } from '../stripe/index.js';
import type { Db } from '../store/index.js';
import type { PortalAuthStore } from './auth-store.js';
import { dailySeries, lastDays, usageChart } from './chart.js';
import { html, type Html } from './html.js';
import { csrfField, day, money, notice, page, secretBlock, type Section, type Viewer } from './layout.js';
import { estimates, headlinePrice, planTerms, publicPlans } from './pricing-view.js';
import { SignUpRateLimit } from './rate-limit.js';
import type { PortalSettings } from '../config/index.js';

export interface PortalDeps {
  settings: PortalSettings;
  /** The settings' public URL, or http://localhost:<port> once the port is known. */
  publicUrl: string;
  db: Db;
  catalog: () => Catalog;
  accounts: AccountsService;
  wallets: WalletService;
  billing: Pick<BillingQueries, 'listInvoices' | 'getInvoice'>;
  histories: Pick<SubscriptionHistories, 'history'>;
  usage: UsageService;
  ratingLoop: Pick<RatingLoop, 'refreshCurrent'>;
  topUps: Pick<StripeTopUps, 'create' | 'get'>;
  /** Without a Stripe key, top-ups cannot be paid: the wallet page says so. */
  stripeConfigured: boolean;
  alerts: Pick<UsageAlerts, 'webhooks' | 'list'>;
  auth: PortalAuthStore;
  /** Where the Check reads API keys: the first-call example sends the key there. */
  keyHeader: string;
  clock: Clock;
  logger: Logger;
}

export interface PortalRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  form: URLSearchParams;
  /** The client's address (behind trusted proxies), as rate limits count it. */
  clientKey: string;
  /** The identity proxy's email, when the request came through it. */
  proxyEmail: string | undefined;
}

export interface PortalReply {
  status: number;
  html?: string;
  /** A 303 to this path or URL. */
  location?: string;
  /** A new session for this customer: the server sets the cookie. */
  signIn?: string;
  signOut?: boolean;
  headers?: Record<string, string>;
}

/** A customer-facing failure with the status and the words to show. */
export class PortalError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** An id from the path, decoded: malformed percent-encoding names no page (decodeURIComponent would throw). */
function pathSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new PortalError(404, 'There is no page here.');
  }
}

const emailPattern = /^[^\s@<>"]{1,64}@[^\s@<>"]+\.[^\s@<>"]{2,}$/;
const maxCalls = 1_000_000_000_000;

/** A webhook a customer sets is called from inside the operator's network: only public https hosts. */
export function webhookUrlProblem(url: string): string | undefined {
  if (!URL.canParse(url)) return 'must be a URL such as https://example.com/hooks/usage';
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:') return 'must start with https://';
  if (parsed.username || parsed.password) return 'must not carry a user name or password; put a token in the path or query';
  // A fully qualified name's trailing dot names the same host: `localhost.` is localhost.
  const host = parsed.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.+$/, '');
  const ipv6 = host.includes(':');
  const privateHost =
    ['localhost', '.localhost', '.internal', '.local'].some((name) => host === name || host.endsWith(name)) ||
    // Loopback, private, link-local, carrier-grade NAT (100.64/10, cloud metadata on some), benchmarking (198.18/15),
    // multicast and reserved (224 and up).
    /^(127|10|0|169\.254|192\.168|172\.(1[6-9]|2\d|3[01])|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])|198\.1[89]|22[4-9]|2[3-5]\d)\.[\d.]+$/.test(host) ||
    // Loopback, unspecified, unique local, link-local, IPv4-mapped, and NAT64 (64:ff9b::/96 reaches IPv4 addresses).
    (ipv6 && /^(::1?$|f[cd]|fe[89ab]|::ffff:|64:ff9b:)/.test(host)) ||
    (!ipv6 && !host.includes('.'));
  return privateHost ? 'must be a public host name: private and local addresses are not called' : undefined;
}

export class Portal {
  readonly signUps: SignUpRateLimit;

  constructor(private readonly deps: PortalDeps) {
    const { signUp } = deps.settings;
    this.signUps = new SignUpRateLimit({ perAddress: signUp.perAddressPerHour, global: signUp.perHour, windowMs: 3_600_000, maxAddresses: 10_000 });
  }

  private render(viewer: Viewer, section: Section | undefined, title: string, body: Html, status = 200): PortalReply {
    return { status, html: page(this.deps.settings, viewer, section, title, body) };
  }

  errorPage(viewer: Viewer, status: number, message: string): PortalReply {
    const title = status === 404 ? 'Not found' : status === 429 ? 'Too many attempts' : status >= 500 ? 'Something went wrong' : 'That did not work';
    return this.render(viewer, undefined, title, html`${notice('error', message)}<p><a href="${viewer.customerId ? '/account' : '/pricing'}">Back</a></p>`, status);
  }

  /** Routes a request; undefined when no page has this path. */
  async handle(request: PortalRequest, viewer: Viewer): Promise<PortalReply | undefined> {
    const { method, path } = request;
    const get = method === 'GET' || method === 'HEAD';
    if (path === '/' && get) return { status: 303, location: viewer.customerId ? '/account' : '/pricing' };
    if (path === '/pricing' && get) return this.pricing(request, viewer);
    if (path === '/sign-up') return get ? this.signUpForm(viewer, request) : method === 'POST' ? this.signUp(request, viewer) : undefined;
    if (path === '/sign-in' && get) return this.signInPage(viewer, request);
    if (path === '/sign-in/link') return get ? this.linkPage(request, viewer) : method === 'POST' ? this.useLink(request) : undefined;
    if (path === '/sign-out' && method === 'POST') return { status: 303, location: '/pricing', signOut: true };
    if (!path.startsWith('/account')) return undefined;
    if (!viewer.customerId) {
      if (request.proxyEmail) {
        return this.errorPage(viewer, 403, `No account uses ${request.proxyEmail}. ${this.deps.settings.signUp.open ? 'Sign up to create one.' : 'Ask us to create one.'}`);
      }
      return { status: 303, location: '/sign-in' };
    }
    const customerId = viewer.customerId;
    const invoiceMatch = /^\/account\/invoices\/([^/]+)$/.exec(path);
    const keyMatch = /^\/account\/keys\/([^/]+)\/(revoke|rotate)$/.exec(path);
    const topUpMatch = /^\/account\/wallet\/top-ups\/([^/]+)$/.exec(path);
    if (get) {
      if (path === '/account') return this.overview(customerId, viewer);
      if (path === '/account/invoices') return this.invoices(customerId, viewer);
      if (invoiceMatch) return this.invoice(customerId, viewer, pathSegment(invoiceMatch[1]!));
      if (path === '/account/wallet') return this.wallet(customerId, viewer, request);
      if (topUpMatch) return this.topUpStatus(customerId, viewer, pathSegment(topUpMatch[1]!));
      if (path === '/account/plan') return this.plans(customerId, viewer, request);
      if (path === '/account/plan/change') return this.previewChange(customerId, viewer, request);
      if (path === '/account/keys') return this.keys(customerId, viewer);
      if (path === '/account/alerts') return this.alertSettings(customerId, viewer);
      return undefined;
    }
    if (method !== 'POST') return undefined;
    if (path === '/account/wallet/top-up') return this.topUp(customerId, viewer, request);
    if (path === '/account/plan/change') return this.changePlan(customerId, viewer, request);
    if (path === '/account/keys') return this.createKey(customerId, viewer, request);
    if (keyMatch) return this.changeKey(customerId, viewer, pathSegment(keyMatch[1]!), keyMatch[2] as 'revoke' | 'rotate');
    if (path === '/account/alerts') return this.setWebhook(customerId, viewer, request);
    if (path === '/account/alerts/remove') return this.removeWebhook(customerId);
    return undefined;
  }

  // ── Public pages ────────────────────────────────────────────────────────────────────────────────────────────

  private pricing(request: PortalRequest, viewer: Viewer): PortalReply {
    const catalog = this.deps.catalog();
    const callsText = request.query.get('calls') ?? '10000';
    const calls = /^\d{1,13}$/.test(callsText) && Number(callsText) <= maxCalls ? Number(callsText) : undefined;
    const plans = publicPlans(catalog);
    const signUpPlan = this.signUpPlan();
    const body = html`<p>Plans for ${[...new Set(plans.map((plan) => catalog.products.get(plan.product)?.name))].join(', ')}. Prices exclude taxes.</p>
<ul class="cards">${plans.map(
      (plan) => html`<li class="card"><h2>${plan.name}</h2>
<p class="price">${headlinePrice(plan)}</p>
${plan.description ? html`<p class="muted">${plan.description}</p>` : ''}
<ul>${planTerms(plan, catalog).map((term) => html`<li>${term}</li>`)}</ul>
${plan.id === signUpPlan?.id && this.deps.settings.signUp.open && !viewer.customerId ? html`<p><a class="button" href="/sign-up">Start free</a></p>` : ''}
${viewer.customerId ? html`<p><a href="/account/plan">Change to this plan</a></p>` : ''}
</li>`,
    )}</ul>
<h2 id="calculator">Estimate your bill</h2>
<form method="get" action="/pricing" data-calculator aria-labelledby="calculator">
<label for="calls">Calls a month</label>
<input id="calls" name="calls" type="number" inputmode="numeric" min="0" max="${maxCalls}" step="1" value="${calls ?? callsText}" required aria-describedby="calls-hint">
<p class="hint" id="calls-hint">Each call counted as one unit; endpoints with a weight count more.</p>
<p><button type="submit">Estimate</button></p>
</form>
${calls === undefined ? notice('error', 'Calls must be a whole number from 0 to 1,000,000,000,000.') : estimates(catalog, calls)}`;
    return this.render(viewer, 'pricing', 'Pricing', body, calls === undefined ? 400 : 200);
  }

  /** The plan sign-up puts customers on: the catalog's default plan, free to start (the catalog refuses fees on it). */
  private signUpPlan(): Plan | undefined {
    const catalog = this.deps.catalog();
    return catalog.defaultPlan ? catalog.plan(catalog.defaultPlan) : undefined;
  }

  private signUpForm(viewer: Viewer, request: PortalRequest, problem?: { field: string; message: string }, values?: { name: string; email: string }, status = 200): PortalReply {
    if (viewer.customerId) return { status: 303, location: '/account' };
    const closed = this.signUpClosed();
    if (closed) return this.render(viewer, 'sign-up', 'Sign up', notice('info', closed), 200);
    const plan = this.signUpPlan()!;
    const invalid = (field: string) => (problem?.field === field ? html` aria-invalid="true" aria-describedby="${field}-error"` : '');
    const error = (field: string) => (problem?.field === field ? html`<p class="hint" id="${field}-error" role="alert"><strong>${problem.message}</strong></p>` : '');
    const body = html`<p>Create an account on the <strong>${plan.name}</strong> plan: no card needed. You get your first API key at once.</p>
${problem && !['name', 'email'].includes(problem.field) ? notice('error', problem.message) : ''}
<form method="post" action="/sign-up" novalidate>
${csrfField(viewer)}
<label for="name">Your name or company</label>
<input id="name" name="name" autocomplete="organization" maxlength="200" required value="${values?.name ?? ''}"${invalid('name')}>
${error('name')}
${request.proxyEmail
  ? html`<p>Email: <strong>${request.proxyEmail}</strong> (from your sign-in)</p>`
  : html`<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" maxlength="254" required value="${values?.email ?? ''}"${invalid('email')}>
${error('email')}`}
<p><button type="submit">Create account and key</button></p>
</form>`;
    return this.render(viewer, 'sign-up', 'Sign up', body, status);
  }

  private signUpClosed(): string | undefined {
    if (!this.deps.settings.signUp.open) return 'Sign-up is by invitation here: ask us for an account.';
    if (!this.signUpPlan()) return 'Sign-up is not available: no plan to start on is set up yet.';
    return undefined;
  }

  private async signUp(request: PortalRequest, viewer: Viewer): Promise<PortalReply> {
    const closed = this.signUpClosed();
    if (closed) return this.errorPage(viewer, 403, closed);
    const name = (request.form.get('name') ?? '').trim();
    const email = (request.proxyEmail ?? request.form.get('email') ?? '').trim();
    const values = { name, email };
    const retry = (field: string, message: string, status = 400) => this.signUpForm(viewer, request, { field, message }, values, status);
    if (name.length === 0 || name.length > 200) return retry('name', 'Enter a name of 1 to 200 characters.');
    if (email.length > 254 || !emailPattern.test(email)) return retry('email', 'Enter an email address such as dev@example.com.');
    const limited = this.signUps.take(request.clientKey, this.deps.clock.now());
    if (!limited.allowed) {
      const minutes = Math.ceil(limited.retryAfterMs / 60_000);
      const reply = retry('form', `Too many sign-ups ${limited.scope === 'address' ? 'from your network' : 'right now'}; try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`, 429);
      return { ...reply, headers: { 'retry-after': String(Math.ceil(limited.retryAfterMs / 1000)) } };
    }
    if (await this.deps.auth.emailInUse(email)) return retry('email', 'An account already uses this email. Ask us for a sign-in link.', 409);
    const plan = this.signUpPlan()!;
    const { customer, created } = await this.deps.accounts.inTransaction(async (accounts) => {
      const customer = await accounts.createCustomer({ name, email, metadata: { source: 'portal' } });
      const created = await accounts.createKey({ customerId: customer.id, planId: plan.id, name: 'First key' });
      return { customer, created };
    });
    this.deps.logger.info({ customerId: customer.id, plan: plan.id }, 'portal sign-up');
    const body = html`${notice('ok', html`Welcome, ${name}. Your account is on the <strong>${plan.name}</strong> plan.`)}
${this.keyShownOnce(created.key, created.apiKey, plan.id)}
<p><a class="button" href="/account">Go to your dashboard</a></p>`;
    return { ...this.render({ ...viewer, customerId: customer.id }, 'sign-up', 'Your first API key', body, 201), signIn: customer.id };
  }

  /** A new key, its only showing, with a first call to copy on the key's plan. */
  private keyShownOnce(key: string, apiKey: ApiKey, planId: string): Html {
    const catalog = this.deps.catalog();
    const plan = catalog.plan(planId);
    const endpoint = plan && firstCallEndpoint(catalog, plan);
    const path = endpoint?.path ?? '/';
    const method = endpoint?.method ?? 'GET';
    return html`${notice('info', 'Copy the key now: it is shown this once and stored only as a hash. Lost keys can be rotated.')}
${secretBlock('new-key', `API key ${apiKey.name ? `“${apiKey.name}”` : apiKey.prefix}`, key)}
<h2>Your first call</h2>
<p>Through the API gateway:</p>
<pre id="first-call"><code>curl -X ${method} -H '${this.deps.keyHeader}: ${key}' '${this.deps.settings.apiUrl}${path}'</code></pre>
<p><button type="button" class="secondary" data-copy="first-call" hidden>Copy</button></p>
<p>Or check the key against the plan without calling the API (with the Tollgate command line):</p>
<pre><code>tollgate check --key ${key} --method ${method} --path ${path}</code></pre>`;
  }

  private signInPage(viewer: Viewer, request: PortalRequest): PortalReply {
    if (viewer.customerId) return { status: 303, location: '/account' };
    const expired = request.query.get('expired') === '1';
    const body = html`${expired ? notice('error', 'That sign-in link has expired or was used already. Ask for a new one.') : ''}
<p>Sign-in links are single-use and expire after ${Math.round(this.deps.settings.linkTtlMs / 60_000)} minutes. Ask your contact at ${this.deps.settings.brand.name} for one: we send it to the email on your account.</p>
${this.deps.settings.identityHeader ? html`<p><a class="button" href="/account">Sign in with your company account</a></p>` : ''}
${this.deps.settings.signUp.open ? html`<p>No account yet? <a href="/sign-up">Sign up</a>.</p>` : ''}`;
    return this.render(viewer, 'sign-in', 'Sign in', body, expired ? 410 : 200);
  }

  /** A sign-in link only shows a button: link previews and mail scanners follow GETs, and must not use it up. */
  private async linkPage(request: PortalRequest, viewer: Viewer): Promise<PortalReply> {
    const token = request.query.get('token') ?? '';
    if (!(await this.deps.auth.linkUsable(token))) return { status: 303, location: '/sign-in?expired=1' };
    const body = html`<p>Continue to your account.</p>
<form method="post" action="/sign-in/link">${csrfField(viewer)}<input type="hidden" name="token" value="${token}"><button type="submit">Sign in</button></form>`;
    return this.render(viewer, 'sign-in', 'Sign in', body);
  }

  private async useLink(request: PortalRequest): Promise<PortalReply> {
    const customerId = await this.deps.auth.consumeLink(request.form.get('token') ?? '');
    if (!customerId) return { status: 303, location: '/sign-in?expired=1' };
    return { status: 303, location: '/account', signIn: customerId };
  }

  // ── Signed-in pages ─────────────────────────────────────────────────────────────────────────────────────────

  private async activeSubscriptions(customerId: string): Promise<Subscription[]> {
    return (await this.deps.accounts.listSubscriptions(customerId)).filter((subscription) => subscription.status === 'active');
  }

  private planName(planId: string): string {
    return this.deps.catalog().plan(planId)?.name ?? planId;
  }

  private async overview(customerId: string, viewer: Viewer): Promise<PortalReply> {
    const now = this.deps.clock.now();
    const customer = await this.deps.accounts.getCustomer(customerId);
    const usage = await this.deps.usage.customerUsage(customerId);
    const days = lastDays(now, 30);
    const daily = await this.deps.usage.dailyUsage(customerId, days[0]!, days.at(-1)!);
    const subscriptions = usage.subscriptions.filter((subscription) => subscription.status === 'active');
    const body = html`<p>Signed in as <strong>${customer.name}</strong>${customer.email ? html` (${customer.email})` : ''}.</p>
${customer.status === 'suspended' ? notice('error', `Your account is suspended${customer.statusReason ? `: ${customer.statusReason}` : ''}. Calls are refused until it is lifted.`) : ''}
${subscriptions.length === 0 ? notice('info', html`You have no active plan. <a href="/account/plan">Choose one</a>.`) : ''}
${subscriptions.map((subscription) => {
  const quota = subscription.quota;
  return html`<section aria-labelledby="plan-${subscription.subscriptionId}">
<h2 id="plan-${subscription.subscriptionId}">${this.planName(subscription.planId)} plan</h2>
<dl class="facts">
<dt>Billing period</dt><dd>${subscription.period.start.slice(0, 10)} to ${subscription.period.end.slice(0, 10)}</dd>
<dt>Calls this period</dt><dd>${subscription.totals.calls.toLocaleString('en-US')} (${subscription.totals.units.toLocaleString('en-US')} units; ${subscription.totals.deniedCalls.toLocaleString('en-US')} refused)</dd>
${quota
  ? html`<dt id="quota-${subscription.subscriptionId}">Quota left</dt><dd><meter min="0" max="${quota.limit}" value="${quota.used}" aria-labelledby="quota-${subscription.subscriptionId}">${quota.used} of ${quota.limit}</meter><br>${quota.remaining.toLocaleString('en-US')} of ${quota.limit.toLocaleString('en-US')} units left until ${subscription.period.end.slice(0, 10)}</dd>`
  : html`<dt>Quota</dt><dd>No quota on this plan</dd>`}
</dl>
${subscription.endpoints.length > 0
  ? html`<div class="table-scroll"><table><caption>This period by endpoint</caption><thead><tr><th scope="col">Endpoint</th><th scope="col" class="amount">Calls</th><th scope="col" class="amount">Units</th><th scope="col" class="amount">Refused</th></tr></thead>
<tbody>${subscription.endpoints.map((endpoint) => html`<tr><th scope="row">${endpoint.endpointId ?? '(no endpoint)'}</th><td class="amount">${endpoint.calls}</td><td class="amount">${endpoint.units}</td><td class="amount">${endpoint.deniedCalls}</td></tr>`)}</tbody></table></div>`
  : ''}
</section>`;
})}
<h2 id="usage-heading">Calls over the last 30 days</h2>
${usageChart(dailySeries(daily, days), 'usage-chart')}
<p class="hint">Days in UTC. Calls appear within a few seconds of being made.</p>`;
    return this.render(viewer, 'overview', 'Usage', body);
  }

  private async invoices(customerId: string, viewer: Viewer): Promise<PortalReply> {
    // The running period's drafts are rated now, so they include the latest usage and plan changes.
    for (const subscription of await this.activeSubscriptions(customerId)) await this.deps.ratingLoop.refreshCurrent(subscription.id);
    const invoices = await this.deps.billing.listInvoices(customerId, { limit: 36 });
    const body =
      invoices.length === 0
        ? html`<p>No invoices yet: plans without fees or usage charges have nothing to bill.</p>`
        : html`<div class="table-scroll"><table><caption>Newest first. Drafts change until their period ends.</caption>
<thead><tr><th scope="col">Period</th><th scope="col">Plan</th><th scope="col">Status</th><th scope="col" class="amount">Calls</th><th scope="col" class="amount">Total</th></tr></thead>
<tbody>${invoices.map(
            (invoice) =>
              html`<tr><th scope="row"><a href="/account/invoices/${encodeURIComponent(invoice.id)}">${day(invoice.periodStart)} to ${day(invoice.periodEnd)}</a></th><td>${this.planName(invoice.planId)}</td><td>${invoice.status === 'draft' ? 'Draft' : 'Finalized'}</td><td class="amount">${invoice.calls.toString()}</td><td class="amount">${money(invoice.total, invoice.currency)}</td></tr>`,
          )}</tbody></table></div>`;
    return this.render(viewer, 'invoices', 'Invoices', body);
  }

  private async invoice(customerId: string, viewer: Viewer, id: string): Promise<PortalReply> {
    const invoice = await this.deps.billing.getInvoice(id).catch((error: unknown) => {
      if (error instanceof TollgateError && error.code === 'not_found') return undefined;
      throw error;
    });
    // Another customer's invoice is as absent as an unknown one.
    if (!invoice || invoice.customerId !== customerId) throw new PortalError(404, 'No such invoice.');
    const billed = invoice.lines.filter((line) => line.kind !== 'revenue_share');
    const body = html`<dl class="facts">
<dt>Invoice</dt><dd>${invoice.id}</dd>
<dt>Status</dt><dd>${invoice.status === 'draft' ? 'Draft: the period is still running' : `Finalized ${invoice.finalizedAt ? day(invoice.finalizedAt) : ''}`}</dd>
<dt>Period</dt><dd>${day(invoice.periodStart)} to ${day(invoice.periodEnd)}</dd>
<dt>Plan</dt><dd>${this.planName(invoice.planId)} (${invoice.mode === 'prepaid' ? 'prepaid from the wallet' : 'billed after use'})</dd>
<dt>Calls</dt><dd>${invoice.calls.toString()} (${invoice.units.toString()} units)</dd>
</dl>
<div class="table-scroll"><table><caption>Lines</caption>
<thead><tr><th scope="col">Description</th><th scope="col">Plan</th><th scope="col" class="amount">Quantity</th><th scope="col" class="amount">Amount</th></tr></thead>
<tbody>${billed.map((line) => html`<tr><td>${line.description}</td><td>${this.planName(line.plan_id)}</td><td class="amount">${line.quantity}</td><td class="amount">${money(line.amount, invoice.currency)}</td></tr>`)}</tbody>
<tfoot><tr><th scope="row" colspan="3">Total</th><td class="amount"><strong>${money(invoice.total, invoice.currency)}</strong></td></tr></tfoot>
</table></div>
<p><a href="/account/invoices">All invoices</a></p>`;
    return this.render(viewer, 'invoices', `Invoice for ${day(invoice.periodStart)}`, body);
  }

  /** The currencies the customer's plans bill in, for top-ups. */
  private async currencies(customerId: string): Promise<CurrencyCode[]> {
    const catalog = this.deps.catalog();
    const fromPlans = (await this.activeSubscriptions(customerId)).flatMap((subscription) => catalog.plan(subscription.planId)?.pricing?.currency ?? []);
    const fromWallets = (await this.deps.wallets.summaries(customerId)).map((wallet) => wallet.currency);
    const all = [...new Set([...fromWallets, ...fromPlans])];
    return all.length > 0 ? all : ['USD'];
  }

  private async wallet(customerId: string, viewer: Viewer, request: PortalRequest, problem?: string, status = 200): Promise<PortalReply> {
    const wallets = await this.deps.wallets.summaries(customerId);
    const ledger = await this.deps.wallets.ledger(customerId, { limit: 1000 });
    const currencies = await this.currencies(customerId);
    const body = html`${request.query.get('paid') === '1' ? notice('ok', 'Thank you: the payment is being confirmed. The balance updates within a minute.') : ''}
${problem ? notice('error', problem) : ''}
<h2>Balance</h2>
${wallets.length === 0
  ? html`<p>Your wallet is empty. Prepaid plans take their fees and calls from it.</p>`
  : html`<dl class="facts">${wallets.map((wallet) => html`<dt>${wallet.currency}</dt><dd><strong>${money(wallet.balance, wallet.currency)}</strong>${wallet.lowBalance ? ' (low)' : ''}</dd>`)}</dl>`}
<h2 id="top-up-heading">Top up</h2>
${this.deps.stripeConfigured
  ? html`<form method="post" action="/account/wallet/top-up" aria-labelledby="top-up-heading">
${csrfField(viewer)}
<label for="amount">Amount</label>
<input id="amount" name="amount" inputmode="decimal" required pattern="[0-9]+([.][0-9]{1,3})?" placeholder="25.00" aria-describedby="amount-hint">
<p class="hint" id="amount-hint">In major units, such as 25.00. You pay on Stripe's checkout page.</p>
${currencies.length === 1
  ? html`<input type="hidden" name="currency" value="${currencies[0]}">`
  : html`<label for="currency">Currency</label><select id="currency" name="currency">${currencies.map((currency) => html`<option>${currency}</option>`)}</select>`}
<p><button type="submit">Pay with Stripe</button></p>
</form>`
  : notice('info', 'Online top-ups are not available here (no payment provider is configured). Contact us to add funds.')}
<h2>Recent entries</h2>
${ledger.length === 0
  ? html`<p>No entries yet.</p>`
  : html`<div class="table-scroll"><table><thead><tr><th scope="col">Date</th><th scope="col">Entry</th><th scope="col" class="amount">Amount</th><th scope="col" class="amount">Balance</th></tr></thead>
<tbody>${ledger.slice(-20).reverse().map((entry) => html`<tr><td>${day(entry.occurredAt)}</td><td>${entry.description}</td><td class="amount">${money(entry.amount, entry.currency)}</td><td class="amount">${money(entry.balanceAfter, entry.currency)}</td></tr>`)}</tbody></table></div>`}`;
    return this.render(viewer, 'wallet', 'Wallet', body, status);
  }

  private async topUp(customerId: string, viewer: Viewer, request: PortalRequest): Promise<PortalReply> {
    const currencies = await this.currencies(customerId);
    const currency = request.form.get('currency') ?? currencies[0]!;
    if (!isCurrencyCode(currency) || !currencies.includes(currency)) return this.wallet(customerId, viewer, request, `Choose one of ${currencies.join(', ')}.`, 400);
    let amount: bigint;
    try {
      amount = parseMajorAmount((request.form.get('amount') ?? '').trim(), currency);
    } catch {
      return this.wallet(customerId, viewer, request, `Enter an amount such as 25.00 (${currency}).`, 400);
    }
    if (amount <= 0n) return this.wallet(customerId, viewer, request, 'Enter an amount above zero.', 400);
    if (amount > maxWalletMinorUnits) return this.wallet(customerId, viewer, request, `A wallet holds at most ${money(maxWalletMinorUnits, currency)}.`, 400);
    if (!this.deps.stripeConfigured) return this.wallet(customerId, viewer, request, 'Online top-ups are not available here.', 503);
    const base = this.deps.publicUrl;
    const topUp = await this.deps.topUps.create(customerId, { amount, currency, successUrl: `${base}/account/wallet?paid=1`, cancelUrl: `${base}/account/wallet` });
    return { status: 303, location: `/account/wallet/top-ups/${encodeURIComponent(topUp.id)}` };
  }

  /** Waits (refreshing) until Stripe's checkout page is ready, then sends the customer there. */
  private async topUpStatus(customerId: string, viewer: Viewer, id: string): Promise<PortalReply> {
    const topUp = await this.deps.topUps.get(id).catch(() => undefined);
    if (!topUp || topUp.customerId !== customerId) throw new PortalError(404, 'No such top-up.');
    const amount = money(BigInt(topUp.amount), topUp.currency);
    if (topUp.status === 'open' && topUp.checkoutUrl) {
      const body = html`<p>Top-up of ${amount}: continue to Stripe to pay.</p><p><a class="button" id="checkout" href="${topUp.checkoutUrl}">Pay ${amount} with Stripe</a></p>`;
      return this.render(viewer, 'wallet', 'Pay your top-up', body);
    }
    if (topUp.status === 'pending') {
      const reply = this.render(viewer, 'wallet', 'Preparing your payment', html`<p role="status">Opening a Stripe checkout page for ${amount}… This page refreshes by itself.</p><p><a href="">Refresh</a></p>`);
      return { ...reply, headers: { refresh: '1' } };
    }
    const body = html`<p>Top-up of ${amount}: ${topUp.status === 'paid' ? 'paid, thank you.' : 'the checkout page expired before payment.'}</p><p><a href="/account/wallet">Back to the wallet</a></p>`;
    return this.render(viewer, 'wallet', 'Top-up', body);
  }

  private async plans(customerId: string, viewer: Viewer, request: PortalRequest): Promise<PortalReply> {
    const catalog = this.deps.catalog();
    const subscriptions = await this.activeSubscriptions(customerId);
    // Only a plan of the catalog: the query string is anyone's to write, and the notice must not say what they like.
    const changed = catalog.plan(request.query.get('changed') ?? '')?.name;
    const body = html`${changed ? notice('ok', `You are now on the ${changed} plan.`) : ''}
${subscriptions.length === 0 ? html`<p>You have no active plan. Ask us to set one up.</p>` : ''}
${subscriptions.map((subscription) => {
  const current = catalog.plan(subscription.planId);
  const others = publicPlans(catalog).filter((plan) => plan.product === subscription.productId && plan.id !== subscription.planId);
  return html`<section aria-labelledby="current-${subscription.id}">
<h2 id="current-${subscription.id}">Current plan: ${current?.name ?? subscription.planId}</h2>
${current ? html`<ul>${planTerms(current, catalog).map((term) => html`<li>${term}</li>`)}</ul>` : ''}
<h2>Other plans</h2>
<ul class="cards">${others.map(
    (plan) => html`<li class="card"><h3>${plan.name}</h3><p class="price">${headlinePrice(plan)}</p><ul>${planTerms(plan, catalog).map((term) => html`<li>${term}</li>`)}</ul>
<p><a class="button secondary" href="/account/plan/change?subscription=${encodeURIComponent(subscription.id)}&amp;to=${encodeURIComponent(plan.id)}">See the cost of changing</a></p></li>`,
  )}</ul>
</section>`;
})}`;
    return this.render(viewer, 'plan', 'Your plan', body);
  }

  /** The subscription and target plan a change form names, checked: the customer's, active, a public plan of its product. */
  private async changeTarget(customerId: string, subscriptionId: string, planId: string): Promise<{ subscription: Subscription; plan: Plan }> {
    const subscription = (await this.activeSubscriptions(customerId)).find((candidate) => candidate.id === subscriptionId);
    if (!subscription) throw new PortalError(404, 'No such active subscription.');
    const plan = this.deps.catalog().plan(planId);
    if (!plan?.public || plan.product !== subscription.productId) throw new PortalError(404, 'No such plan to change to.');
    if (plan.id === subscription.planId) throw new PortalError(409, `You are on the ${plan.name} plan already.`);
    return { subscription, plan };
  }

  private async preview(subscription: Subscription, planId: string, at: number): Promise<PlanChangePreview> {
    const history = await this.deps.histories.history(subscription.id);
    if (!history) throw new PortalError(404, 'No such subscription.');
    try {
      const preview = previewPlanChange(history, planId, at, catalogPricing(this.deps.catalog(), subscription.productId));
      if (!preview) throw new PortalError(409, 'Neither plan is priced here.');
      return preview;
    } catch (error) {
      if (error instanceof TollgateError && error.code === 'invalid_request') throw new PortalError(409, `This change cannot be made here: ${error.message}.`);
      throw error;
    }
  }

  private async previewChange(customerId: string, viewer: Viewer, request: PortalRequest, notes?: Html, status = 200): Promise<PortalReply> {
    const source = request.method === 'POST' ? request.form : request.query;
    const { subscription, plan } = await this.changeTarget(customerId, source.get('subscription') ?? '', source.get('to') ?? '');
    const preview = await this.preview(subscription, plan.id, this.deps.clock.now());
    const wallet = (await this.deps.wallets.summaries(customerId)).find((summary) => summary.currency === preview.currency);
    const short = preview.paidFrom === 'wallet' && preview.total > (wallet?.balance ?? 0n);
    const body = html`${notes ?? ''}
<p>From <strong>${this.planName(preview.fromPlanId)}</strong> to <strong>${plan.name}</strong>, starting now. Fees for the rest of the period (to ${day(preview.period.end)}) are prorated.</p>
<div class="table-scroll"><table><caption>What the change bills</caption>
<thead><tr><th scope="col">Description</th><th scope="col" class="amount">Amount</th></tr></thead>
<tbody>${preview.lines.length === 0 ? html`<tr><td>No fee changes</td><td class="amount">${money(0n, preview.currency)}</td></tr>` : preview.lines.map((line) => html`<tr><td>${line.description}</td><td class="amount">${money(line.amount, preview.currency)}</td></tr>`)}</tbody>
<tfoot><tr><th scope="row">${preview.total < 0n ? 'Credit' : 'Total'}</th><td class="amount"><strong id="change-total">${money(preview.total, preview.currency)}</strong></td></tr></tfoot>
</table></div>
<p>${preview.paidFrom === 'wallet'
  ? html`Paid now from your wallet${wallet ? html` (balance ${money(wallet.balance, wallet.currency)})` : ''}.`
  : html`Added to this period's invoice, with usage billed at the new plan's prices.`}</p>
${short ? notice('error', html`Your wallet does not hold ${money(preview.total, preview.currency)}. <a href="/account/wallet">Top it up</a> first.`) : ''}
<form method="post" action="/account/plan/change">
${csrfField(viewer)}
<input type="hidden" name="subscription" value="${subscription.id}">
<input type="hidden" name="to" value="${plan.id}">
<input type="hidden" name="from" value="${preview.fromPlanId}">
<input type="hidden" name="total" value="${formatMajor(preview.total, preview.currency)}">
<p><button type="submit">Confirm: change to ${plan.name}</button> <a href="/account/plan">Cancel</a></p>
</form>`;
    return this.render(viewer, 'plan', `Change to ${plan.name}`, body, status);
  }

  /**
   * Confirms a previewed change: rated again now, it goes through only if it bills what the customer saw (a
   * period boundary or another change in between shows the new figures instead), at the very instant it was rated.
   */
  private async changePlan(customerId: string, viewer: Viewer, request: PortalRequest): Promise<PortalReply> {
    const { subscription, plan } = await this.changeTarget(customerId, request.form.get('subscription') ?? '', request.form.get('to') ?? '');
    const at = this.deps.clock.now();
    const preview = await this.preview(subscription, plan.id, at);
    const shown = request.form.get('total');
    if (request.form.get('from') !== preview.fromPlanId || shown !== formatMajor(preview.total, preview.currency)) {
      return this.previewChange(customerId, viewer, request, notice('error', 'The amount changed since the page was shown. Here are the figures now.'), 409);
    }
    try {
      await this.deps.accounts.changePlan(subscription.id, plan.id, { at, fromPlanId: preview.fromPlanId });
    } catch (error) {
      if (error instanceof TollgateError && error.code === 'insufficient_funds') {
        return this.previewChange(customerId, viewer, request, notice('error', html`Your wallet cannot pay for this change yet. <a href="/account/wallet">Top it up</a>, then confirm again.`), 402);
      }
      if (error instanceof TollgateError && error.code === 'conflict') {
        return this.previewChange(customerId, viewer, request, notice('error', 'Your plan changed meanwhile. Here are the figures now.'), 409);
      }
      throw error;
    }
    this.deps.logger.info({ customerId, subscriptionId: subscription.id, from: preview.fromPlanId, to: plan.id }, 'portal plan change');
    return { status: 303, location: `/account/plan?changed=${encodeURIComponent(plan.id)}` };
  }

  private async keys(customerId: string, viewer: Viewer, shown?: Html, status = 200): Promise<PortalReply> {
    const keys = await this.deps.accounts.listKeys(customerId);
    const subscriptions = await this.activeSubscriptions(customerId);
    const body = html`${shown ?? ''}
<h2>Your keys</h2>
${keys.length === 0
  ? html`<p>No keys yet.</p>`
  : html`<div class="table-scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Starts with</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
<tbody>${keys.map(
      (key) => html`<tr><th scope="row">${key.name ?? '(no name)'}</th><td><code>${key.prefix}…</code></td><td>${key.status === 'pending' ? 'Awaiting approval' : key.status === 'revoked' ? `Revoked ${key.revokedAt?.slice(0, 10) ?? ''}` : 'Active'}</td><td>${key.createdAt.slice(0, 10)}</td>
<td>${key.status === 'revoked'
        ? ''
        : html`<div class="row-actions"><form method="post" action="/account/keys/${encodeURIComponent(key.id)}/rotate">${csrfField(viewer)}<button type="submit" class="secondary" aria-label="Rotate key ${key.name ?? key.prefix}">Rotate</button></form>
<form method="post" action="/account/keys/${encodeURIComponent(key.id)}/revoke">${csrfField(viewer)}<button type="submit" class="danger" aria-label="Revoke key ${key.name ?? key.prefix}">Revoke</button></form></div>`}</td></tr>`,
    )}</tbody></table></div>`}
<p class="hint">Rotating revokes a key and gives you a new one with the same name, at once: update your clients first.</p>
${subscriptions.length === 0
  ? ''
  : html`<h2 id="new-key-heading">New key</h2>
<form method="post" action="/account/keys" aria-labelledby="new-key-heading">
${csrfField(viewer)}
<label for="key-name">Name</label>
<input id="key-name" name="name" maxlength="100" required placeholder="production server">
${subscriptions.length === 1
  ? html`<input type="hidden" name="subscription" value="${subscriptions[0]!.id}">`
  : html`<label for="key-subscription">Plan</label><select id="key-subscription" name="subscription">${subscriptions.map((subscription) => html`<option value="${subscription.id}">${this.planName(subscription.planId)}</option>`)}</select>`}
<p><button type="submit">Create key</button></p>
</form>`}`;
    return this.render(viewer, 'keys', 'API keys', body, status);
  }

  private async createKey(customerId: string, viewer: Viewer, request: PortalRequest): Promise<PortalReply> {
    const name = (request.form.get('name') ?? '').trim();
    if (name.length === 0 || name.length > 100) return this.keys(customerId, viewer, notice('error', 'Name the key (1 to 100 characters).'), 400);
    const subscription = (await this.activeSubscriptions(customerId)).find((candidate) => candidate.id === request.form.get('subscription'));
    if (!subscription) throw new PortalError(404, 'No such active subscription.');
    try {
      const created = await this.deps.accounts.createKey({ customerId, subscriptionId: subscription.id, name });
      return this.keys(customerId, viewer, this.keyShownOnce(created.key, created.apiKey, subscription.planId), 201);
    } catch (error) {
      if (error instanceof TollgateError && error.code === 'forbidden') return this.keys(customerId, viewer, notice('error', `${error.message}: revoke one first.`), 403);
      throw error;
    }
  }

  private async changeKey(customerId: string, viewer: Viewer, keyId: string, action: 'revoke' | 'rotate'): Promise<PortalReply> {
    const key = (await this.deps.accounts.listKeys(customerId)).find((candidate) => candidate.id === keyId);
    if (!key || key.status === 'revoked') throw new PortalError(404, 'No such active key.');
    if (action === 'revoke') {
      await this.deps.accounts.revokeKey(key.id);
      return this.keys(customerId, viewer, notice('ok', `Key ${key.name ?? key.prefix} is revoked: calls with it are refused within a second.`));
    }
    // In one transaction: the new key takes the old one's place even on a plan at its key limit.
    const created = await this.deps.accounts.inTransaction(async (accounts) => {
      await accounts.revokeKey(key.id);
      return accounts.createKey({ customerId, subscriptionId: key.subscriptionId, name: key.name ?? undefined });
    });
    const { planId } = await this.deps.accounts.getSubscription(key.subscriptionId);
    return this.keys(customerId, viewer, html`${notice('ok', `Key ${key.name ?? key.prefix} is revoked and replaced.`)}${this.keyShownOnce(created.key, created.apiKey, planId)}`, 201);
  }

  private async alertSettings(customerId: string, viewer: Viewer, shown?: Html, status = 200): Promise<PortalReply> {
    const webhook = await this.deps.alerts.webhooks.get(customerId).catch((error: unknown) => {
      if (error instanceof TollgateError && error.code === 'not_found') return undefined;
      throw error;
    });
    const recent = await this.deps.alerts.list(customerId, 20);
    const body = html`${shown ?? ''}
<p>Usage alerts tell your systems, by a signed POST, when you near your quota, your spend passes a mark or your wallet runs low. Each threshold fires once per billing period.</p>
<h2 id="webhook-heading">Webhook</h2>
${webhook ? html`<p>Alerts go to <code>${webhook.url}</code>, signed with the secret starting <code>${webhook.secretPrefix}…</code>.</p>` : html`<p>No webhook set: alerts are recorded below but not sent.</p>`}
<form method="post" action="/account/alerts" aria-labelledby="webhook-heading">
${csrfField(viewer)}
<label for="webhook-url">${webhook ? 'New URL (a new signing secret is made)' : 'URL'}</label>
<input id="webhook-url" name="url" type="url" required maxlength="2000" placeholder="https://example.com/hooks/usage" aria-describedby="webhook-hint">
<p class="hint" id="webhook-hint">A public https address. Verify each delivery's signature with the secret shown once after saving.</p>
<p><button type="submit">Save webhook</button></p>
</form>
${webhook ? html`<form method="post" action="/account/alerts/remove">${csrfField(viewer)}<button type="submit" class="danger">Remove webhook</button></form>` : ''}
<h2>Recent alerts</h2>
${recent.length === 0
  ? html`<p>No alerts so far.</p>`
  : html`<div class="table-scroll"><table><thead><tr><th scope="col">When</th><th scope="col">Alert</th><th scope="col">Delivery</th></tr></thead>
<tbody>${recent.map(({ event, delivery }) => html`<tr><td>${event.created_at.slice(0, 16).replace('T', ' ')}</td><td>${event.type.replaceAll('_', ' ')}: ${Object.entries(event.current).map(([name, value]) => `${name} ${value}`).join(', ')}</td><td>${delivery ? delivery.status : 'not sent'}</td></tr>`)}</tbody></table></div>`}`;
    return this.render(viewer, 'alerts', 'Usage alerts', body, status);
  }

  private async setWebhook(customerId: string, viewer: Viewer, request: PortalRequest): Promise<PortalReply> {
    const url = (request.form.get('url') ?? '').trim();
    const problem = url.length > 2000 ? 'must be at most 2000 characters' : webhookUrlProblem(url);
    if (problem) return this.alertSettings(customerId, viewer, notice('error', `The URL ${problem}.`), 400);
    const webhook = await this.deps.alerts.webhooks.set(customerId, url);
    return this.alertSettings(customerId, viewer, html`${notice('ok', 'Webhook saved. Copy its signing secret now: it is shown this once.')}${secretBlock('webhook-secret', 'Signing secret', webhook.secret)}`);
  }

  private async removeWebhook(customerId: string): Promise<PortalReply> {
    await this.deps.alerts.webhooks.remove(customerId).catch((error: unknown) => {
      if (!(error instanceof TollgateError && error.code === 'not_found')) throw error;
    });
    return { status: 303, location: '/account/alerts' };
  }
}

/** The endpoint of a first call: a GET the plan allows without path parameters, if there is one. */
export function firstCallEndpoint(catalog: Catalog, plan: Plan): { method: string; path: string } | undefined {
  const endpoints = (catalog.products.get(plan.product)?.endpoints ?? []).filter((endpoint) => plan.allowedEndpoints.has(endpoint.id));
  const simple = (endpoint: (typeof endpoints)[number]) => !/[:*]/.test(endpoint.path);
  const chosen = endpoints.find((endpoint) => simple(endpoint) && endpoint.method.includes('GET')) ?? endpoints.find(simple) ?? endpoints[0];
  if (!chosen) return undefined;
  const method = chosen.method.includes('GET') ? 'GET' : chosen.method.find((candidate) => candidate !== '*') ?? 'GET';
  return { method, path: chosen.path.replace(/\/\*$/, '/') };
}
