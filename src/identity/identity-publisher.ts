import type { Cluster, Redis } from 'ioredis';
import type { Logger } from '../kernel/index.js';
import { encodeChange, encodeIdentity, type IdentityChange, type IdentityKeys } from './identity-records.js';
import type { HashedIdentity, SqlIdentityRows } from './sql-identity-rows.js';
import { within } from './within.js';

/** An admin write waits this long at most for its publication; a slower one is retried by the next retry pass. */
export const identityPublishTimeoutMs = 2_000;

/**
 * A rebuild reads keys from PostgreSQL a page at a time, and writes each page to Redis in batches. Sending a batch's
 * commands is synchronous (about 0.15 ms per key on a slow machine): small batches keep a process that also answers
 * Checks from stalling. Pages are larger, as each query costs about as much for 250 rows as for 1,000: a rebuild of
 * 100,000 keys spent 4.0 s in 400 queries, 1.6 s in 100.
 */
const identityRebuildPage = 1_000;
const identityRebuildBatch = 250;

/**
 * The back-office side of identity on demand: writes the identity records in Redis (identity-records.ts) through
 * after each committed change, and rebuilds them from PostgreSQL when they are incomplete. The edge only reads them.
 */
export class IdentityPublisher {
  /** Customers whose publication failed (Redis down): retried by the next retry pass. */
  private failed = new Set<string>();
  /** Customers published since the last retry pass: published once more by it (see retryPass). */
  private published = new Set<string>();
  /** One publication per customer at a time, so that an older read is never written after a newer one here. */
  private readonly publishing = new Map<string, Promise<void>>();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: IdentityKeys,
    private readonly rows: SqlIdentityRows,
    private readonly logger: Logger,
    /** This process's own Check, given what was read and written (no change when Redis failed); none on the back office only. */
    private readonly local: { published(fresh: readonly HashedIdentity[], change: IdentityChange | undefined): void } = { published: () => {} },
  ) {}

  /** After a committed change to the customer, its keys, or its subscriptions; never rejects (failures are retried). */
  customerChanged(customerId: string): Promise<void> {
    return this.enqueue(customerId, true);
  }

  /**
   * Publishes again what failed, and once more what was published since the last pass: another replica that read a
   * customer before our commit and wrote after us would otherwise leave its older read in Redis.
   */
  async retryPass(): Promise<void> {
    const due = new Set([...this.failed, ...this.published]);
    this.failed = new Set();
    this.published = new Set();
    for (const customerId of due) await this.enqueue(customerId, false);
  }

  private enqueue(customerId: string, publishAgain: boolean): Promise<void> {
    const previous = this.publishing.get(customerId) ?? Promise.resolve();
    const settled = previous
      .then(() => within(this.publish(customerId), identityPublishTimeoutMs, () => new Error('identity publication timed out')))
      .then(
        () => void (publishAgain && this.published.add(customerId)),
        (error: unknown) => {
          this.failed.add(customerId);
          this.logger.warn({ err: (error as Error).message, customerId }, 'identity records not written; retrying');
        },
      );
    this.publishing.set(customerId, settled);
    void settled.then(() => {
      if (this.publishing.get(customerId) === settled) this.publishing.delete(customerId);
    });
    return settled;
  }

  /**
   * While the complete marker is missing (first start, Redis flushed or replaced), writes every key's record from
   * PostgreSQL in batches, without overwriting a record written through meanwhile (which is newer), then sets it.
   */
  async rebuildPass(signal?: AbortSignal): Promise<void> {
    if ((await this.redis.exists(this.keys.complete)) === 1) return;
    const started = performance.now();
    let after = '';
    let written = 0;
    for (;;) {
      if (signal?.aborted) return;
      const page = await this.rows.page(after, identityRebuildPage);
      if (page.length === 0) break;
      for (let from = 0; from < page.length; from += identityRebuildBatch) {
        await Promise.all(
          page.slice(from, from + identityRebuildBatch).flatMap(({ hash, identity }) => [
            this.redis.set(this.keys.record(hash), encodeIdentity(identity), 'NX'),
            this.redis.sadd(this.keys.customerHashes(identity.key.customerId), hash),
          ]),
        );
      }
      written += page.length;
      after = page[page.length - 1]!.identity.key.id;
    }
    await this.redis.set(this.keys.complete, new Date().toISOString());
    await this.announce([]);
    this.logger.info({ keys: written, ms: Math.round(performance.now() - started) }, 'identity records rebuilt in Redis');
  }

  private async publish(customerId: string): Promise<void> {
    const current = await this.rows.ofCustomer(customerId);
    let change: IdentityChange | undefined;
    try {
      const hashesKey = this.keys.customerHashes(customerId);
      const held = new Set(current.map(({ hash }) => hash));
      // Erasure changes a key's hash: the record under the old one must go.
      const stale = (await this.redis.smembers(hashesKey)).filter((hash) => !held.has(hash));
      await Promise.all([
        ...current.map(({ hash, identity }) => this.redis.set(this.keys.record(hash), encodeIdentity(identity))),
        ...stale.map((hash) => this.redis.del(this.keys.record(hash))),
        held.size > 0 ? this.redis.sadd(hashesKey, ...held) : undefined,
        stale.length > 0 ? this.redis.srem(hashesKey, ...stale) : undefined,
      ]);
      change = await this.announce([...held, ...stale]);
    } finally {
      this.local.published(current, change);
    }
  }

  /** Raises the version and tells every replica; the change's message is sent after this resolves. */
  private async announce(hashes: string[]): Promise<IdentityChange> {
    const change = { version: await this.redis.incr(this.keys.version), hashes };
    void this.redis.publish(this.keys.channel, encodeChange(change)).catch(() => {});
    return change;
  }
}
