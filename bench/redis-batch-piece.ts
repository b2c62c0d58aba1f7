/**
 * The Redis batch as a piece (Tollgate issue 22): src/counters/redis.ts, which sends every consume of an event-loop
 * turn as one EVALSHA, against one EVALSHA per call, in the same run. Each unit is a burst of `inFlight` concurrent
 * consumes (as many Checks as the Check bench keeps in flight) over `scopes` customers, each with a per-minute
 * sliding window and a monthly quota, all allowed (the steady state). The baseline, plain ioredis: a minimal per-call
 * script (the counters read, compared, INCRBY and PEXPIRE) sent as its own EVALSHA per call through ioredis's
 * defineCommand, as a rate limiter written directly on ioredis does. (The store with each call in its own event-loop
 * turn was left out: the turns themselves, not Redis, would dominate what it measures.)
 * Keys live under a prefix of the run and are removed at the end. Standalone: `npx tsx bench/redis-batch-piece.ts`.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { RedisCounterStore } from '../src/counters/redis.js';
import type { Limit } from '../src/counters/window.js';
import { comparePieces, pieceTable, type PieceResult } from './piece-timing.js';
import { unlinkKeys } from '../test/support/test-run.js';

const redisUrl = process.env.TOLLGATE_BENCH_REDIS_URL ?? process.env.TOLLGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const inFlight = 128;
const scopes = 100;
const minute = 60_000;
const periodStart = Date.UTC(2026, 10, 1);
const periodEnd = Date.UTC(2026, 11, 1);

export interface RedisBatchPieceResult extends PieceResult {
  inFlight: number;
  scopes: number;
}

/** The per-call script of the plain-ioredis baseline: KEYS previous window, current window, quota. */
const perCallScript = `
local now, w, limit, cost, quota, quotaTtl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
local elapsed = now - math.floor(now / w) * w
local estimated = (previous * (w - elapsed)) / w + current
if estimated + cost > limit or used + cost > quota then return {0, 0, 0} end
redis.call('INCRBY', KEYS[2], cost)
redis.call('PEXPIRE', KEYS[2], 2 * w)
redis.call('INCRBY', KEYS[3], cost)
redis.call('PEXPIRE', KEYS[3], quotaTtl)
return {1, math.floor(limit - estimated - cost), quota - used - cost}
`;

type PerCall = (keyCount: number, ...keysThenArgs: (string | number)[]) => Promise<number[]>;

export async function runRedisBatchPieceBench(options = { rounds: 15, units: 200, warmUpUnits: 50 }): Promise<RedisBatchPieceResult> {
  const prefix = `tgbench_${randomBytes(6).toString('hex')}`;
  // High limits: every call is allowed and counted, as in steady traffic.
  const limits: Limit[] = [
    { kind: 'sliding', name: 'rl', limit: 1e12, windowMs: minute, cost: 1 },
    { kind: 'period', name: 'q', limit: 1e12, cost: 1, periodStart, periodEnd, enforce: true },
  ];
  const batched = new RedisCounterStore({ url: redisUrl, prefix: `${prefix}_batched`, timeoutMs: 5_000 });
  const plain = new Redis(redisUrl);
  plain.defineCommand('perCallConsume', { lua: perCallScript });
  const perCall = (plain as unknown as { perCallConsume: PerCall }).perCallConsume.bind(plain);
  const admin = new Redis(redisUrl);
  try {
    if (!(await batched.ready())) throw new Error(`Redis at ${redisUrl} is not answering`);
    let now = periodStart + 1_000;
    const scopeOf = (i: number) => `s${i % scopes}`;
    const result = await comparePieces(
      [
        {
          name: 'plain ioredis, one EVALSHA per call (baseline)',
          run: async () => {
            now += 1;
            const window = Math.floor(now / minute);
            await Promise.all(
              Array.from({ length: inFlight }, (_, i) => {
                const scope = `${prefix}_plain:{${scopeOf(i)}}`;
                return perCall(3, `${scope}:rl:${window - 1}`, `${scope}:rl:${window}`, `${scope}:q:${periodStart}`, now, minute, 1e12, 1, 1e12, periodEnd - now + 86_400_000);
              }),
            );
          },
        },
        {
          name: 'RedisCounterStore, batched (src/counters/redis.ts)',
          run: async () => {
            now += 1;
            await Promise.all(Array.from({ length: inFlight }, (_, i) => batched.consume({ scope: scopeOf(i), now, limits, limitSetId: 'bench-limits' })));
          },
        },
      ],
      options,
    );
    return { ...result, inFlight, scopes };
  } finally {
    await batched.close();
    plain.disconnect();
    await unlinkKeys(admin, `${prefix}*`);
    admin.disconnect();
  }
}

export function redisBatchSection(result: RedisBatchPieceResult): string {
  return `## Piece: Redis batch vs one EVALSHA per call

Bursts of ${result.inFlight} concurrent consumes over ${result.scopes} customers (a sliding window and a monthly quota each, all
allowed), ${result.unitsPerRound} bursts per contender per round, ${result.rounds} interleaved rounds; ratios are the median of
per-round ratios (\`bench/redis-batch-piece.ts\`). Redis shares the machine's cores with this process.

${pieceTable({ ...result, contenders: result.contenders.map((c) => ({ ...c, unitsPerSecond: c.unitsPerSecond * result.inFlight })) }, 'calls')}
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await runRedisBatchPieceBench();
  console.log(redisBatchSection(result));
}
