/**
 * The Db port, its PostgreSQL and PGlite adapters, migrations. Other modules import only this file (.dependency-
 * cruiser.cjs).
 */
export type { Db, Queryable } from './db.js';
export { domainErrorOf, StoreError, withDomainErrors } from './errors.js';
export { instrumentDb } from './instrumented.js';
export { createLeadership, DeposedLeaderError, type ReplicaLeadership } from './leadership.js';
export { joinedTransaction } from './joined-transaction.js';
export { openDatabase } from './open.js';
