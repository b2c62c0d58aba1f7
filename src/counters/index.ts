/**
 * Counters for rate limits, quotas and wallets: window math, the CounterStore port, memory and Redis stores, failure
 * modes. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { MemoryCounterStore } from './memory.js';
export { RedisCounterStore } from './redis.js';
export { ResilientCounterStore } from './resilient.js';
export { CounterStoreUnavailable } from './store.js';
export type { ConsumeResult, CounterStore } from './store.js';
export { WALLET_MICROS_PER_MINOR_UNIT } from './window.js';
export type { Limit, LimitOutcome, WalletLimit } from './window.js';
