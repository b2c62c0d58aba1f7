import type { Cluster, Redis } from 'ioredis';
import { BoundedCache, type Clock, type Logger } from '../kernel/index.js';
import type { HashedIdentity } from './sql-identity-rows.js';
import type { Identity, SubscriptionState } from './types.js';
import { within } from './within.js';
import type { Identities } from './identities.js';
import { decodeChange, decodeIdentity, type IdentityChange, type IdentityKeys } from './identity-records.js';

/** The identity store cannot tell whether a key exists (Redis unreachable, or its records not yet rebuilt). */
export class IdentityUnavailable extends Error {}

export interface OnDemandSettings {
  /** Known keys held in memory (TOLLGATE_IDENTITY_CACHE_KEYS). */
  cacheKeys: number;
  /** Unknown keys remembered, apart from the known ones so that random keys cannot evict them. */
  unknownKeys: number;
  /** How long an unknown key is answered from memory (TOLLGATE_IDENTITY_NEGATIVE_TTL_MS). */
  unknownTtlMs: number;
  /** A Redis read slower than this answers IdentityUnavailable (TOLLGATE_REDIS_TIMEOUT_MS). */
  timeoutMs: number;
  /** Ready while Redis is unreachable, serving the keys held (failure modes `open` and `local`, as the counters). */
  readyWhileUnreachable: boolean;
}

/** A hung Redis must not stop the version poll: its read fails after this long, and the identity store counts as unreachable. */
const versionReadTimeoutMs = 1_000;

/** A Redis read under way for one hash, shared by the Checks that miss on it meanwhile. */
interface Fetch {
  answer: Promise<Identity | undefined>;
  /** The record changed while it was read: the answer serves its callers but is not kept. */
  stale: boolean;
}

/**
 * The edge's identities when Redis is configured: the keys that traffic presents, held in a bounded cache, read from
 * the identity records in Redis on a miss (identity-records.ts), never from PostgreSQL. Writes on the back-office side
 * announce the hashes they touched on a pub/sub channel, and each one raises a version counter; this polls that
 * counter (job "identity version poll") and drops everything when it moved without a message for it (a message not
 * come by the next poll, a reconnect), or when the records lost their complete marker (Redis flushed).
 */
export class OnDemandIdentities implements Identities {
  private readonly known: BoundedCache<Identity>;
  /** Unknown hashes, with the clock time until which they stay unknown. */
  private readonly unknown: BoundedCache<number>;
  private readonly fetching = new Map<string, Fetch>();
  /** Records asked for in this event-loop turn, read together (standalone Redis). */
  private readonly reads: { hash: string; resolve: (text: string | null) => void; reject: (error: unknown) => void }[] = [];
  private readonly subscriber: Redis | Cluster;
  /** The version up to which every change was applied (by its message or by dropping everything); -1 before a poll. */
  private applied = -1;
  /** A version the last poll found ahead of `applied` while subscribed: its message should have come by the next. */
  private awaited = -1;
  /** Versions whose message came before an earlier version's. */
  private readonly ahead = new Set<number>();
  /** Versions this process published and applied already, whose message is yet to come back. */
  private readonly ownChanges = new Set<number>();
  /** The complete marker was seen: a hash without a record is an unknown key. */
  private complete = false;
  private reachable = false;
  private subscribedBefore = false;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: IdentityKeys,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly settings: OnDemandSettings,
  ) {
    this.known = new BoundedCache(settings.cacheKeys);
    this.unknown = new BoundedCache(settings.unknownKeys);
    this.subscriber = redis.duplicate();
    this.subscriber.on('error', () => {});
    this.subscriber.on('ready', () => {
      // Messages sent while disconnected are lost: whatever they announced may be held stale.
      if (this.subscribedBefore) {
        this.dropAll('identity change channel reconnected');
        // Nor is any on its way: the next poll that finds the version ahead drops everything again, without waiting.
        this.awaited = Number.POSITIVE_INFINITY;
      }
      this.subscribedBefore = true;
      this.subscriber.subscribe(keys.channel).catch(() => {});
    });
    this.subscriber.on('message', (_channel: string, text: string) => {
      const change = decodeChange(text);
      if (change && !this.ownChanges.delete(change.version)) this.apply(change);
    });
  }

  /**
   * Waits (at most `connectMs`) for Redis and reads the version once; start-up loads no key, whatever their number.
   * Unreachable, it starts anyway: not ready until the version poll reaches Redis.
   */
  async start(connectMs = 2_000): Promise<void> {
    if (this.redis.status !== 'ready') {
      // Not events.once: it would reject on the connection's first 'error', and Redis may come up later.
      let connected = () => {};
      await within(new Promise<void>((resolve) => this.redis.once('ready', (connected = resolve))), connectMs, () => new Error('not connected')).catch(() => {
        this.redis.off('ready', connected);
      });
    }
    await this.refresh();
  }

  /**
   * The key's identity: from memory at once when held (or known to be unknown), else a promise of Redis's answer,
   * which rejects with IdentityUnavailable when Redis cannot say.
   */
  lookup(keyHash: string): Identity | undefined | Promise<Identity | undefined> {
    const held = this.known.get(keyHash);
    if (held !== undefined) return held;
    return this.miss(keyHash);
  }

  /** Subscriptions are not held apart from their keys here: metering's unsigned entries fall back to calendar months. */
  subscription(_id: string): SubscriptionState | undefined {
    return undefined;
  }

  get size(): number {
    return this.known.size;
  }

  /** Redis answered the last version poll and its records are complete. */
  get synced(): boolean {
    return this.reachable && this.complete;
  }

  /** /readyz: Redis answered the last version poll, or the failure mode serves what is held without it. */
  get ready(): boolean {
    return this.reachable || this.settings.readyWhileUnreachable;
  }

  /**
   * The version poll, the safety net beside the channel: drops everything when a change was not announced here.
   * Redis unreachable, it keeps what it holds (logged once; /readyz and the synced gauge say so).
   */
  async refresh(): Promise<void> {
    let version: string | null | undefined;
    let complete: string | null | undefined;
    try {
      [version, complete] = await within(this.redis.mget(this.keys.version, this.keys.complete), versionReadTimeoutMs, () => new Error('identity version read timed out'));
    } catch (error) {
      if (this.reachable) this.logger.error({ err: (error as Error).message }, 'identity store unreachable; serving held identities');
      this.reachable = false;
      return;
    }
    if (!this.reachable) this.logger.info('identity store reachable');
    this.reachable = true;
    const current = Number(version ?? 0);
    const wasComplete = this.complete;
    this.complete = complete !== null && complete !== undefined;
    if (this.applied === -1) {
      this.applied = current;
    } else if (current < this.applied || (wasComplete && !this.complete)) {
      this.skipTo(current, 'identity records reset');
    } else if (current > this.applied) {
      // Subscribed, a version ahead is most often a message still on its way (dropping everything for it would empty
      // the cache whenever a poll lands between a change and its message): it was missed if the next poll finds it
      // still unapplied. Unsubscribed, nothing is on its way.
      if (this.subscriber.status !== 'ready' || this.applied < this.awaited) this.skipTo(current, 'identity change missed');
      else this.awaited = current;
    } else {
      this.awaited = -1;
    }
  }

  /** Drops everything held and takes `version` as applied: whatever changed up to it is read again from Redis. */
  private skipTo(version: number, reason: string): void {
    this.dropAll(reason);
    this.applied = version;
    this.awaited = -1;
    this.ahead.clear();
  }

  close(): void {
    this.subscriber.disconnect();
  }

  private miss(keyHash: string): undefined | Promise<Identity | undefined> {
    const unknownUntil = this.unknown.get(keyHash);
    if (unknownUntil !== undefined) {
      if (unknownUntil > this.clock.now()) return undefined;
      this.unknown.delete(keyHash);
    }
    const pending = this.fetching.get(keyHash);
    if (pending) return pending.answer;
    const fetch: Fetch = { answer: undefined as unknown as Promise<Identity | undefined>, stale: false };
    fetch.answer = this.read(keyHash).then(
      (identity) => {
        this.fetching.delete(keyHash);
        if (!fetch.stale) {
          if (identity) this.known.set(keyHash, identity);
          else this.unknown.set(keyHash, this.clock.now() + this.settings.unknownTtlMs);
        }
        return identity;
      },
      (error: unknown) => {
        this.fetching.delete(keyHash);
        throw error;
      },
    );
    this.fetching.set(keyHash, fetch);
    return fetch.answer;
  }

  private async read(keyHash: string): Promise<Identity | undefined> {
    const text = await this.record(keyHash);
    if (text !== null) return decodeIdentity(text);
    // A missing record means an unknown key only once the records are complete; before, a real key may be missing.
    if (!this.complete) this.complete = (await this.withinTimeout(this.redis.exists(this.keys.complete))) === 1;
    if (!this.complete) throw new IdentityUnavailable('identity records are being rebuilt');
    return undefined;
  }

  /**
   * A key's record. The misses of one event-loop turn are read with one MGET and one timer: a GET each cost a command,
   * a socket write and a timer per Check when traffic spreads over more keys than the cache holds. On Redis Cluster
   * the records lie in every slot, so each is a GET of its own.
   */
  private record(keyHash: string): Promise<string | null> {
    if (this.redis.isCluster) return this.withinTimeout(this.redis.get(this.keys.record(keyHash)));
    return new Promise((resolve, reject) => {
      if (this.reads.length === 0) setImmediate(this.readBatch);
      this.reads.push({ hash: keyHash, resolve, reject });
    });
  }

  private readonly readBatch = () => {
    const reads = this.reads.splice(0);
    this.withinTimeout(this.redis.mget(reads.map((read) => this.keys.record(read.hash)))).then(
      (texts) => reads.forEach((read, i) => read.resolve(texts[i] ?? null)),
      (error: unknown) => reads.forEach((read) => read.reject(error)),
    );
  };

  private withinTimeout<T>(reply: Promise<T>): Promise<T> {
    return within(reply, this.settings.timeoutMs, () => new IdentityUnavailable('identity store timed out')).catch((error: unknown) => {
      throw error instanceof IdentityUnavailable ? error : new IdentityUnavailable((error as Error).message);
    });
  }

  /**
   * What this process's own publisher has just read from PostgreSQL (and written to Redis as `change`, unless Redis
   * failed): usable here at once, even while Redis is unreachable; the change's own message is then skipped.
   */
  published(fresh: readonly HashedIdentity[], change: IdentityChange | undefined): void {
    if (change) {
      this.apply(change);
      this.ownChanges.add(change.version);
    }
    for (const { hash, identity } of fresh) {
      this.forget(hash);
      this.known.set(hash, identity);
    }
  }

  /** A change announced on the channel: what it touched is read again. */
  private apply(change: IdentityChange): void {
    for (const hash of change.hashes) this.forget(hash);
    if (this.applied === -1 || change.version <= this.applied) return;
    this.ahead.add(change.version);
    while (this.ahead.delete(this.applied + 1)) this.applied++;
  }

  private forget(hash: string): void {
    this.known.delete(hash);
    this.unknown.delete(hash);
    const pending = this.fetching.get(hash);
    if (pending) pending.stale = true;
  }

  private dropAll(reason: string): void {
    if (this.known.size > 0 || this.unknown.size > 0) this.logger.info({ keys: this.known.size, reason }, 'identity cache dropped');
    this.known.clear();
    this.unknown.clear();
    this.ownChanges.clear();
    for (const pending of this.fetching.values()) pending.stale = true;
  }
}
