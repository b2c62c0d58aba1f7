import { type ErrorCode, TollgateError } from '../kernel/index.js';
import type { Db, Queryable } from './db.js';

/**
 * A database failure told in domain terms (a conflict, bad input, the database unreachable); `cause` keeps the
 * driver's error for logs. Callers above the repositories see only these codes, never SQLSTATEs.
 */
export class StoreError extends TollgateError {
  constructor(code: ErrorCode, message: string, cause: unknown, retryAfterSeconds?: number) {
    super(code, message, undefined, { cause, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) });
    this.name = 'StoreError';
    // Logs print the stack: the driver's own words (the constraint, the connection) stay in it.
    if (cause instanceof Error) this.stack = `${this.stack}\nCaused by: ${cause.stack ?? cause.message}`;
  }
}

/** The failure a database error means to its caller, or undefined when it is a defect (bad SQL), which stays as it is. */
export function domainErrorOf(error: unknown): TollgateError | undefined {
  if (error instanceof TollgateError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  switch (code) {
    case '23505':
      // A unique constraint (e.g. an OAuth client registered twice) raced past the service's own checks.
      return new StoreError('conflict', 'that record already exists', error);
    case '22021':
    case '22P05':
      // A NUL byte (or a character the database's encoding lacks) in a value.
      return new StoreError('invalid_request', 'a value holds a character the database cannot store (e.g. a NUL byte)', error);
    case '23001':
      // restrict_violation: a database rule refused the write (an erased customer, a finalized invoice); its message says which.
      return new StoreError('conflict', (error as Error).message, error);
  }
  if (isConnectionFailure(error)) {
    return new StoreError('unavailable', 'the database is unavailable; retry shortly', error, 1);
  }
  return undefined;
}

/** Connection-level failures (refused, reset, timed out, server shutting down) rather than bad SQL or bad data. */
function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && (/^E[A-Z]+$/.test(code) || code.startsWith('08') || code.startsWith('57P'))) return true;
  return error instanceof Error && /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect/i.test(error.message);
}

async function translated<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw domainErrorOf(error) ?? error;
  }
}

const translatedQueryable = (queryable: Queryable): Queryable => ({
  query: <Row>(sql: string, params?: unknown[]) => translated(() => queryable.query<Row>(sql, params)),
});

/**
 * The same Db, its failures told as domain errors (`domainErrorOf`). Repositories and the services built on them run
 * over this; the raw Db stays for code that must read SQLSTATEs itself (the usage sink's duplicate detection).
 */
export function withDomainErrors(db: Db): Db {
  return {
    kind: db.kind,
    query: <Row>(sql: string, params?: unknown[]) => translated(() => db.query<Row>(sql, params)),
    transaction: (fn) => translated(() => db.transaction((tx) => fn(translatedQueryable(tx)))),
    withAdvisoryLock: (lockId, fn) => translated(() => db.withAdvisoryLock(lockId, (tx) => fn(translatedQueryable(tx)))),
    close: () => db.close(),
  };
}
