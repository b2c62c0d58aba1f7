// Stripe's error responses: `{ error: { type, code, message, param, doc_url } }` with Stripe's HTTP statuses, which
// is what the `stripe` package maps to its typed errors (StripeInvalidRequestError, StripeIdempotencyError, ...).

export type StripeErrorType = 'api_error' | 'card_error' | 'idempotency_error' | 'invalid_request_error';

export interface StripeErrorBody {
  error: {
    type: StripeErrorType;
    message: string;
    code?: string;
    param?: string;
    decline_code?: string;
    doc_url?: string;
    payment_intent?: object;
  };
}

interface ErrorDetails {
  code?: string;
  param?: string;
  declineCode?: string;
  /** The PaymentIntent of a declined payment, which Stripe includes in the error. */
  paymentIntent?: object;
  /** Sent as `Stripe-Should-Retry`, which the `stripe` package obeys before its own retry rules. */
  shouldRetry?: boolean;
  /** Stripe saves an idempotent request's result only once the endpoint began executing; parameter validation
   * failures happen before that, so a retry with the same key runs again instead of replaying the error. */
  beforeExecution?: boolean;
}

export class StripeApiError extends Error {
  readonly code: string | undefined;
  readonly param: string | undefined;
  readonly declineCode: string | undefined;
  readonly paymentIntent: object | undefined;
  readonly shouldRetry: boolean | undefined;
  readonly beforeExecution: boolean;

  constructor(
    readonly status: number,
    readonly type: StripeErrorType,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(message);
    this.code = details.code;
    this.param = details.param;
    this.declineCode = details.declineCode;
    this.paymentIntent = details.paymentIntent;
    this.shouldRetry = details.shouldRetry;
    this.beforeExecution = details.beforeExecution ?? false;
  }

  toBody(): StripeErrorBody {
    return {
      error: {
        type: this.type,
        message: this.message,
        ...(this.code && {
          code: this.code,
          doc_url: `https://stripe.com/docs/error-codes/${this.code.replaceAll('_', '-')}`,
        }),
        ...(this.param && { param: this.param }),
        ...(this.declineCode && { decline_code: this.declineCode }),
        ...(this.paymentIntent && { payment_intent: this.paymentIntent }),
      },
    };
  }
}

export function invalidRequest(message: string, details: ErrorDetails = {}): StripeApiError {
  return new StripeApiError(400, 'invalid_request_error', message, details);
}

/** A parameter failed validation: rejected before the endpoint runs. */
export function invalidParam(param: string, message: string, code?: string): StripeApiError {
  return invalidRequest(message, { param, code, beforeExecution: true });
}

/** Two or more of `names` were sent where only one may be; `param` is the one reported. */
export function exclusiveParams(param: string, names: readonly string[]): StripeApiError {
  return invalidParam(param, `You may only specify one of these parameters: ${names.join(', ')}.`, 'parameters_exclusive');
}

export function missingParam(param: string): StripeApiError {
  return invalidParam(param, `Missing required param: ${param}.`, 'parameter_missing');
}

/** `No such customer: 'cus_x'`: 404 when the id is in the URL, 400 when it is a parameter of the request. */
export function noSuchResource(resource: string, id: string, param = 'id'): StripeApiError {
  return new StripeApiError(param === 'id' ? 404 : 400, 'invalid_request_error', `No such ${resource}: '${id}'`, {
    code: 'resource_missing',
    param,
  });
}
