/** The pricing page's figures, from the catalog's public plans and the quote. Pure. */
import type { Catalog, Plan } from '../catalog/index.js';
import { formatMoney, parseMajorAmount } from '../kernel/index.js';
import { quote } from '../rating/index.js';
import type { RatePlan } from '../rating/index.js';
import { html, type Html } from './html.js';

const durations: [number, string][] = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
];

export function windowName(ms: number): string {
  for (const [unit, name] of durations) {
    if (ms % unit === 0) return ms === unit ? name : `${ms / unit} ${name}s`;
  }
  return `${ms} ms`;
}

const fee = (amount: string | undefined, pricing: RatePlan) => (amount === undefined ? 0n : parseMajorAmount(amount, pricing.currency));

/** The headline price: the recurring fee, or how usage is priced when there is none. */
export function headlinePrice(plan: Plan): string {
  const pricing = plan.pricing;
  if (!pricing) return 'Free';
  const recurring = fee(pricing.recurring_fee, pricing);
  if (recurring > 0n) return `${formatMoney(recurring, pricing.currency)} a month`;
  if (pricing.usage || pricing.endpoint_prices) return 'Pay as you go';
  return 'Free';
}

/** The plan's terms, one line each. */
export function planTerms(plan: Plan, catalog: Catalog): string[] {
  const terms: string[] = [];
  const pricing = plan.pricing;
  if (pricing) {
    const setup = fee(pricing.setup_fee, pricing);
    if (setup > 0n) terms.push(`${formatMoney(setup, pricing.currency)} one-time setup fee`);
    const usage = pricing.usage;
    if (usage) {
      const included = usage.included_units > 0 ? `after ${usage.included_units.toLocaleString('en-US')} included units, ` : '';
      const price =
        usage.model === 'per_unit'
          ? `${usage.unit_price} ${pricing.currency} a unit`
          : usage.model === 'package'
            ? `${usage.package_price} ${pricing.currency} per ${usage.package_size.toLocaleString('en-US')} units`
            : `from ${usage.tiers[0]!.unit_price} ${pricing.currency} a unit (${usage.model} tiers)`;
      terms.push(`${included}${price}`);
    }
    const prices = Object.values(pricing.endpoint_prices ?? {});
    if (prices.length > 0) {
      const lowest = prices.reduce((low, price) => (Number.parseFloat(price) < Number.parseFloat(low) ? price : low));
      terms.push(`Calls from ${lowest} ${pricing.currency} each, by endpoint`);
    }
    for (const discount of pricing.discounts ?? []) terms.push(`${discount.percent}% off from ${discount.from_calls.toLocaleString('en-US')} calls a month`);
    if (pricing.mode === 'prepaid') terms.push('Prepaid: paid from your wallet as you go');
  }
  if (plan.quota) {
    const over = plan.quota.when_exhausted === 'allow_overage' ? ', then overage' : '';
    terms.push(`${plan.quota.units.toLocaleString('en-US')} units a month${over}`);
  }
  for (const limit of plan.rate_limits) terms.push(`${limit.requests.toLocaleString('en-US')} requests a ${windowName(limit.window)}`);
  const endpoints = catalog.products.get(plan.product)?.endpoints.length ?? 0;
  terms.push(plan.allowedEndpoints.size === endpoints ? 'Every endpoint' : `${plan.allowedEndpoints.size} of ${endpoints} endpoints`);
  if (plan.max_keys !== undefined) terms.push(`Up to ${plan.max_keys} API keys`);
  return terms;
}

export const publicPlans = (catalog: Catalog) => [...catalog.plans.values()].filter((plan) => plan.public);

/** The bill of a month with `calls` calls on each public priced plan, by the quote. */
export function estimates(catalog: Catalog, calls: number): Html {
  const rows = publicPlans(catalog).flatMap((plan) => {
    if (!plan.pricing) return [];
    const rating = quote(plan.pricing, { calls });
    const refused = plan.quota && plan.quota.when_exhausted !== 'allow_overage' && calls > plan.quota.units;
    return [
      html`<tr><th scope="row">${plan.name}</th><td class="amount">${formatMoney(rating.total, rating.currency)}</td><td>${
        refused ? `Calls past ${plan.quota!.units.toLocaleString('en-US')} units a month are refused` : rating.lines.map((line) => line.description).join('; ') || 'Nothing to pay'
      }</td></tr>`,
    ];
  });
  return html`<div id="estimates" class="table-scroll" aria-live="polite"><table>
<caption>Estimated bill for a month of ${calls.toLocaleString('en-US')} calls (one unit each)</caption>
<thead><tr><th scope="col">Plan</th><th scope="col" class="amount">Estimate</th><th scope="col">How</th></tr></thead>
<tbody>${rows}</tbody></table></div>`;
}
