/**
 * Who is calling: customers, subscriptions, API keys (stored as hashes), JWT credentials, the identity cache the Check
 * reads. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { IdentityCache } from './identity-cache.js';
export type { CustomerState, Identity, KeyState, SubscriptionState } from './types.js';
export type { Identities } from './identities.js';
export { identityKeys } from './identity-records.js';
export { IdentityPublisher } from './identity-publisher.js';
export { IdentityUnavailable, OnDemandIdentities } from './on-demand-identities.js';
export type { OnDemandSettings } from './on-demand-identities.js';
export { SqlIdentityRows } from './sql-identity-rows.js';
export { startIdentities } from './start.js';
export type { StartedIdentities } from './start.js';
export { JwtVerifier, looksLikeJwt } from './jwt.js';
export { hashApiKey, isApiKey, newId, oauthClientCredential } from './keys.js';
export { AccountsService } from './service.js';
export type { SubscriptionChange, SubscriptionHooks } from './service.js';
export type { AccountRecords, CustomerChanges, NewCustomer, NewKey, NewSubscription, NewSubscriptionChange } from './records.js';
export { SqlAccountRecords } from './sql-records.js';
export type { Subscription } from './types.js';
export type { ApiKey } from './types.js';
export { paymentSuspensionPrefix } from './types.js';
