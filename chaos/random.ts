/** A seeded pseudo-random source (mulberry32), so a fuzz run and its findings can be repeated with the same seed. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [0, max). */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }

  /** A string of hostile characters: NUL and controls, bad percent-encoding, path tricks, astral and lone surrogates. */
  hostileString(maxLength = 64): string {
    const pieces = ['\0', '%', '%zz', '%00', '%c0%af', '%ff', '../', '..', '/', '\\', '?', '#', ';', '\r\n', ' ', '"', "'", '{', '}', '\u202e', '😀', '\ud800', 'é', 'a', 'Z', '0', '-1', '9'.repeat(30), 'null', '__proto__', 'constructor'];
    let out = '';
    const target = this.int(maxLength + 1);
    while (out.length < target) out += this.pick(pieces);
    return out;
  }

  /** A random JSON value, nested up to `depth`. */
  json(depth = 3): unknown {
    const kind = this.int(depth > 0 ? 9 : 6);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.next() < 0.5;
      case 2:
        return this.pick([0, -1, 1, 1e308, -1e308, 2 ** 53 + 1, 0.1, -0, 123456789012345678901234567890]);
      case 3:
        return this.hostileString(this.pick([8, 64, 2_000]));
      case 4:
        return this.pick(['', 'USD', 'pro', 'unbounded', '2026-01-01T00:00:00Z', '10.00', '-5', 'https://example.com', 'cus_1']);
      case 5:
        return this.int(1000);
      case 6:
      case 7: {
        const keys = ['id', 'name', 'email', 'customer', 'plan', 'amount', 'currency', 'reference', 'url', 'status', 'subscription', 'key', 'app', 'reason', '__proto__', 'constructor', this.hostileString(12)];
        const object: Record<string, unknown> = {};
        for (let i = this.int(6); i > 0; i--) object[this.pick(keys)] = this.json(depth - 1);
        return object;
      }
      default:
        return Array.from({ length: this.int(5) }, () => this.json(depth - 1));
    }
  }
}
