import type { Limit, LimitOutcome, WalletRebase } from './window.js';

export interface ConsumeRequest {
  /** Groups counters that must be checked together, e.g. a subscription; one Redis Cluster slot per scope. */
  scope: string;
  now: number;
  limits: readonly Limit[];
  /**
   * Names exactly this list of limits (their counter names, sizes and costs) for the life of the process, when the
   * caller has compiled it (check/check-plan.ts), passing the same `limits` array each time and never modifying it: the
   * Redis store then works out the set's shape once and names a set repeated within one batch once.
   */
  limitSetId?: string;
}

export interface ConsumeResult {
  /** True when every limit allowed; only then was anything counted. */
  allowed: boolean;
  /** One per limit, in the request's order: `outcomes[i]` answers `request.limits[i]`. */
  outcomes: LimitOutcome[];
}

/**
 * Where rate-limit and quota counters live. `consume` checks every limit of one request and, only if all allow,
 * adds each limit's cost, atomically. Implementations: memory (embedded default) and Redis (Lua, one round trip).
 */
export interface CounterStore {
  consume(request: ConsumeRequest): Promise<ConsumeResult>;
  /** Current usage of a period counter, for usage reports and reconciliation. */
  periodUsage(scope: string, name: string, periodStart: number): Promise<number>;
  /** Sets a wallet's balance (rebasedWalletBalance), atomically with respect to consume; returns it. */
  rebaseWallet(scope: string, rebase: WalletRebase): Promise<number>;
  /** A wallet's mirrored balance, undefined if it was never set (consume then treats it as 0). */
  walletBalance(scope: string, name: string): Promise<number | undefined>;
  /** False while the store is known to fail every call (disconnected, or not answering in time). */
  readonly available: boolean;
  close(): Promise<void>;
}

export class CounterStoreUnavailable extends Error {
  constructor(cause: unknown) {
    super(`counter store unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CounterStoreUnavailable';
  }
}

/** Counter keys: `{scope}` is a Redis Cluster hash tag, so all of one request's counters share a slot. */
export function counterKey(prefix: string, scope: string, name: string, window: number): string {
  return `${prefix}:{${scope}}:${name}:${window}`;
}

/** A wallet balance has no window. */
export function walletKey(prefix: string, scope: string, name: string): string {
  return `${prefix}:{${scope}}:${name}`;
}
