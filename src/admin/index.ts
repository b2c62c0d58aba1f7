/**
 * The admin API: its HTTP server and router (bodies validated, 400 naming the field, 413 by size), the routes per
 * area, OpenAPI. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { adminRoutes } from './admin-routes.js';
export { alertRoutes } from './alert-routes.js';
export { billingRoutes } from './billing-routes.js';
export { privacyRoutes } from './privacy-routes.js';
export { reportRoutes } from './report-routes.js';
export { drainHttpServer, startHttpServer } from './server.js';
export type { RunningHttpServer } from './server.js';
export { stripeRoutes } from './stripe-routes.js';
export { usageRoutes } from './usage-routes.js';
export { route } from './router.js';
export type { Route } from './router.js';
