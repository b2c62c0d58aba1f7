// Stripe's idempotency layer for POST requests: the first response for a key is saved and replayed for the same
// endpoint and parameters; other uses of the key are errors; a key whose request is still running gets a 409.
import { StripeApiError, invalidRequest } from './errors.js';

/** A response as sent, minus the headers every response gets (`Request-Id`, `Stripe-Version`, ...). */
export interface SavedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The request that produced it, sent back as `Original-Request` on replays. */
  requestId: string;
}

export interface Execution {
  response: SavedResponse;
  /** Whether the endpoint began executing, the condition for Stripe to save the result. */
  saved: boolean;
}

interface Entry {
  endpoint: string;
  fingerprint: string;
  createdAt: number;
  /** Undefined while the first request with the key is still running. */
  response: SavedResponse | undefined;
}

/** Stripe may prune keys once they are 24 hours old; reusing a pruned key runs a new request. */
const KEY_LIFETIME_MS = 24 * 60 * 60 * 1000;
const MAX_KEY_LENGTH = 255;

export class IdempotencyLayer {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number) {}

  /** Runs `execute` for a new key, or replays the response saved for it. Keys are scoped by `account` (the API key),
   * like Stripe scopes them per account. */
  async run(
    account: string,
    key: string,
    endpoint: string,
    fingerprint: string,
    execute: () => Promise<Execution>,
  ): Promise<{ response: SavedResponse; replayed: boolean }> {
    if (key.length > MAX_KEY_LENGTH) {
      throw invalidRequest(`Idempotency keys can be at most ${MAX_KEY_LENGTH} characters long.`);
    }
    const scopedKey = `${account}\u0000${key}`;
    const existing = this.entries.get(scopedKey);
    if (existing && this.now() - existing.createdAt < KEY_LIFETIME_MS) {
      return { response: this.replay(existing, key, endpoint, fingerprint), replayed: true };
    }
    const entry: Entry = { endpoint, fingerprint, createdAt: this.now(), response: undefined };
    this.entries.set(scopedKey, entry);
    try {
      const { response, saved } = await execute();
      if (saved) entry.response = response;
      else this.entries.delete(scopedKey);
      return { response, replayed: false };
    } catch (error) {
      this.entries.delete(scopedKey);
      throw error;
    }
  }

  private replay(entry: Entry, key: string, endpoint: string, fingerprint: string): SavedResponse {
    if (entry.response === undefined) {
      throw new StripeApiError(
        409,
        'idempotency_error',
        `There is currently another in-progress request using this Idempotent Key (that probably means you ` +
          `submitted twice, and the other request is still going through): ${key}. Please try again later.`,
        { code: 'idempotency_key_in_use' },
      );
    }
    if (entry.endpoint !== endpoint) {
      throw new StripeApiError(
        400,
        'idempotency_error',
        `Keys for idempotent requests can only be used for the same endpoint they were first used for ` +
          `('${entry.endpoint}' vs '${endpoint}'). Try using a key other than '${key}' if you meant to execute a ` +
          'different request.',
      );
    }
    if (entry.fingerprint !== fingerprint) {
      throw new StripeApiError(
        400,
        'idempotency_error',
        'Keys for idempotent requests can only be used with the same parameters they were first used with. ' +
          `Try using a key other than '${key}' if you meant to execute a different request.`,
      );
    }
    return entry.response;
  }
}
