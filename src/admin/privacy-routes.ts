/** Admin routes for a customer's data rights: export everything held about them, and erase them. */
import { z } from 'zod';
import type { Clock } from '../kernel/index.js';
import type { CustomerErasure, CustomerExport } from '../privacy/index.js';
import { route, type Route } from './router.js';

export function privacyRoutes(deps: { exportCustomer: (customerId: string, now: number) => Promise<CustomerExport>; erasure: CustomerErasure; clock: Clock }): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/customers/:id/export',
      operationId: 'exportCustomer',
      summary: 'Everything held about a customer, row by row from every table (API key hashes and alert signing secrets left out)',
      tag: 'privacy',
      auth: 'admin',
      response: z.object({
        customerId: z.string(),
        exportedAt: z.string(),
        omitted: z.record(z.string(), z.array(z.string())),
        tables: z.record(z.string(), z.array(z.record(z.string(), z.unknown()))),
      }),
      handle: async ({ params }) => ({ status: 200, body: await deps.exportCustomer(params.id!, deps.clock.now()) }),
    }),
    route({
      method: 'POST',
      path: '/v1/customers/:id/erase',
      operationId: 'eraseCustomer',
      summary:
        'Erase a customer: subscriptions canceled, keys destroyed (the Check denies within a second), personal fields and per-request usage deleted; invoices, rollups and the ledger kept. Irreversible; repeating it sweeps usage that arrived since',
      tag: 'privacy',
      auth: 'admin',
      response: z.object({
        customerId: z.string(),
        erasedAt: z.string(),
        subscriptionsCanceled: z.number(),
        keysDestroyed: z.number(),
        usageEventsDeleted: z.number(),
        kept: z.object({ invoices: z.number(), usageRollups: z.number(), walletEntries: z.number() }),
      }),
      handle: async ({ params }) => ({ status: 200, body: await deps.erasure.erase(params.id!) }),
    }),
  ];
}
