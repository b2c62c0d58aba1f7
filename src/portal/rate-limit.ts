/**
 * Sign-up throttling: a token bucket per client address and one for everyone, in bounded memory. Pure: the caller
 * passes the time. A full table first forgets buckets that have refilled (they hold nothing an attacker lacks),
 * then the oldest; the global bucket caps what rotating addresses can get past that.
 */

interface Bucket {
  tokens: number;
  at: number;
}

export interface RateLimitOptions {
  /** Allowed per address per window, and the burst. */
  perAddress: number;
  /** Allowed in all per window. */
  global: number;
  windowMs: number;
  /** Addresses tracked at most. */
  maxAddresses: number;
}

export type RateLimitOutcome = { allowed: true } | { allowed: false; scope: 'address' | 'global'; retryAfterMs: number };

export class SignUpRateLimit {
  private readonly buckets = new Map<string, Bucket>();
  private globalBucket: Bucket;

  constructor(private readonly options: RateLimitOptions) {
    this.globalBucket = { tokens: options.global, at: -Infinity };
  }

  get trackedAddresses(): number {
    return this.buckets.size;
  }

  /** Takes one token from the address's bucket and the global one, or neither. */
  take(address: string, now: number): RateLimitOutcome {
    const { perAddress, global, windowMs } = this.options;
    const own = refill(this.buckets.get(address) ?? { tokens: perAddress, at: now }, perAddress, windowMs, now);
    const all = refill(this.globalBucket, global, windowMs, now);
    this.globalBucket = all;
    if (own.tokens < 1) {
      this.remember(address, own, now);
      return { allowed: false, scope: 'address', retryAfterMs: Math.ceil(((1 - own.tokens) * windowMs) / perAddress) };
    }
    if (all.tokens < 1) return { allowed: false, scope: 'global', retryAfterMs: Math.ceil(((1 - all.tokens) * windowMs) / global) };
    own.tokens -= 1;
    all.tokens -= 1;
    this.remember(address, own, now);
    return { allowed: true };
  }

  private remember(address: string, bucket: Bucket, now: number): void {
    this.buckets.delete(address); // re-inserted last: the map's order is least recently used first
    if (this.buckets.size >= this.options.maxAddresses) {
      for (const [key, kept] of this.buckets) {
        if (refill(kept, this.options.perAddress, this.options.windowMs, now).tokens >= this.options.perAddress) this.buckets.delete(key);
      }
      while (this.buckets.size >= this.options.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(address, bucket);
  }
}

function refill(bucket: Bucket, capacity: number, windowMs: number, now: number): Bucket {
  const elapsed = Math.max(0, now - bucket.at);
  return { tokens: Math.min(capacity, bucket.tokens + (elapsed * capacity) / windowMs), at: now };
}
