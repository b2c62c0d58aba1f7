/**
 * One leader among the replicas sharing a PostgreSQL database, for the jobs registered with `lead:` (rating, Stripe
 * sync, usage alerts, event publishing).
 *
 * - The leader holds a session-level advisory lock on a connection of its own (not the pool), continuously. When its
 *   process dies, PostgreSQL ends the session and frees the lock; when its host dies or the network cuts it off, the
 *   server's TCP keepalives end the session within about 10 s. Followers try the lock every 1–2 s, so one of them
 *   takes over within seconds.
 * - The leader checks its connection as often; losing it (an error, the socket closing, a check that fails) ends its
 *   leadership at once.
 * - Fencing: each leader raises the epoch in `leader_epoch` as it takes over. Transactions begun inside a led pass
 *   first read the epoch FOR SHARE and are refused when it has moved on, so a deposed leader still in a pass cannot
 *   commit; the new leader's raise waits for the led transactions that read the old epoch.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import pg from 'pg';
import { type Leadership, type Logger, type Scheduler, soleLeadership } from '../kernel/index.js';
import type { Db, Queryable } from './db.js';

/** "lead" in ASCII: the advisory lock the leader's session holds. */
export const leadershipLockId = 0x6c656164;
/** The leader's and followers' own connections, as pg_stat_activity shows them. */
export const leadershipApplicationName = 'tollgate leadership';
/** A follower tries the lock, and the leader checks its connection, this often (plus up to as much again, at random). */
export const campaignIntervalMs = 1_000;
/** A check of the leader's connection slower than this counts as the connection lost. */
const checkTimeoutMs = 3_000;
/** The raise of the epoch waits for the old leader's led transactions; a stuck one must not block the takeover forever. */
const raiseTimeoutMs = 30_000;
/**
 * The server probes a leadership connection idle 5 s every second and ends the session after 5 unanswered probes (or
 * 10 s of unacknowledged data): a dead host's lock is freed within about 10 s. Kernel keepalives, not queries: a test's
 * stopped clock, or a long pause of the event loop, does not cost a live leader its lock.
 */
const serverKeepalives = 'SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 5; SET tcp_user_timeout = 10000';

/** Leadership as the composition root uses it: the jobs' `lead`, the gauges, and its life cycle. */
export interface ReplicaLeadership extends Leadership {
  readonly leading: boolean;
  /** The epoch this replica holds or last held; 0 before it ever led. */
  readonly epoch: number;
  /** The same Db, its writes inside led passes refused once this replica has been deposed. */
  fence(db: Db): Db;
  /** Takes part: a first attempt now, then one every 1–2 s on the scheduler. */
  start(scheduler: Scheduler): Promise<void>;
  /** Gives leadership up (after the scheduler has stopped the led passes), so another replica takes over at once. */
  close(): Promise<void>;
}

/** Refuses a write of a pass led under an epoch that is over: another replica has taken over since. */
export class DeposedLeaderError extends Error {
  constructor(
    readonly epoch: number,
    readonly currentEpoch: number,
  ) {
    super(`this replica's leadership (epoch ${epoch}) is over, epoch ${currentEpoch} leads: the led pass's write was refused`);
    this.name = 'DeposedLeaderError';
  }
}

/** PostgreSQL leadership when a database URL is given; otherwise (PGlite, one process by its data-directory lock) always held. */
export function createLeadership(options: { databaseUrl?: string | undefined }, logger: Logger): ReplicaLeadership {
  return options.databaseUrl ? new PostgresLeadership(options.databaseUrl, logger) : soleReplica;
}

const soleReplica: ReplicaLeadership = {
  ...soleLeadership,
  leading: true,
  epoch: 0,
  fence: (db) => db,
  start: async () => {},
  close: async () => {},
};

export class PostgresLeadership implements ReplicaLeadership {
  private client: pg.Client | undefined;
  private held = false;
  private heldEpoch = 0;
  private closed = false;
  private readonly gainedListeners = new Set<() => void>();
  /** The epoch a led pass runs under, for the fence of every query it makes, whichever records make them. */
  private readonly ledPass = new AsyncLocalStorage<number>();
  private passesRunning = 0;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    /** Who leads, as `leader_epoch.holder` shows it. */
    private readonly holder = `${hostname()}/${process.pid}`,
  ) {}

  get leading(): boolean {
    return this.held;
  }

  get epoch(): number {
    return this.heldEpoch;
  }

  run<T>(pass: () => Promise<T>): Promise<T | undefined> {
    if (!this.held) return Promise.resolve(undefined);
    this.passesRunning += 1;
    return this.ledPass.run(this.heldEpoch, pass).finally(() => {
      // Before Node's AsyncContextFrame (Node 20, 22), an enabled AsyncLocalStorage hooks every promise of the
      // process, the Check's too (2.5 times the cost of an await, measured on Node 20): enabled only during led passes.
      // Disabling also ends the epoch in anything a pass left behind (a timer, a connection), which is then not fenced.
      if (--this.passesRunning === 0) this.ledPass.disable();
    });
  }

  onGained(gained: () => void): () => void {
    this.gainedListeners.add(gained);
    return () => void this.gainedListeners.delete(gained);
  }

  fence(db: Db): Db {
    const fenced = <T>(epoch: number, fn: (tx: Queryable) => Promise<T>) =>
      db.transaction(async (tx) => {
        await this.checkEpoch(tx, epoch);
        return fn(tx);
      });
    return {
      kind: db.kind,
      query: <Row>(sql: string, params?: unknown[]) => {
        const epoch = this.ledPass.getStore();
        return epoch === undefined ? db.query<Row>(sql, params) : fenced(epoch, (tx) => tx.query<Row>(sql, params));
      },
      transaction: (fn) => {
        const epoch = this.ledPass.getStore();
        return epoch === undefined ? db.transaction(fn) : fenced(epoch, fn);
      },
      withAdvisoryLock: (lockId, fn) => db.withAdvisoryLock(lockId, fn),
      close: () => db.close(),
    };
  }

  async start(scheduler: Scheduler): Promise<void> {
    // Before the first pass of the led jobs: a lone replica leads from its start, not a campaign interval later.
    await this.campaign().catch((error: unknown) => this.logger.warn({ err: messageOf(error) }, 'leadership not taken at start; trying again'));
    scheduler.every('leadership', campaignIntervalMs, () => this.campaign(), {
      jitter: 1,
      onFailure: (error, failures) => {
        if (failures === 1) this.logger.warn({ err: messageOf(error) }, 'leadership: the database is unreachable; trying again');
      },
    });
  }

  /** One step: the leader checks its connection; a follower tries the lock, and takes over if it gets it. */
  async campaign(): Promise<void> {
    if (this.closed) return;
    const client = this.client ?? (await this.connect());
    try {
      if (this.held) {
        await client.query(timed('SELECT 1', [], checkTimeoutMs));
        return;
      }
      const [lock] = (await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [leadershipLockId])).rows;
      if (!lock!.locked) return;
      // Waits for the led transactions that read the old epoch: once raised, no pass of an earlier leader commits.
      const [raised] = (
        await client.query<{ epoch: string }>(
          timed('UPDATE leader_epoch SET epoch = epoch + 1, holder = $1, acquired_at = clock_timestamp() RETURNING epoch', [this.holder], raiseTimeoutMs),
        )
      ).rows;
      this.held = true;
      this.heldEpoch = Number(raised!.epoch);
      this.logger.info({ epoch: this.heldEpoch, holder: this.holder }, 'leadership gained; the led jobs run here now');
      for (const gained of this.gainedListeners) gained();
    } catch (error) {
      // A session in doubt is given up whole: with it goes any lock it holds, and the next step starts afresh.
      this.lose(client, `the leadership connection failed: ${messageOf(error)}`);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    if (this.held) this.logger.info({ epoch: this.heldEpoch }, 'leadership given up (stopping)');
    this.held = false;
    await client.end().catch(() => {});
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url, keepAlive: true, keepAliveInitialDelayMillis: 5_000, connectionTimeoutMillis: 5_000, application_name: leadershipApplicationName });
    // Without listeners a lost connection would crash the process; with them, leadership ends the moment it is lost.
    client.on('error', (error) => this.lose(client, `the leadership connection was lost: ${error.message}`));
    client.on('end', () => this.lose(client, 'the leadership connection ended'));
    try {
      await client.connect();
      await client.query(serverKeepalives);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    this.client = client;
    return client;
  }

  private lose(client: pg.Client, reason: string): void {
    if (client !== this.client) return;
    this.client = undefined;
    void client.end().catch(() => {});
    if (!this.held) return;
    this.held = false;
    this.logger.error({ epoch: this.heldEpoch, reason }, 'leadership lost; the led jobs stop here');
  }

  private async checkEpoch(tx: Queryable, epoch: number): Promise<void> {
    const [row] = await tx.query<{ epoch: string; holder: string | null }>('SELECT epoch, holder FROM leader_epoch FOR SHARE');
    const current = Number(row!.epoch);
    if (current === epoch) return;
    this.logger.error({ epoch, currentEpoch: current, leader: row!.holder }, "a deposed leader's write was refused: another replica took over; the pass is not committed");
    // Deposed before its connection said so: it stops leading now.
    if (this.held && this.heldEpoch === epoch && this.client) this.lose(this.client, `epoch ${current} began on ${row!.holder ?? 'another replica'}`);
    throw new DeposedLeaderError(epoch, current);
  }
}

/** A query with its own timeout (pg supports `query_timeout` per query; its types know it per client only). */
function timed(text: string, values: unknown[], timeoutMs: number): pg.QueryConfig {
  const config: pg.QueryConfig & { query_timeout: number } = { text, values, query_timeout: timeoutMs };
  return config;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
