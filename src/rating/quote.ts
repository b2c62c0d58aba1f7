/** Pricing calculator: the bill a usage figure would produce over one whole period, with its breakdown. */
import { invalid } from '../kernel/index.js';
import { periodContaining } from './period.js';
import { ratePeriod, toCount, type Count, type Rating } from './rate.js';
import { OTHER_ENDPOINTS, type RatePlan } from './schema.js';

export interface QuoteUsage {
  /** Calls in the period; each counts as one unit of the plan's usage counter. */
  calls: Count;
  /** Calls per endpoint id, for endpoint prices; the calls not listed here are priced as calls to other endpoints. */
  per_endpoint?: Readonly<Record<string, Count>>;
  /** Quote a first period, which includes the one-time setup fee. */
  include_setup_fee?: boolean;
}

/** Any whole period rates the same, so the quote uses a fixed one (January 1970) to stay pure. */
const WHOLE_PERIOD = periodContaining(0, 0);

export function quote(plan: RatePlan, { calls, per_endpoint = {}, include_setup_fee = false }: QuoteUsage): Rating {
  const totalCalls = toCount(calls, 'calls');
  const listed = Object.entries(per_endpoint).filter(([endpointId]) => endpointId !== OTHER_ENDPOINTS);
  const listedCalls = listed.reduce(
    (sum, [endpointId, count]) => sum + toCount(count, `per_endpoint.${endpointId}`),
    0n,
  );
  if (listedCalls > totalCalls) {
    throw invalid('per_endpoint', `per-endpoint calls (${listedCalls}) exceed the total calls (${totalCalls})`);
  }
  return ratePeriod({
    plan,
    period: WHOLE_PERIOD,
    subscription: { first_period: include_setup_fee },
    usage: {
      units: totalCalls,
      calls_by_endpoint: { ...Object.fromEntries(listed), [OTHER_ENDPOINTS]: totalCalls - listedCalls },
    },
  });
}
