/** Admin route for the business metrics of a calendar month. Money as exact decimal strings in major units. */
import { z } from 'zod';
import type { Catalog } from '../catalog/index.js';
import { type Clock, formatMajor } from '../kernel/index.js';
import type { BusinessMetrics, MetricsWindow } from '../reports/index.js';
import { route, type Route } from './router.js';

const rate = z.number().nullable().describe('numerator over denominator; null when the denominator is 0');
const money = z.string().describe('decimal amount in major units, e.g. "49.00"');

export function reportRoutes(deps: { businessMetrics: (catalog: Catalog, window: MetricsWindow, now: number) => Promise<BusinessMetrics>; catalog: () => Catalog; clock: Clock }): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/reports/business',
      operationId: 'getBusinessReport',
      summary: 'Business metrics of a calendar month (UTC; the current one by default, up to now): MRR, paying customers, churn, free-to-paid conversion, activation, time to first call, net revenue retention',
      tag: 'reports',
      auth: 'admin',
      query: z.object({ period: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month, YYYY-MM').optional() }).strict(),
      response: z.object({
        period: z.string(),
        from: z.string(),
        end: z.string().describe('where states "at the end" were read: the first instant of the next month, or now'),
        complete: z.boolean(),
        mrr: z.array(
          z.object({ currency: z.string(), mrr: money, byPlan: z.array(z.object({ planId: z.string(), subscriptions: z.number(), mrr: money })) }),
        ),
        payingCustomers: z.number(),
        churn: z.object({ payingAtStart: z.number(), churned: z.number(), rate }),
        freeToPaid: z.object({ startedFree: z.number(), converted: z.number(), convertedInPeriod: z.number(), rate }),
        activation: z.object({
          newCustomers: z.number(),
          activated: z.number(),
          rate,
          timeToFirstCall: z.object({ medianSeconds: z.number().nullable(), p90Seconds: z.number().nullable() }),
        }),
        netRevenueRetention: z.array(z.object({ currency: z.string(), startingMrr: money, retainedMrr: money, rate })),
      }),
      handle: async ({ query }) => {
        const now = deps.clock.now();
        const period = query.period ?? new Date(now).toISOString().slice(0, 7);
        const metrics = await deps.businessMetrics(deps.catalog(), monthWindow(period), now);
        return {
          status: 200,
          body: {
            period,
            from: new Date(metrics.from).toISOString(),
            end: new Date(metrics.end).toISOString(),
            complete: metrics.complete,
            mrr: metrics.mrr.map(({ currency, mrr, byPlan }) => ({
              currency,
              mrr: formatMajor(mrr, currency),
              byPlan: byPlan.map((plan) => ({ ...plan, mrr: formatMajor(plan.mrr, currency) })),
            })),
            payingCustomers: metrics.payingCustomers,
            churn: metrics.churn,
            freeToPaid: metrics.freeToPaid,
            activation: metrics.activation,
            netRevenueRetention: metrics.netRevenueRetention.map((retention) => ({
              ...retention,
              startingMrr: formatMajor(retention.startingMrr, retention.currency),
              retainedMrr: formatMajor(retention.retainedMrr, retention.currency),
            })),
          },
        };
      },
    }),
  ];
}

function monthWindow(month: string): MetricsWindow {
  const [year, monthNumber] = month.split('-').map(Number);
  return { from: Date.UTC(year!, monthNumber! - 1, 1), to: Date.UTC(year!, monthNumber!, 1) };
}
