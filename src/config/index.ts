/**
 * Environment variables to a typed configuration. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { loadConfig, minSigningKeyLength, roles } from './config.js';
export type { AlertsConfig, Config, EventsConfig, GrpcConfig, JwtSettings, NatsConfig, Role, StripeConfig } from './config.js';
export { parseAddressList } from './portal-settings.js';
export type { PortalSettings } from './portal-settings.js';
export { textOn } from './colour.js';
