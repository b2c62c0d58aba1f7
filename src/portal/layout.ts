/** The page shell: landmarks, the brand, navigation, and helpers shared by every page. Pure. */
import { formatMoney, type CurrencyCode } from '../kernel/index.js';
import { html, type Html } from './html.js';
import type { PortalSettings } from '../config/index.js';

export interface Viewer {
  /** The signed-in customer, if any. */
  customerId: string | undefined;
  /** The CSRF token the page's forms carry. */
  csrf: string;
  /** Signed in through the identity proxy: signing out is the proxy's. */
  viaProxy: boolean;
}

export type Section = 'pricing' | 'sign-up' | 'sign-in' | 'overview' | 'invoices' | 'wallet' | 'plan' | 'keys' | 'alerts';

const accountLinks: [Section, string, string][] = [
  ['overview', '/account', 'Usage'],
  ['invoices', '/account/invoices', 'Invoices'],
  ['wallet', '/account/wallet', 'Wallet'],
  ['plan', '/account/plan', 'Plan'],
  ['keys', '/account/keys', 'API keys'],
  ['alerts', '/account/alerts', 'Alerts'],
];

/** `section`: the navigation entry marked current; none on error pages. */
export function page(settings: PortalSettings, viewer: Viewer, section: Section | undefined, title: string, body: Html): string {
  const { brand } = settings;
  const current = (name: Section) => (name === section ? html` aria-current="page"` : '');
  const links: [Section, string, string][] = viewer.customerId
    ? [['pricing', '/pricing', 'Pricing'], ...accountLinks]
    : [
        ['pricing', '/pricing', 'Pricing'],
        ...(settings.signUp.open ? [['sign-up', '/sign-up', 'Sign up'] as [Section, string, string]] : []),
        ['sign-in', '/sign-in', 'Sign in'],
      ];
  const signOut = !viewer.customerId
    ? ''
    : viewer.viaProxy
      ? settings.signOutUrl && html`<li><a href="${settings.signOutUrl}">Sign out</a></li>`
      : html`<li><form method="post" action="/sign-out"><input type="hidden" name="csrf" value="${viewer.csrf}"><button type="submit" class="secondary">Sign out</button></form></li>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ${brand.name}</title>
<link rel="stylesheet" href="/assets/portal.css">
<script src="/assets/portal.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site"><div class="bar">
<a class="brand" href="${viewer.customerId ? '/account' : '/pricing'}">${brand.logoUrl ? html`<img src="${brand.logoUrl}" alt="">` : ''}<span>${brand.name}</span></a>
<nav aria-label="Main"><ul>${links.map(([name, href, label]) => html`<li><a href="${href}"${current(name)}>${label}</a></li>`)}${signOut}</ul></nav>
</div></header>
<main id="main" tabindex="-1">
<h1>${title}</h1>
${body}
</main>
<footer class="site"><p>${brand.name} · API access, usage and billing</p></footer>
</body>
</html>
`.text;
}

export const money = (amount: bigint, currency: CurrencyCode) => formatMoney(amount, currency);

export const day = (epochMs: number) => new Date(epochMs).toISOString().slice(0, 10);

export const csrfField = (viewer: Viewer) => html`<input type="hidden" name="csrf" value="${viewer.csrf}">`;

export function notice(kind: 'info' | 'error' | 'ok', message: Html | string): Html {
  return html`<div class="notice${kind === 'info' ? '' : ` ${kind}`}" role="${kind === 'error' ? 'alert' : 'status'}">${message}</div>`;
}

/** A secret shown once, with a copy button that appears when scripts run. */
export function secretBlock(id: string, label: string, secret: string): Html {
  return html`<p><strong>${label}</strong></p>
<p class="secret" id="${id}">${secret}</p>
<p><button type="button" class="secondary" data-copy="${id}" hidden>Copy</button></p>`;
}
