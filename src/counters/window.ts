/**
 * Counter arithmetic shared by every CounterStore. The Redis Lua script (redis.ts) mirrors these functions
 * line for line, and the contract tests hold both to the same results.
 *
 * Rate limits use a sliding window counter: the previous fixed window's count, weighted by how much of it still
 * overlaps the sliding window, plus the current window's count. It cannot be burst across a window boundary the
 * way a fixed window can, and needs two integers per limit.
 * Quotas use a fixed window: the subscription's billing period.
 * Prepaid wallets are a balance mirrored from the ledger: a request's price is taken from it and added to the billing
 * period's spend counter, which settlement moves into the ledger. Wallet amounts are integers in micro-units of the
 * currency's minor unit (WALLET_MICROS_PER_MINOR_UNIT), so a $0.005 call is exactly 500,000.
 */

export interface SlidingLimit {
  kind: 'sliding';
  /** Counter name, unique within the scope. */
  name: string;
  limit: number;
  windowMs: number;
  cost: number;
}

export interface PeriodLimit {
  kind: 'period';
  name: string;
  limit: number;
  periodStart: number;
  periodEnd: number;
  cost: number;
  /** False for allow-overage quotas: counted, never denied. */
  enforce: boolean;
}

export interface WalletLimit {
  kind: 'wallet';
  /** The balance counter: one per scope and name, without a window or expiry. */
  name: string;
  /** The request's price, in wallet micro-units. */
  cost: number;
  /** The spend counter of the subscription's billing period, kept like a period counter. */
  spentName: string;
  periodStart: number;
  periodEnd: number;
}

export type Limit = SlidingLimit | PeriodLimit | WalletLimit;

/** Wallet amounts are micro-units of the minor unit; doubles keep them exact up to 2^53 (about $90M in cents). */
export const WALLET_MICROS_PER_MINOR_UNIT = 1_000_000;

/** Sets a wallet's balance from the ledger: the ledger balance less the spend its counters hold beyond what was settled. */
export interface WalletRebase {
  name: string;
  /** Ledger balance, in wallet micro-units. */
  ledgerBalance: number;
  unsettled: { spentName: string; periodStart: number; settled: number }[];
}

export interface LimitOutcome {
  name: string;
  allowed: boolean;
  limit: number;
  /** Units left after this request (0 when denied). */
  remaining: number;
  /** Milliseconds until the counter is fully replenished. */
  resetMs: number;
  /** Milliseconds until this request could succeed if retried unchanged; 0 when allowed. */
  retryAfterMs: number;
}

export interface SlidingState {
  previous: number;
  current: number;
}

export function slidingWindowIndex(now: number, windowMs: number): number {
  return Math.floor(now / windowMs);
}

export function evaluateSliding(limit: SlidingLimit, state: SlidingState, now: number): LimitOutcome {
  const w = limit.windowMs;
  const elapsed = now - slidingWindowIndex(now, w) * w;
  const estimated = (state.previous * (w - elapsed)) / w + state.current;
  const allowed = estimated + limit.cost <= limit.limit;
  const remaining = allowed ? Math.max(0, Math.floor(limit.limit - estimated - limit.cost)) : 0;
  return {
    name: limit.name,
    allowed,
    limit: limit.limit,
    remaining,
    resetMs: slidingResetMs(state, allowed ? limit.cost : 0, w, elapsed),
    retryAfterMs: allowed ? 0 : slidingRetryAfter(limit, state, elapsed),
  };
}

/** Until the sliding window holds no counted request at all. */
function slidingResetMs(state: SlidingState, added: number, w: number, elapsed: number): number {
  if (state.current + added > 0) return 2 * w - elapsed;
  return state.previous > 0 ? w - elapsed : 0;
}

/** The earliest wait after which the same request fits, assuming no other traffic. */
function slidingRetryAfter(limit: SlidingLimit, state: SlidingState, elapsed: number): number {
  const w = limit.windowMs;
  if (limit.cost > limit.limit) return 2 * w - elapsed;
  const roomThisWindow = limit.limit - state.current - limit.cost;
  if (roomThisWindow >= 0 && state.previous > 0) {
    // prev * (w - elapsed - t) / w <= room
    return Math.max(1, Math.ceil(w - elapsed - (roomThisWindow * w) / state.previous));
  }
  // Wait into the next window, where the current count becomes the weighted previous one.
  const untilNext = w - elapsed;
  const roomNextWindow = limit.limit - limit.cost;
  const intoNext = state.current > 0 ? Math.max(0, w - (roomNextWindow * w) / state.current) : 0;
  return Math.max(1, Math.ceil(untilNext + intoNext));
}

export function evaluatePeriod(limit: PeriodLimit, used: number, now: number): LimitOutcome {
  const fits = used + limit.cost <= limit.limit;
  const allowed = fits || !limit.enforce;
  const untilEnd = Math.max(0, limit.periodEnd - now);
  return {
    name: limit.name,
    allowed,
    limit: limit.limit,
    remaining: allowed ? Math.max(0, limit.limit - used - limit.cost) : Math.max(0, limit.limit - used),
    resetMs: untilEnd,
    retryAfterMs: allowed ? 0 : untilEnd,
  };
}

/** A wallet allows a request it can pay for; an exhausted wallet (nothing left) blocks every request, free ones too. */
export function evaluateWallet(limit: WalletLimit, balance: number): LimitOutcome {
  const allowed = balance > 0 && limit.cost <= balance;
  return {
    name: limit.name,
    allowed,
    // For a wallet, `limit` is the balance before the request.
    limit: Math.max(0, balance),
    remaining: allowed ? balance - limit.cost : Math.max(0, balance),
    resetMs: 0,
    retryAfterMs: 0,
  };
}

export function rebasedWalletBalance(rebase: WalletRebase, spent: readonly number[]): number {
  return rebase.unsettled.reduce((balance, counter, i) => balance - Math.max(0, spent[i]! - counter.settled), rebase.ledgerBalance);
}

/** How long a sliding counter must live: its own window plus the one that weighs it. */
export const slidingTtlMs = (windowMs: number) => 2 * windowMs;

/** Period counters outlive their period by a day so usage can be reconciled after it closes. */
export const periodTtlMs = (limit: { periodEnd: number }, now: number) => Math.max(0, limit.periodEnd - now) + 86_400_000;
