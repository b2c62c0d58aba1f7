/** The developer portal: pages for the API's customers, on a port of its own. What other modules may use. */
export { portalAdminRoutes } from './admin-routes.js';
export { startPortal, type PortalServerDeps, type RunningPortal } from './server.js';
export type { PortalSignInRecords, SignInSecretRecord } from './sign-in-records.js';
export { SqlPortalSignInRecords } from './sql-sign-in-records.js';
