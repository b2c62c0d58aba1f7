/** The admin API's part of the portal: operator-issued sign-in links. */
import { z } from 'zod';
import { route, type Route } from '../admin/index.js';
import { TollgateError } from '../kernel/index.js';
import type { RunningPortal } from './server.js';

export function portalAdminRoutes(portal: () => Pick<RunningPortal, 'url' | 'auth'> | undefined, linkTtlMs: () => number): Route[] {
  return [
    route({
      method: 'POST',
      path: '/v1/customers/:id/portal-links',
      operationId: 'createPortalLink',
      summary: "A single-use sign-in link to the developer portal for the customer, short-lived (TOLLGATE_PORTAL_LINK_TTL_MS); send it to the customer's email yourself",
      tag: 'portal',
      auth: 'admin',
      successStatus: 201,
      response: z.object({
        customerId: z.string(),
        url: z.string().describe('the sign-in link: it holds a secret, so do not log it'),
        expiresAt: z.string(),
      }),
      handle: async ({ params }) => {
        const running = portal();
        if (!running) throw new TollgateError('conflict', 'the developer portal is off here (TOLLGATE_PORTAL_PORT)');
        const { token, expiresAt } = await running.auth.issueLink(params.id!, linkTtlMs());
        return {
          status: 201,
          body: { customerId: params.id!, url: `${running.url}/sign-in/link?token=${token}`, expiresAt: new Date(expiresAt).toISOString() },
        };
      },
    }),
  ];
}
