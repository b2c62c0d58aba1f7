import type { Logger } from '../kernel/index.js';
import { CounterStoreUnavailable, type ConsumeRequest, type ConsumeResult, type CounterStore } from './store.js';
import type { WalletRebase } from './window.js';

/**
 * What the Check does while the shared counter store (Redis) is unreachable:
 * - closed: deny (503), nothing is served uncounted;
 * - open: allow without counting;
 * - local: count in this replica's memory, so each replica enforces the limits on its own share of traffic.
 * Requests that charge a prepaid wallet are denied (503) in every mode.
 */
export type FailureMode = 'closed' | 'open' | 'local';

export type Degraded = { degraded: 'closed' } | { degraded: 'open' };

/** Wraps the shared store and applies the configured failure mode when it fails. */
export class ResilientCounterStore {
  private failing = false;

  constructor(
    private readonly primary: CounterStore,
    private readonly mode: FailureMode,
    private readonly local: CounterStore,
    private readonly logger: Logger,
    private readonly onFailure: (mode: FailureMode) => void = () => {},
    /** Seconds each call to the shared store took, successful or not. */
    private readonly onLatency: (seconds: number) => void = () => {},
  ) {}

  /** Returns the counter result, or for closed/open modes a marker that the decision must be degraded. */
  consumeOrDegrade(request: ConsumeRequest): Promise<ConsumeResult | Degraded> {
    // Promise callbacks rather than async/await: this runs on every Check, and each await costs a suspended frame.
    const started = performance.now();
    return this.primary.consume(request).then<ConsumeResult | Degraded, ConsumeResult | Degraded>(
      (result) => {
        this.onLatency((performance.now() - started) / 1000);
        if (this.failing) {
          this.failing = false;
          this.logger.info('counter store reachable again');
        }
        return result;
      },
      (error: unknown) => {
        this.onLatency((performance.now() - started) / 1000);
        return this.degrade(request, error);
      },
    );
  }

  private degrade(request: ConsumeRequest, error: unknown): Promise<ConsumeResult> | Degraded {
    if (!(error instanceof CounterStoreUnavailable)) throw error;
    if (!this.failing) {
      this.failing = true;
      this.logger.error({ err: error.message, mode: this.mode }, 'counter store unavailable; applying failure mode');
    }
    this.onFailure(this.mode);
    // A wallet is spent only where its mirror lives: replicas counting apart could each spend the whole balance.
    if (request.limits.some((limit) => limit.kind === 'wallet')) return { degraded: 'closed' };
    if (this.mode === 'local') return this.local.consume(request);
    return { degraded: this.mode };
  }

  /** Whether Checks can be decided: only closed mode refuses them all while the shared store is unavailable. */
  get serving(): boolean {
    return this.mode !== 'closed' || this.primary.available;
  }

  periodUsage(scope: string, name: string, periodStart: number): Promise<number> {
    return this.primary.periodUsage(scope, name, periodStart);
  }

  rebaseWallet(scope: string, rebase: WalletRebase): Promise<number> {
    return this.primary.rebaseWallet(scope, rebase);
  }

  walletBalance(scope: string, name: string): Promise<number | undefined> {
    return this.primary.walletBalance(scope, name);
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.local.close()]);
  }
}
