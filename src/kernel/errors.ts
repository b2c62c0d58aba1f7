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

/** A failure the caller can act on: carries a code, a message and, for bad input, the offending field. */
export class TollgateError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'TollgateError';
  }
}

export const notFound = (what: string, id: string) => new TollgateError('not_found', `${what} ${id} not found`);
export const invalid = (field: string, message: string) => new TollgateError('invalid_request', message, field);
export const conflict = (message: string, field?: string) => new TollgateError('conflict', message, field);
