import { Cluster, Redis } from 'ioredis';
import { counterKey, CounterStoreUnavailable, walletKey, type ConsumeRequest, type ConsumeResult, type CounterStore } from './store.js';
import { slidingWindowIndex, type LimitOutcome, type WalletRebase } from './window.js';

/**
 * Checks every limit of one request and, only if all allow, counts them: one EVALSHA, one round trip.
 * It mirrors evaluateSliding/evaluatePeriod/evaluateWallet in window.ts operation for operation (Lua numbers are
 * IEEE doubles like JS numbers), so both stores give the same answers; the contract tests hold them to that.
 * ARGV[1], comma-separated: now, count, then per limit: kind ('s' sliding | 'p' period | 'w' wallet), limit,
 * cost, windowMs|periodEnd, enforce.
 * KEYS: per sliding limit the previous and current window counters; per period limit its counter; per wallet its
 * balance and its period spend counter.
 * Wallet amounts go to Redis as the argument strings: Lua would print a large number as "1e+15", which INCRBY
 * refuses.
 */
const consumeScript = `
local argv = {}
for token in string.gmatch(ARGV[1], '[^,]+') do argv[#argv + 1] = token end
local now = tonumber(argv[1])
local count = tonumber(argv[2])
local out = {}
local writes = {}
local allAllowed = 1
local k = 1
for i = 0, count - 1 do
  local base = 3 + i * 5
  local kind = argv[base]
  local limit = tonumber(argv[base + 1])
  local cost = tonumber(argv[base + 2])
  local span = tonumber(argv[base + 3])
  local enforce = argv[base + 4] == '1'
  local allowed, remaining, reset, retry
  if kind == 's' then
    local w = span
    local previous = tonumber(redis.call('GET', KEYS[k]) or '0')
    local current = tonumber(redis.call('GET', KEYS[k + 1]) or '0')
    local elapsed = now - math.floor(now / w) * w
    local estimated = (previous * (w - elapsed)) / w + current
    allowed = estimated + cost <= limit
    remaining = 0
    if allowed then remaining = math.max(0, math.floor(limit - estimated - cost)) end
    local added = 0
    if allowed then added = cost end
    if current + added > 0 then reset = 2 * w - elapsed elseif previous > 0 then reset = w - elapsed else reset = 0 end
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
    writes[#writes + 1] = {'INCRBY', KEYS[k + 1], cost, 2 * w}
    k = k + 2
  elseif kind == 'w' then
    local balance = tonumber(redis.call('GET', KEYS[k]) or '0')
    allowed = balance > 0 and cost <= balance
    if allowed then remaining = balance - cost else remaining = math.max(0, balance) end
    reset = 0
    retry = 0
    if cost > 0 then
      writes[#writes + 1] = {'DECRBY', KEYS[k], argv[base + 2], nil}
      writes[#writes + 1] = {'INCRBY', KEYS[k + 1], argv[base + 2], math.max(0, span - now) + 86400000}
    end
    k = k + 2
  else
    local used = tonumber(redis.call('GET', KEYS[k]) or '0')
    local fits = used + cost <= limit
    allowed = fits or not enforce
    local untilEnd = math.max(0, span - now)
    if allowed then remaining = math.max(0, limit - used - cost) else remaining = math.max(0, limit - used) end
    reset = untilEnd
    retry = 0
    if not allowed then retry = untilEnd end
    writes[#writes + 1] = {'INCRBY', KEYS[k], cost, untilEnd + 86400000}
    k = k + 1
  end
  if not allowed then allAllowed = 0 end
  out[#out + 1] = allowed and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
if allAllowed == 1 then
  for _, write in ipairs(writes) do
    redis.call(write[1], write[2], write[3])
    if write[4] then redis.call('PEXPIRE', write[2], write[4]) end
  end
end
table.insert(out, 1, allAllowed)
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

/** With no fixed key count, ioredis takes the number of keys first, then the keys, then the arguments. */
type ScriptCommand<Reply> = (keyCount: number, ...keysThenArgs: (string | number)[]) => Promise<Reply>;
type ConsumeCommand = ScriptCommand<number[]>;

export interface RedisCounterStoreOptions {
  /** A redis:// URL, or several comma-separated ones for Redis Cluster seed nodes. */
  url: string;
  prefix: string;
  /** Per-command timeout: a slow Redis is treated as a dead one rather than stalling every Check. */
  timeoutMs: number;
}

export class RedisCounterStore implements CounterStore {
  readonly client: Redis | Cluster;
  private readonly prefix: string;

  constructor(options: RedisCounterStoreOptions) {
    this.prefix = options.prefix;
    const common = {
      // Fail at once while disconnected instead of queueing Checks behind a dead connection.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      // Concurrent Checks share one write and one read syscall per event-loop tick.
      enableAutoPipelining: true,
      lazyConnect: false,
    };
    const urls = options.url.split(',').map((url) => url.trim());
    this.client =
      urls.length > 1
        ? new Cluster(urls.map((url) => ({ host: new URL(url).hostname, port: Number(new URL(url).port || 6379) })), {
            enableOfflineQueue: false,
            enableAutoPipelining: true,
            redisOptions: { ...common, password: new URL(urls[0]!).password || undefined },
          })
        : new Redis(urls[0]!, common);
    // Errors surface per command; the connection keeps reconnecting in the background.
    this.client.on('error', () => {});
    this.client.defineCommand('tollgateConsume', { lua: consumeScript });
    this.client.defineCommand('tollgateRebaseWallet', { lua: rebaseWalletScript });
  }

  /** Resolves once connected (the offline queue is off, so commands sent earlier fail), or false after timeoutMs. */
  async ready(timeoutMs = 2_000): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.client.once('ready', onReady);
    });
  }

  async consume(request: ConsumeRequest): Promise<ConsumeResult> {
    const keys: string[] = [];
    const args: (string | number)[] = [request.now, request.limits.length];
    for (const limit of request.limits) {
      if (limit.kind === 'sliding') {
        const index = slidingWindowIndex(request.now, limit.windowMs);
        keys.push(
          counterKey(this.prefix, request.scope, limit.name, index - 1),
          counterKey(this.prefix, request.scope, limit.name, index),
        );
        args.push('s', limit.limit, limit.cost, limit.windowMs, 1);
      } else if (limit.kind === 'wallet') {
        keys.push(
          walletKey(this.prefix, request.scope, limit.name),
          counterKey(this.prefix, request.scope, limit.spentName, limit.periodStart),
        );
        args.push('w', 0, String(limit.cost), limit.periodEnd, 1);
      } else {
        keys.push(counterKey(this.prefix, request.scope, limit.name, limit.periodStart));
        args.push('p', limit.limit, limit.cost, limit.periodEnd, limit.enforce ? 1 : 0);
      }
    }
    let reply: number[];
    try {
      const command = (this.client as unknown as { tollgateConsume: ConsumeCommand }).tollgateConsume;
      // One comma-joined argument: fewer RESP bulk strings to build per Check (the script splits it).
      reply = await command.call(this.client, keys.length, ...keys, args.join(','));
    } catch (error) {
      throw new CounterStoreUnavailable(error);
    }
    const outcomes: LimitOutcome[] = request.limits.map((limit, i) => {
      const allowed = reply[1 + i * 4] === 1;
      const remaining = reply[2 + i * 4]!;
      return {
        name: limit.name,
        allowed,
        // A wallet's `limit` is its balance before the request (evaluateWallet).
        limit: limit.kind === 'wallet' ? (allowed ? remaining + limit.cost : remaining) : limit.limit,
        remaining,
        resetMs: reply[3 + i * 4]!,
        retryAfterMs: reply[4 + i * 4]!,
      };
    });
    return { allowed: reply[0] === 1, outcomes };
  }

  async periodUsage(scope: string, name: string, periodStart: number): Promise<number> {
    try {
      return Number((await this.client.get(counterKey(this.prefix, scope, name, periodStart))) ?? 0);
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
      return await command.call(this.client, keys.length, ...keys, ...args);
    } catch (error) {
      throw new CounterStoreUnavailable(error);
    }
  }

  async walletBalance(scope: string, name: string): Promise<number | undefined> {
    try {
      const value = await this.client.get(walletKey(this.prefix, scope, name));
      return value === null ? undefined : Number(value);
    } catch (error) {
      throw new CounterStoreUnavailable(error);
    }
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
