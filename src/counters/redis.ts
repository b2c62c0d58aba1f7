import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, type Redis } from 'ioredis';
import { connectRedis } from '../kernel/index.js';
import { counterKey, CounterStoreUnavailable, walletKey, type ConsumeRequest, type ConsumeResult, type CounterStore } from './store.js';
import { RedisClockOffset } from './redis-clock.js';
import { slidingWindowIndex, type Limit, type LimitOutcome, type WalletRebase } from './window.js';

/**
 * Checks every limit of each request and, only for a request whose limits all allow, counts them. Requests are
 * evaluated one after another exactly as separate calls would be, so one EVALSHA can carry every Check that arrived
 * in the same event-loop turn: each request stays atomic, and the Redis round trip, the command parsing on both
 * sides and the socket writes are paid once per batch instead of once per Check.
 * Inside the script every counter of the batch is read by one MGET (per thousand: Lua's unpack is bounded), and each
 * one the batch counts is written once: what the batch's counted requests add to it is kept in a Lua table and
 * included in later reads, and the sums go to Redis at the end. A counter that existed gets INCRBY, which keeps its expiry; one the batch creates gets SET with
 * the TTL the batch's last write asked for. A counter's expiry is thus set when it is created, not refreshed by each
 * write: a sliding window's counter lives 2 windows from its first count, past the end of the next window, the last
 * in which it is read; a period's counter until a day past the period's end, whenever it is written.
 * Nothing else runs while a script runs, so this is exactly the sequence of per-request reads and writes, at a
 * fraction of the redis.call()s: those, not the commands, are most of a script's cost (with many keys, the batch's
 * counters are mostly distinct, and one GET, INCRBY and PEXPIRE each cost about a third of a Check's Redis CPU).
 * It mirrors evaluateSliding/evaluatePeriod/evaluateWallet in window.ts operation for operation (Lua numbers are
 * IEEE doubles like JS numbers), so both stores give the same answers; the contract tests hold them to that.
 * ARGV[1], comma-separated: the number of shapes, each shape (what a request's limits are, apart from their counters:
 * count of limits, then per limit: kind ('s' sliding | 'p' period | 'w' wallet), limit, cost, windowMs|periodEnd,
 * enforce); then the number of limit sets, each: shape index, then the KEYS indexes of its counters, per limit in
 * order: a sliding limit's previous and current window, a period limit's counter, a wallet's balance and its period
 * spend counter; then the number of requests and per request: now, limit set index. Checks of one plan on one
 * endpoint share a shape whichever key makes them (the limits differ only in their counters' names), and one key's
 * Checks of an endpoint share a limit set, so a batch sends a few shapes, each key's counters once, and two numbers
 * per Check.
 * KEYS: each counter of the batch once.
 * Reply, request after request: all allowed (1|0), then per limit: allowed, remaining, reset, retry.
 * Sums go to Redis formatted with %.0f: Lua would print a large number as "1e+15", which INCRBY refuses.
 * ARGV[2]: the deadline, in Redis's clock (ms): a batch Redis gets to only after it replies -1 and counts nothing, as
 * its caller has given up on it and answered the Checks without it (a Redis that hung and resumes runs every command
 * it had queued).
 */
const consumeScript = `
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000 > tonumber(ARGV[2]) then return -1 end
local argv = {}
for token in string.gmatch(ARGV[1], '[^,]+') do argv[#argv + 1] = token end
local existing, stored, added, ttl, written = {}, {}, {}, {}, {}
for from = 1, #KEYS, 1000 do
  local values = redis.call('MGET', unpack(KEYS, from, math.min(from + 999, #KEYS)))
  for i = 1, #values do
    local k = from + i - 1
    local v = values[i]
    existing[k] = v
    if v then stored[k] = tonumber(v) else stored[k] = 0 end
  end
end
local function read(k)
  return stored[k] + (added[k] or 0)
end
local a = 2
local shapes = {}
for s = 1, tonumber(argv[1]) do
  local limits = {}
  for i = 1, tonumber(argv[a]) do
    local b = a + 1 + (i - 1) * 5
    limits[i] = { argv[b], tonumber(argv[b + 1]), tonumber(argv[b + 2]), tonumber(argv[b + 3]), argv[b + 4] == '1' }
  end
  shapes[s] = limits
  a = a + 1 + #limits * 5
end
local sets = {}
local setCount = tonumber(argv[a])
a = a + 1
for s = 1, setCount do
  local shape = shapes[tonumber(argv[a])]
  local counters = {}
  a = a + 1
  for i = 1, #shape do
    counters[i] = tonumber(argv[a])
    if shape[i][1] == 'p' then a = a + 1 else
      counters[i + #shape] = tonumber(argv[a + 1])
      a = a + 2
    end
  end
  sets[s] = { shape, counters }
end
local out = {}
local n = 0
local pending = {}
local requests = tonumber(argv[a])
a = a + 1
for r = 1, requests do
  local now = tonumber(argv[a])
  local limits, counters = unpack(sets[tonumber(argv[a + 1])])
  a = a + 2
  local head = n + 1
  n = head
  local writes = 0
  local allAllowed = 1
  for i = 1, #limits do
    local kind, limit, cost, span, enforce = unpack(limits[i])
    local allowed, remaining, reset, retry
    if kind == 's' then
      local first, second = counters[i], counters[i + #limits]
      local w = span
      local previous = read(first)
      local current = read(second)
      local elapsed = now - math.floor(now / w) * w
      local estimated = (previous * (w - elapsed)) / w + current
      allowed = estimated + cost <= limit
      remaining = 0
      if allowed then remaining = math.max(0, math.floor(limit - estimated - cost)) end
      local counted = 0
      if allowed then counted = cost end
      if current + counted > 0 then reset = 2 * w - elapsed elseif previous > 0 then reset = w - elapsed else reset = 0 end
      retry = 0
      if not allowed then
        if cost > limit then
          retry = 2 * w - elapsed
        else
          local room = limit - current - cost
          if room >= 0 and previous > 0 then
            retry = math.max(1, math.ceil(w - elapsed - (room * w) / previous))
          else
            local intoNext = 0
            if current > 0 then intoNext = math.max(0, w - ((limit - cost) * w) / current) end
            retry = math.max(1, math.ceil((w - elapsed) + intoNext))
          end
        end
      end
      pending[writes + 1], pending[writes + 2], pending[writes + 3] = second, cost, 2 * w
      writes = writes + 3
    elseif kind == 'w' then
      local first, second = counters[i], counters[i + #limits]
      local balance = read(first)
      allowed = balance > 0 and cost <= balance
      if allowed then remaining = balance - cost else remaining = math.max(0, balance) end
      reset = 0
      retry = 0
      if cost > 0 then
        pending[writes + 1], pending[writes + 2], pending[writes + 3] = first, -cost, false
        pending[writes + 4], pending[writes + 5], pending[writes + 6] = second, cost, math.max(0, span - now) + 86400000
        writes = writes + 6
      end
    else
      local first = counters[i]
      local used = read(first)
      local fits = used + cost <= limit
      allowed = fits or not enforce
      local untilEnd = math.max(0, span - now)
      if allowed then remaining = math.max(0, limit - used - cost) else remaining = math.max(0, limit - used) end
      reset = untilEnd
      retry = 0
      if not allowed then retry = untilEnd end
      pending[writes + 1], pending[writes + 2], pending[writes + 3] = first, cost, untilEnd + 86400000
      writes = writes + 3
    end
    if not allowed then allAllowed = 0 end
    out[n + 1] = allowed and 1 or 0
    out[n + 2] = remaining
    out[n + 3] = reset
    out[n + 4] = retry
    n = n + 4
  end
  if allAllowed == 1 then
    for w = 1, writes, 3 do
      local k = pending[w]
      if added[k] == nil then
        added[k] = 0
        written[#written + 1] = k
      end
      added[k] = added[k] + pending[w + 1]
      if pending[w + 2] then ttl[k] = pending[w + 2] end
    end
  end
  out[head] = allAllowed
end
for _, k in ipairs(written) do
  local sum = string.format('%.0f', added[k])
  if existing[k] then
    redis.call('INCRBY', KEYS[k], sum)
  elseif ttl[k] then
    redis.call('SET', KEYS[k], sum, 'PX', ttl[k])
  else
    redis.call('SET', KEYS[k], sum)
  end
end
return out
`;

/** rebasedWalletBalance in window.ts. KEYS: the balance, then the spend counters; ARGV: ledger balance, then each counter's settled amount. */
const rebaseWalletScript = `
local balance = tonumber(ARGV[1])
for i = 2, #KEYS do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  balance = balance - math.max(0, spent - tonumber(ARGV[i]))
end
redis.call('SET', KEYS[1], string.format('%.0f', balance))
return balance
`;

/** Redis's clock, read by a script so that it waits wherever a consume script would (e.g. CLIENT PAUSE WRITE). */
const timeScript = `return redis.call('TIME')`;

/** With no fixed key count, ioredis takes the number of keys first, then the keys, then the arguments. */
type ScriptCommand<Reply> = (keyCount: number, ...keysThenArgs: (string | number)[]) => Promise<Reply>;
type ConsumeCommand = ScriptCommand<number[] | -1>;

export interface RedisCounterStoreOptions {
  /** A redis:// URL, or several comma-separated ones for Redis Cluster seed nodes. */
  url: string;
  prefix: string;
  /** Per-command timeout: a slow Redis is treated as a dead one rather than stalling every Check. */
  timeoutMs: number;
  /**
   * A consume batch replied after it had timed out: `discarded` when Redis ran it past its deadline (nothing counted),
   * `evaluated` when it ran in time and only its reply was late (its counts stand, though its Checks were answered
   * from the failure mode).
   */
  onLateReply?: (outcome: 'discarded' | 'evaluated') => void;
}

/** How often Redis's clock is read: the offset to it, and whether scripts run at all. */
const clockSyncIntervalMs = 1_000;

/**
 * `reply`, or a timeout error if it has not settled `timeoutMs` after now. The verdict waits for the poll phase of the
 * event loop (setImmediate) after the timer fires: after this process stalled, the timer is overdue and runs first,
 * while a reply that arrived in the meantime is still unread in the socket. It was Node that was slow, not Redis.
 * `onLate` gets a reply that comes after the timeout was declared.
 */
function withinTimeout<T>(reply: Promise<T>, timeoutMs: number, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let decided = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (decided) return;
          decided = true;
          reject(new Error(`command timed out after ${timeoutMs} ms`));
        }),
      timeoutMs,
    );
    reply.then(
      (value) => {
        if (decided) return onLate?.(value);
        decided = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        if (decided) return;
        decided = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Checks per EVALSHA at most: bounds how long one script holds Redis. */
const maxBatch = 64;

/** Distinct strings in first-use order, each with its 1-based index (how the script refers to them). */
class IndexedStrings {
  readonly items: string[] = [];
  private readonly indexes = new Map<string, number>();

  /** The index of `item`, adding it on first use. */
  indexOf(item: string): number {
    let index = this.indexes.get(item);
    if (index === undefined) {
      index = this.items.push(item);
      this.indexes.set(item, index);
    }
    return index;
  }
}

interface ConsumeBatch {
  /** Distinct counter keys, in KEYS order. */
  keys: IndexedStrings;
  /** Distinct request shapes (see consumeScript). */
  shapes: IndexedStrings;
  /** Per limit set: shape index, its counters' KEYS indexes (see consumeScript). */
  sets: number[];
  setCount: number;
  /** Per request: now, limit set index (so the batch holds args.length / 2 requests). */
  args: number[];
  /**
   * The index of each limit set already in this batch, by its id (ConsumeRequest.limitSetId), for its scope and while
   * `now` stays within the same sliding windows (its keys name them): a key's repeated Check is two numbers.
   */
  setsInBatch: Map<string, { scope: string; set: number; from: number; until: number }>;
  /** Where the next request's part of the reply starts. */
  replyLength: number;
  /** The script's reply, which each request reads its part of; settled by send(). */
  reply: Promise<number[]>;
  settle: (reply: Promise<number[]>) => void;
}

/** A limit's counter keys in one window (a period's start for a period or wallet limit), in consumeScript's order. */
interface LimitCounters {
  scope: string;
  window: number;
  first: string;
  second: string | undefined;
}

function newBatch(): ConsumeBatch {
  let settle!: (reply: Promise<number[]>) => void;
  const reply = new Promise<number[]>((resolve) => (settle = resolve));
  return { keys: new IndexedStrings(), shapes: new IndexedStrings(), sets: [], setCount: 0, args: [], setsInBatch: new Map(), replyLength: 0, reply, settle };
}

/** One request's outcomes, from its part of the reply starting at `at`. */
function readResult(request: ConsumeRequest, reply: number[], at: number): ConsumeResult {
  const outcomes: LimitOutcome[] = request.limits.map((limit, i) => {
    const allowed = reply[at + 1 + i * 4] === 1;
    const remaining = reply[at + 2 + i * 4]!;
    return {
      name: limit.name,
      allowed,
      // A wallet's `limit` is its balance before the request (evaluateWallet).
      limit: limit.kind === 'wallet' ? (allowed ? remaining + limit.cost : remaining) : limit.limit,
      remaining,
      resetMs: reply[at + 3 + i * 4]!,
      retryAfterMs: reply[at + 4 + i * 4]!,
    };
  });
  return { allowed: reply[at] === 1, outcomes };
}

export class RedisCounterStore implements CounterStore {
  readonly client: Redis | Cluster;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly onLateReply: (outcome: 'discarded' | 'evaluated') => void;
  /** Consume requests waiting for this event-loop turn's flush, by batch group. */
  private readonly pending = new Map<string, ConsumeBatch>();
  private flushScheduled = false;
  /** Each compiled limit set's shape (see shapeOf), for as long as its limits are in use. */
  private readonly shapes = new WeakMap<readonly Limit[], string>();
  /** Each compiled limit's counter keys in its current window (see countersOf), for as long as the limit is in use. */
  private readonly counters = new WeakMap<Limit, LimitCounters>();
  /** Redis Cluster runs a script on one slot, so a batch there holds one scope (hash tag); one server takes all. */
  private readonly batchPerScope: boolean;
  /**
   * Redis's clock relative to ours, for the deadline each consume batch carries. In a Cluster it is read from any one
   * node: the nodes' clocks must agree (NTP) to well within the timeout.
   */
  private readonly redisClock = new RedisClockOffset();
  private clockSync: Promise<void> | undefined;
  private readonly clockSyncTimer: NodeJS.Timeout;
  /** Whether the latest script (consume batch or clock read) got its reply in time. */
  private lastScriptAnswered = false;

  constructor(options: RedisCounterStoreOptions) {
    this.prefix = options.prefix;
    this.timeoutMs = options.timeoutMs;
    this.onLateReply = options.onLateReply ?? (() => {});
    this.client = connectRedis(options.url);
    this.batchPerScope = this.client instanceof Cluster;
    this.client.on('ready', () => void this.syncClock());
    this.client.defineCommand('tollgateConsume', { lua: consumeScript });
    this.client.defineCommand('tollgateRebaseWallet', { lua: rebaseWalletScript });
    this.client.defineCommand('tollgateTime', { lua: timeScript, numberOfKeys: 0 });
    this.clockSyncTimer = setInterval(() => void this.syncClock(), clockSyncIntervalMs);
    this.clockSyncTimer.unref();
  }

  /**
   * Resolves once connected and Redis's clock is known (the offline queue is off, so commands sent earlier fail), or
   * false after about timeoutMs.
   */
  async ready(timeoutMs = 2_000): Promise<boolean> {
    const giveUpAt = performance.now() + timeoutMs;
    const connected =
      this.client.status === 'ready' ||
      (await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          this.client.off('ready', onReady);
          resolve(false);
        }, timeoutMs);
        const onReady = () => {
          clearTimeout(timer);
          resolve(true);
        };
        this.client.once('ready', onReady);
      }));
    // A busy start may need more than one read within the command timeout.
    while (connected && performance.now() < giveUpAt) {
      await this.syncClock();
      if (this.redisClock.known) break;
      await sleep(this.timeoutMs);
    }
    return this.redisClock.known;
  }

  /** False while Redis is disconnected or its scripts go unanswered: every consume would fail. */
  get available(): boolean {
    return this.client.status === 'ready' && this.redisClock.known && this.lastScriptAnswered;
  }

  /** Reads Redis's clock once, unless a read is under way. */
  private syncClock(): Promise<void> {
    this.clockSync ??= (async () => {
      const command = (this.client as unknown as { tollgateTime: ScriptCommand<[string, string]> }).tollgateTime;
      const sentAt = performance.now();
      try {
        const [seconds, micros] = await withinTimeout(command.call(this.client, 0), this.timeoutMs);
        this.redisClock.record(sentAt, Number(seconds) * 1000 + Number(micros) / 1000, performance.now());
        this.lastScriptAnswered = true;
      } catch {
        this.lastScriptAnswered = false;
      } finally {
        this.clockSync = undefined;
      }
    })();
    return this.clockSync;
  }

  consume(request: ConsumeRequest): Promise<ConsumeResult> {
    const group = this.batchPerScope ? request.scope : '';
    let batch = this.pending.get(group);
    if (!batch) {
      batch = newBatch();
      this.pending.set(group, batch);
    }
    const known = request.limitSetId === undefined ? undefined : batch.setsInBatch.get(request.limitSetId);
    const reusable = known && known.scope === request.scope && known.from <= request.now && request.now < known.until;
    batch.args.push(request.now, reusable ? known.set : this.addLimitSet(batch, request));
    const at = batch.replyLength;
    batch.replyLength += 1 + 4 * request.limits.length;
    // One promise per batch, read by each request: no promise, resolvers or record of its own to make per Check.
    const answer = batch.reply.then((reply) => readResult(request, reply, at));
    if (batch.args.length / 2 >= maxBatch) {
      this.pending.delete(group);
      this.send(batch);
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return answer;
  }

  /** Adds a request's limit set (its shape and counters) to the batch; returns its index. */
  private addLimitSet(batch: ConsumeBatch, request: ConsumeRequest): number {
    const { sets, keys } = batch;
    const compiled = request.limitSetId !== undefined;
    sets.push(batch.shapes.indexOf(this.shapeOf(request)));
    // The span of `now` in which the sliding windows, and so the keys, stay the same.
    let from = -Infinity;
    let until = Infinity;
    for (const limit of request.limits) {
      const counters = this.countersOf(limit, request.scope, request.now, compiled);
      if (limit.kind === 'sliding') {
        from = Math.max(from, counters.window * limit.windowMs);
        until = Math.min(until, (counters.window + 1) * limit.windowMs);
      }
      sets.push(keys.indexOf(counters.first));
      if (counters.second !== undefined) sets.push(keys.indexOf(counters.second));
    }
    const set = ++batch.setCount;
    if (compiled) batch.setsInBatch.set(request.limitSetId!, { scope: request.scope, set, from, until });
    return set;
  }

  /**
   * A limit's counter keys at `now` (see consumeScript for which). A compiled limit's are kept, by the limit, until its
   * window moves on: most Checks then name their counters with strings already built and hashed.
   */
  private countersOf(limit: Limit, scope: string, now: number, compiled: boolean): LimitCounters {
    const window = limit.kind === 'sliding' ? slidingWindowIndex(now, limit.windowMs) : limit.periodStart;
    const known = compiled ? this.counters.get(limit) : undefined;
    if (known && known.window === window && known.scope === scope) return known;
    let counters: LimitCounters;
    if (limit.kind === 'sliding') {
      // The window just ended is the previous one now: its key is the one already built.
      const previous = known && known.window === window - 1 && known.scope === scope ? known.second! : counterKey(this.prefix, scope, limit.name, window - 1);
      counters = { scope, window, first: previous, second: counterKey(this.prefix, scope, limit.name, window) };
    } else if (limit.kind === 'wallet') {
      counters = { scope, window, first: walletKey(this.prefix, scope, limit.name), second: counterKey(this.prefix, scope, limit.spentName, window) };
    } else {
      counters = { scope, window, first: counterKey(this.prefix, scope, limit.name, window), second: undefined };
    }
    if (compiled) this.counters.set(limit, counters);
    return counters;
  }

  /** The shape of a request's limits (see consumeScript); a compiled limit set's is worked out once and kept. */
  private shapeOf(request: ConsumeRequest): string {
    let shape = request.limitSetId === undefined ? undefined : this.shapes.get(request.limits);
    if (shape !== undefined) return shape;
    shape = String(request.limits.length);
    for (const limit of request.limits) {
      if (limit.kind === 'sliding') shape += `,s,${limit.limit},${limit.cost},${limit.windowMs},1`;
      else if (limit.kind === 'wallet') shape += `,w,0,${limit.cost},${limit.periodEnd},1`;
      else shape += `,p,${limit.limit},${limit.cost},${limit.periodEnd},${limit.enforce ? 1 : 0}`;
    }
    if (request.limitSetId !== undefined) this.shapes.set(request.limits, shape);
    return shape;
  }

  /** Sends every batch collected since the last flush: the Checks of one event-loop turn. */
  private readonly flush = () => {
    this.flushScheduled = false;
    for (const batch of this.pending.values()) this.send(batch);
    this.pending.clear();
  };

  private send(batch: ConsumeBatch): void {
    const requests = batch.args.length / 2;
    const sentAt = performance.now();
    const deadline = this.redisClock.deadline(sentAt, this.timeoutMs);
    if (deadline === undefined) {
      batch.settle(Promise.reject(new CounterStoreUnavailable(new Error("Redis's clock is not known yet"))));
      return;
    }
    // The Buffer variant returns the reply as parsed: all integers, which the plain one would copy element by element
    // only to turn any Buffer among them into a string.
    const command = (this.client as unknown as { tollgateConsumeBuffer: ConsumeCommand }).tollgateConsumeBuffer;
    // One comma-joined argument: fewer RESP bulk strings to build and parse (the script splits it).
    const reply = command.call(
      this.client,
      batch.keys.items.length,
      ...batch.keys.items,
      `${batch.shapes.items.length},${batch.shapes.items.join(',')},${batch.setCount},${batch.sets.join(',')},${requests},${batch.args.join(',')}`,
      deadline.toFixed(3),
    );
    batch.settle(
      withinTimeout(reply, this.timeoutMs, (late) => this.onLateReply(late === -1 ? 'discarded' : 'evaluated'))
        .then((values) => {
          if (values === -1) {
            // In time for us, too late by Redis's clock: it was slow, or its clock moved; read it again.
            void this.syncClock();
            throw new Error('Redis ran the batch after its deadline');
          }
          // A reply without every request's part (a proxy or a Redis-alike answering differently) is a store fault.
          if (!Array.isArray(values) || values.length !== batch.replyLength) throw new Error(`unexpected reply to a batch of ${requests} requests`);
          this.lastScriptAnswered = true;
          return values;
        })
        .catch((error: unknown) => {
          this.lastScriptAnswered = false;
          throw new CounterStoreUnavailable(error);
        }),
    );
  }

  async periodUsage(scope: string, name: string, periodStart: number): Promise<number> {
    try {
      return Number((await withinTimeout(this.client.get(counterKey(this.prefix, scope, name, periodStart)), this.timeoutMs)) ?? 0);
    } catch (error) {
      throw new CounterStoreUnavailable(error);
    }
  }

  async rebaseWallet(scope: string, rebase: WalletRebase): Promise<number> {
    const keys = [
      walletKey(this.prefix, scope, rebase.name),
      ...rebase.unsettled.map((counter) => counterKey(this.prefix, scope, counter.spentName, counter.periodStart)),
    ];
    const args = [String(rebase.ledgerBalance), ...rebase.unsettled.map((counter) => String(counter.settled))];
    try {
      const command = (this.client as unknown as { tollgateRebaseWallet: ScriptCommand<number> }).tollgateRebaseWallet;
      return await withinTimeout(command.call(this.client, keys.length, ...keys, ...args), this.timeoutMs);
    } catch (error) {
      throw new CounterStoreUnavailable(error);
    }
  }

  async walletBalance(scope: string, name: string): Promise<number | undefined> {
    try {
      const value = await withinTimeout(this.client.get(walletKey(this.prefix, scope, name)), this.timeoutMs);
      return value === null ? undefined : Number(value);
    } catch (error) {
      throw new CounterStoreUnavailable(error);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.clockSyncTimer);
    this.client.disconnect();
  }
}
