// Seeded fault injection: which requests fail, how, and whether before or after they were applied.
import type { FaultKind, FaultPhase } from './state.js';

export interface FaultConfig {
  /** Probability, from 0 to 1, that a request gets a fault. */
  rate: number;
  kinds: readonly FaultKind[];
  /** The same seed and the same sequence of requests give the same faults. */
  seed?: number;
  /** Both by default. A `429` always comes before the request is applied: Stripe's rate limiter runs first. */
  phases?: readonly FaultPhase[];
  /** Stop injecting after this many faults. */
  limit?: number;
}

export interface Fault {
  kind: FaultKind;
  phase: FaultPhase;
}

const DEFAULT_SEED = 1;
const ALL_PHASES: readonly FaultPhase[] = ['before', 'after'];

/** mulberry32: a small, fast PRNG that is good enough to spread faults evenly. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export class FaultInjector {
  private config: FaultConfig | null = null;
  private random = seededRandom(DEFAULT_SEED);
  private injected = 0;

  /** Replaces the configuration and restarts its random sequence; `null` turns faults off. */
  configure(config: FaultConfig | null): void {
    if (config) {
      if (!(config.rate >= 0 && config.rate <= 1)) throw new RangeError(`fault rate must be within [0, 1]: ${config.rate}`);
      if (config.kinds.length === 0) throw new RangeError('fault kinds must not be empty');
      if (config.phases?.length === 0) throw new RangeError('fault phases must not be empty');
    }
    this.config = config;
    this.random = seededRandom(config?.seed ?? DEFAULT_SEED);
    this.injected = 0;
  }

  /** The fault for the next request, if it gets one. */
  next(): Fault | undefined {
    const { config } = this;
    if (!config || (config.limit !== undefined && this.injected >= config.limit)) return undefined;
    if (this.random() >= config.rate) return undefined;
    const kind = this.pick(config.kinds);
    const phase = kind === '429' ? 'before' : this.pick(config.phases ?? ALL_PHASES);
    this.injected += 1;
    return { kind, phase };
  }

  private pick<T>(options: readonly T[]): T {
    const choice = options[Math.floor(this.random() * options.length)];
    if (choice === undefined) throw new Error('cannot pick from an empty list');
    return choice;
  }
}
