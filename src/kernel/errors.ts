/** Error codes shared by the admin API, the CLI and the domain services; each maps to one HTTP status. */
export const errorStatus = {
  invalid_request: 400,
  unauthorized: 401,
  insufficient_funds: 402,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  /** A service Tollgate depends on (Stripe) failed to answer. */
  bad_gateway: 502,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export interface TollgateErrorOptions {
  /** The lower-level failure this one explains (a driver's error, say); kept for logs, never shown to callers. */
  cause?: unknown;
  /** When the caller may try again (e.g. the database is briefly unreachable); sent as Retry-After. */
  retryAfterSeconds?: number;
}

/** A failure the caller can act on: carries a code, a message and, for bad input, the offending field. */
export class TollgateError extends Error {
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    options: TollgateErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TollgateError';
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const notFound = (what: string, id: string) => new TollgateError('not_found', `${what} ${id} not found`);
export const invalid = (field: string, message: string) => new TollgateError('invalid_request', message, field);
export const conflict = (message: string, field?: string) => new TollgateError('conflict', message, field);
