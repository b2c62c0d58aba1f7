import { type FileHandle, open, readFile, rename } from 'node:fs/promises';
import type { Logger } from '../kernel/index.js';
import type { Db } from '../store/index.js';
import type { Identities } from './identities.js';
import { type CustomerState, type CustomerStatus, type Identity, type KeyState, type KeyStatus, paymentSuspensionPrefix, type SubscriptionState, type SubscriptionStatus } from './types.js';

interface Snapshot {
  keys: [string, KeyState][];
  subscriptions: SubscriptionState[];
  customers: CustomerState[];
  highWater: string;
}

/**
 * Transactions commit in a different order than their updated_at stamps; re-reading this much history on every
 * poll catches rows committed late by a transaction up to this long.
 */
const commitSkewMs = 5_000;

/**
 * A transaction open longer than commitSkewMs could still slip past the incremental polls; a full reload this
 * often (a job of its own, see requestFullReload) bounds how long such a change (e.g. a revocation) can go unseen.
 */
export const identityFullReloadMs = 60_000;

/** The snapshot is rewritten at most this often (a job of its own, see writeSnapshot), not after every poll. */
export const identitySnapshotIntervalMs = 5_000;

/**
 * An in-memory mirror of keys, subscriptions and customer status, so the Check never queries PostgreSQL. It polls
 * rows changed since the last poll, and keeps a snapshot file so a restart can serve while PostgreSQL is down. The
 * scheduler (src/app.ts) times the polls (refresh), the full reloads and the snapshot writes.
 */
export class IdentityCache implements Identities {
  private readonly keysByHash = new Map<string, KeyState>();
  private readonly hashByKeyId = new Map<string, string>();
  private readonly subscriptions = new Map<string, SubscriptionState>();
  private readonly customers = new Map<string, CustomerState>();
  private highWater = new Date(0);
  /** The database's clock when the last successful poll began: later polls re-read only the commitSkewMs before it. */
  private lastPollStartedAt: Date | undefined;
  private inFlight: Promise<void> | undefined;
  private rerun = false;
  private healthy = false;
  private dirtySnapshot = false;
  /** The next poll reads everything, not only what changed: the first one, and after requestFullReload(). */
  private fullReloadDue = true;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly options: { snapshotFile?: string | undefined } = {},
  ) {}

  /** Loads everything; if the database is down, starts from the last snapshot (the polls will catch up). */
  async start(): Promise<void> {
    try {
      await this.refresh();
    } catch (error) {
      if (!(await this.loadSnapshot())) throw error;
      this.logger.warn({ err: (error as Error).message }, 'database unavailable at start; serving identities from snapshot');
    }
  }

  /** The next poll reloads every row (see identityFullReloadMs). */
  requestFullReload(): void {
    this.fullReloadDue = true;
  }

  /** True while the last poll succeeded. */
  get synced(): boolean {
    return this.healthy;
  }

  get size(): number {
    return this.keysByHash.size;
  }

  /** Ready to serve: synced, or holding what a snapshot or an earlier poll gave while the database is down. */
  get ready(): boolean {
    return this.healthy || this.keysByHash.size > 0;
  }

  lookup(keyHash: string): Identity | undefined {
    const key = this.keysByHash.get(keyHash);
    if (!key) return undefined;
    return { key, subscription: this.subscriptions.get(key.subscriptionId), customer: this.customers.get(key.customerId) };
  }

  /** A subscription by id, e.g. for metering to find its billing period anchor. */
  subscription(id: string): SubscriptionState | undefined {
    return this.subscriptions.get(id);
  }

  /** Polls now; concurrent callers share one poll, and a call during a poll schedules one more after it. */
  refresh(): Promise<void> {
    if (this.inFlight) {
      this.rerun = true;
      return this.inFlight;
    }
    this.inFlight = this.poll()
      .finally(() => {
        this.inFlight = undefined;
      })
      .then(() => {
        if (this.rerun) {
          this.rerun = false;
          return this.refresh();
        }
      });
    return this.inFlight;
  }

  private async poll(): Promise<void> {
    const fullReload = this.fullReloadDue;
    // Rows dated before (poll start - skew) were committed before that poll's reads began, so it saw them: polling
    // from the high-water mark instead would re-read a bulk import's rows on every poll until the next write.
    const since = fullReload ? new Date(0) : new Date(Math.max(0, (this.lastPollStartedAt ?? this.highWater).getTime() - commitSkewMs));
    try {
      const [{ now: startedAt }] = (await this.db.query<{ now: Date }>('SELECT clock_timestamp() AS now')) as [{ now: Date }];
      const [keys, subscriptions, customers] = await Promise.all([
        this.db.query<{ id: string; customer_id: string; subscription_id: string; hash: string; status: KeyStatus; updated_at: Date }>(
          'SELECT id, customer_id, subscription_id, hash, status, updated_at FROM api_keys WHERE updated_at > $1',
          [since],
        ),
        this.db.query<{ id: string; customer_id: string; product_id: string; plan_id: string; status: SubscriptionStatus; period_anchor: Date; updated_at: Date }>(
          'SELECT id, customer_id, product_id, plan_id, status, period_anchor, updated_at FROM subscriptions WHERE updated_at > $1',
          [since],
        ),
        this.db.query<{ id: string; status: CustomerStatus; overdue: boolean; updated_at: Date }>(
          'SELECT id, status, coalesce(starts_with(status_reason, $2), false) AS overdue, updated_at FROM customers WHERE updated_at > $1',
          [since, paymentSuspensionPrefix],
        ),
      ]);
      for (const row of keys) this.holdKey(row.hash, { id: row.id, customerId: row.customer_id, subscriptionId: row.subscription_id, status: row.status });
      for (const row of subscriptions) {
        keepChanged(this.subscriptions, row.id, {
          id: row.id,
          customerId: row.customer_id,
          productId: row.product_id,
          planId: row.plan_id,
          status: row.status,
          periodAnchor: row.period_anchor.getTime(),
        });
      }
      for (const row of customers) keepChanged(this.customers, row.id, { id: row.id, status: row.status, overdue: row.overdue });
      const newest = [...keys, ...subscriptions, ...customers].reduce((max, row) => Math.max(max, row.updated_at.getTime()), this.highWater.getTime());
      if (newest > this.highWater.getTime()) this.dirtySnapshot = true;
      this.highWater = new Date(newest);
      if (!this.healthy) this.logger.info({ keys: this.keysByHash.size }, 'identity cache synced');
      this.healthy = true;
      if (fullReload) this.fullReloadDue = false;
      this.lastPollStartedAt = startedAt;
    } catch (error) {
      if (this.healthy) this.logger.error({ err: (error as Error).message }, 'identity sync failed; serving cached identities');
      this.healthy = false;
      throw error;
    }
  }

  /** A key whose hash changed (erasure destroys it) no longer resolves under the old one. */
  private holdKey(hash: string, key: KeyState): void {
    const previousHash = this.hashByKeyId.get(key.id);
    if (previousHash !== undefined && previousHash !== hash) this.keysByHash.delete(previousHash);
    this.hashByKeyId.set(key.id, hash);
    keepChanged(this.keysByHash, hash, key);
  }

  /** Writes the snapshot file if the polls changed something since the last write. */
  async writeSnapshot(): Promise<void> {
    const file = this.options.snapshotFile;
    if (!file || !this.dirtySnapshot) return;
    // Written in slices, yielding between them: one JSON.stringify of a million keys blocked the event loop for seconds.
    // The high-water mark is taken first: a row changed while this writes is newer, and re-read after a restart.
    const handle = await open(`${file}.tmp`, 'w', 0o600);
    try {
      await handle.write(`{"highWater":${JSON.stringify(this.highWater.toISOString())},"keys":`);
      await writeJsonArray(handle, this.keysByHash.entries());
      await handle.write(',"subscriptions":');
      await writeJsonArray(handle, this.subscriptions.values());
      await handle.write(',"customers":');
      await writeJsonArray(handle, this.customers.values());
      await handle.write('}');
    } finally {
      await handle.close();
    }
    await rename(`${file}.tmp`, file);
    this.dirtySnapshot = false;
  }

  private async loadSnapshot(): Promise<boolean> {
    if (!this.options.snapshotFile) return false;
    try {
      const snapshot = JSON.parse(await readFile(this.options.snapshotFile, 'utf8')) as Snapshot;
      for (const [hash, key] of snapshot.keys) this.holdKey(hash, key);
      for (const subscription of snapshot.subscriptions) this.subscriptions.set(subscription.id, subscription);
      for (const customer of snapshot.customers) this.customers.set(customer.id, customer);
      this.highWater = new Date(snapshot.highWater);
      return true;
    } catch {
      return false;
    }
  }
}

/** Items serialised per slice of this many, each slice written (and the event loop free) before the next. */
const snapshotSliceItems = 5_000;

async function writeJsonArray(handle: FileHandle, items: Iterable<unknown>): Promise<void> {
  let slice: string[] = [];
  let separator = '';
  await handle.write('[');
  for (const item of items) {
    slice.push(JSON.stringify(item));
    if (slice.length === snapshotSliceItems) {
      await handle.write(separator + slice.join(','));
      separator = ',';
      slice = [];
    }
  }
  if (slice.length > 0) await handle.write(separator + slice.join(','));
  await handle.write(']');
}

/**
 * Replaces a held state only when a field changed: the Check memoizes per state object (see check/decide.ts), so an
 * unchanged row read again (a full reload, a re-read inside the skew window) must not cost it its memos.
 */
function keepChanged<State extends object>(held: Map<string, State>, id: string, next: State): void {
  const current = held.get(id);
  if (current && (Object.keys(next) as (keyof State)[]).every((field) => current[field] === next[field])) return;
  held.set(id, next);
}
