interface OffsetSample {
  /** Redis's clock minus ours lies in [low, high]. */
  low: number;
  high: number;
}

/**
 * Where Redis's clock stands relative to this process's monotonic clock (performance.now()), from TIME round trips:
 * Redis read its clock between sending and receiving, so its offset lies in [redisNow - receivedAt, redisNow - sentAt]
 * whatever the two directions took. The fastest recent round trip gives the narrowest interval; a stall on either
 * side only widens a sample, which then loses. A sample that does not overlap the best one means Redis's clock was
 * stepped (or another server answers): the older samples are dropped.
 */
export class RedisClockOffset {
  private samples: OffsetSample[] = [];
  private best: OffsetSample | undefined;

  /** Recent samples only: clocks drift apart by a few parts per million. */
  constructor(private readonly kept = 8) {}

  get known(): boolean {
    return this.best !== undefined;
  }

  record(sentAt: number, redisNow: number, receivedAt: number): void {
    const sample = { low: redisNow - receivedAt, high: redisNow - sentAt };
    const best = this.best;
    if (best && (sample.low > best.high || sample.high < best.low)) this.samples = [];
    this.samples.push(sample);
    if (this.samples.length > this.kept) this.samples.shift();
    this.best = this.samples.reduce((narrowest, each) => (each.high - each.low < narrowest.high - narrowest.low ? each : narrowest));
  }

  /**
   * The latest Redis time at which a command sent at `sentAt` may still count, so that its reply reaches this process
   * before `sentAt + timeoutMs` (when the caller gives up on it): the budget in Redis's clock at the offset's lowest
   * possible value, less the reply's way back (taken as half the round trip). Undefined before any sample.
   */
  deadline(sentAt: number, timeoutMs: number): number | undefined {
    const best = this.best;
    if (!best) return undefined;
    return sentAt + best.low + timeoutMs - (best.high - best.low) / 2;
  }
}
