import type { Clock } from '../kernel/index.js';
import { counterKey, walletKey, type ConsumeRequest, type ConsumeResult, type CounterStore } from './store.js';
import {
  evaluatePeriod,
  evaluateSliding,
  evaluateWallet,
  periodTtlMs,
  rebasedWalletBalance,
  slidingTtlMs,
  slidingWindowIndex,
  type LimitOutcome,
  type WalletRebase,
} from './window.js';

interface Cell {
  value: number;
  expiresAt: number;
}

/** Process-local counters with the same semantics as the Redis store; the embedded default. */
export class MemoryCounterStore implements CounterStore {
  private readonly cells = new Map<string, Cell>();
  readonly available = true;

  constructor(
    private readonly clock: Clock,
    private readonly prefix = 'tg',
  ) {}

  async consume(request: ConsumeRequest): Promise<ConsumeResult> {
    const { scope, now } = request;
    const writes: { key: string; cost: number; ttlMs: number }[] = [];
    const outcomes: LimitOutcome[] = request.limits.map((limit) => {
      if (limit.kind === 'sliding') {
        const index = slidingWindowIndex(now, limit.windowMs);
        const currentKey = counterKey(this.prefix, scope, limit.name, index);
        const state = {
          previous: this.read(counterKey(this.prefix, scope, limit.name, index - 1), now),
          current: this.read(currentKey, now),
        };
        writes.push({ key: currentKey, cost: limit.cost, ttlMs: slidingTtlMs(limit.windowMs) });
        return evaluateSliding(limit, state, now);
      }
      if (limit.kind === 'wallet') {
        const balanceKey = walletKey(this.prefix, scope, limit.name);
        if (limit.cost > 0) {
          writes.push(
            { key: balanceKey, cost: -limit.cost, ttlMs: Infinity },
            { key: counterKey(this.prefix, scope, limit.spentName, limit.periodStart), cost: limit.cost, ttlMs: periodTtlMs(limit, now) },
          );
        }
        return evaluateWallet(limit, this.read(balanceKey, now));
      }
      const key = counterKey(this.prefix, scope, limit.name, limit.periodStart);
      writes.push({ key, cost: limit.cost, ttlMs: periodTtlMs(limit, now) });
      return evaluatePeriod(limit, this.read(key, now), now);
    });
    const allowed = outcomes.every((outcome) => outcome.allowed);
    if (allowed) for (const write of writes) this.add(write.key, write.cost, now + write.ttlMs, now);
    return { allowed, outcomes };
  }

  async periodUsage(scope: string, name: string, periodStart: number): Promise<number> {
    return this.read(counterKey(this.prefix, scope, name, periodStart), this.clock.now());
  }

  async rebaseWallet(scope: string, rebase: WalletRebase): Promise<number> {
    const now = this.clock.now();
    const spent = rebase.unsettled.map((counter) => this.read(counterKey(this.prefix, scope, counter.spentName, counter.periodStart), now));
    const balance = rebasedWalletBalance(rebase, spent);
    this.cells.set(walletKey(this.prefix, scope, rebase.name), { value: balance, expiresAt: Infinity });
    return balance;
  }

  async walletBalance(scope: string, name: string): Promise<number | undefined> {
    return this.cells.get(walletKey(this.prefix, scope, name))?.value;
  }

  /** Nothing to release: the sweep is a job of the scheduler's. */
  async close(): Promise<void> {}

  private read(key: string, now: number): number {
    const cell = this.cells.get(key);
    return cell && cell.expiresAt > now ? cell.value : 0;
  }

  private add(key: string, amount: number, expiresAt: number, now: number): void {
    const cell = this.cells.get(key);
    if (cell && cell.expiresAt > now) {
      // Like the Redis store: a counter's expiry is set when it is created, not refreshed by later writes.
      cell.value += amount;
    } else this.cells.set(key, { value: amount, expiresAt });
  }

  /** Drops the expired counters (they read as 0 already): the sweep job's pass (src/app.ts), so memory stays bounded. */
  sweep(): void {
    const now = this.clock.now();
    for (const [key, cell] of this.cells) if (cell.expiresAt <= now) this.cells.delete(key);
  }
}
