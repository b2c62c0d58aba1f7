/**
 * The Check's pieces in process, each beside its library baseline where it has one: the CheckRequest decoder against
 * @grpc/proto-loader (protobufjs), the response encoder against protobufjs's encoding of the same response, the
 * decision alone (admit + conclude), and the whole handler over a memory counter store. Over
 * bench/catalog-realistic.yaml with 1,000 keys of 100 customers and every endpoint, as bench/check.ts loads it.
 * Reports ns/op, the median of several rounds: `npx tsx bench/check-pieces.ts [rounds] [operations] [piece]`, where
 * `piece` picks the pieces whose names contain it (e.g. to count one piece's instructions under callgrind). The pieces
 * are exported for other benches.
 */
import { loadCatalogFile } from '../src/catalog/index.js';
import { CheckPlans } from '../src/check/check-plan.js';
import { admit, conclude, type CheckRequestFacts } from '../src/check/decide.js';
import { decodeCheckRequest } from '../src/check/check-request-decoder.js';
import { encodeCheckResponseFrame } from '../src/check/check-response-encoder.js';
import { createCheckHandler } from '../src/check/check-handler.js';
import { memoizePeriods } from '../src/check/index.js';
import type { Decision } from '../src/check/decision.js';
import { MemoryCounterStore, ResilientCounterStore, type ConsumeResult } from '../src/counters/index.js';
import { generateApiKey } from '../src/identity/keys.js';
import { hashApiKey, type Identity, type IdentityCache } from '../src/identity/index.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/index.js';
import { periodContaining } from '../src/rating/index.js';
import { referenceCheckResponse } from '../test/support/envoy-wire.js';
import { testUsageIdentity } from '../test/support/usage.js';
import { checkMethod, checkRequestFrame, realisticRequests } from './check-requests.js';
import { comparePieces, pieceTable, type PieceResult } from './piece-timing.js';

const customers = 100;
const keysPerCustomer = 10;
const requestCount = 4_096;

/** One piece: `run(i)` does the i-th operation (inputs cycle over the keys and endpoints). */
export interface Piece {
  name: string;
  run: (i: number) => unknown;
  /** For the handler: operations that finish later; `drain` waits for them. */
  drain?: () => Promise<void>;
}

/** The fixtures: the realistic catalog, its keys, and Envoy-shaped CheckRequests over all of them. */
export function checkFixtures() {
  const catalog = loadCatalogFile('bench/catalog-realistic.yaml');
  const anchor = Date.UTC(2026, 10, 3);
  const byHash = new Map<string, Identity>();
  const keys: string[] = [];
  for (let c = 0; c < customers; c++) {
    const customerId = `cus_${c}`;
    const subscription = { id: `sub_${c}`, customerId, productId: 'shop', planId: 'growth', status: 'active' as const, periodAnchor: anchor };
    const customer = { id: customerId, status: 'active' as const, overdue: false };
    for (let k = 0; k < keysPerCustomer; k++) {
      const { key, hash } = generateApiKey();
      keys.push(key);
      byHash.set(hash, { key: { id: `key_${c}_${k}`, customerId, subscriptionId: subscription.id, status: 'active' }, subscription, customer });
    }
  }
  const identities = { lookup: (hash: string) => byHash.get(hash) } as unknown as IdentityCache;
  const method = checkMethod();
  const bodies = Array.from({ length: requestCount }, (_, n) => {
    const [verb, path] = realisticRequests[n % realisticRequests.length]!(n);
    return checkRequestFrame(method, keys[(n * 7919) % keys.length]!, verb, path).subarray(5);
  });
  const wires = bodies.map((body) => decodeCheckRequest(body));
  const facts: CheckRequestFacts[] = wires.map((wire) => {
    const http = wire.attributes!.request!.http!;
    return { method: http.method!, host: http.host!, path: http.path!, headers: http.headers!, requestId: http.headers!['x-request-id']! };
  });
  return { catalog, identities, method, bodies, wires, facts };
}

export async function checkPieces(fixtures = checkFixtures()): Promise<Piece[]> {
  const { catalog, identities, method, bodies, wires, facts } = fixtures;
  const n = bodies.length;
  const clock = new ManualClock(Date.UTC(2026, 10, 23, 12));
  const options = { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' };
  const periodOf = memoizePeriods(periodContaining);
  const local = new MemoryCounterStore(clock, 'bench');
  const handler = createCheckHandler({
    catalog: () => catalog,
    identities,
    counters: new ResilientCounterStore(local, 'closed', local, silentLogger),
    clock,
    options,
    periodOf,
    usage: testUsageIdentity,
    metrics: createMetrics(),
    logger: silentLogger,
  });
  // The decisions the handler makes, as the encoders' inputs.
  const decisions = await Promise.all(
    wires.slice(0, 64).map((wire) => new Promise<Decision>((respond) => handler(wire, { respond } as never))),
  );
  if (!decisions.every((decision) => decision.allowed)) throw new Error('the realistic requests must be allowed');
  const resolveKey = (key: string) => identities.lookup(hashApiKey(key));
  const plans = new CheckPlans(catalog, options.headerPrefix);
  let pendingCalls = 0;
  let drained: (() => void) | undefined;
  const call = {
    respond: (decision: Decision) => {
      encodeCheckResponseFrame(decision);
      if (--pendingCalls === 0) drained?.();
    },
  } as never;
  return [
    { name: 'decode: ours', run: (i) => decodeCheckRequest(bodies[i % n]!) },
    { name: 'decode: protobufjs', run: (i) => method.requestDeserialize(bodies[i % n]!) },
    { name: 'encode allow: ours', run: (i) => encodeCheckResponseFrame(decisions[i % decisions.length]!) },
    { name: 'encode allow: protobufjs', run: (i) => method.responseSerialize(referenceCheckResponse(decisions[i % decisions.length]!)) },
    {
      name: 'decide (admit + conclude)',
      run: (i) => {
        const request = facts[i % n]!;
        const admission = admit(request, { plans, options, now: clock.now(), resolveKey, periodOf });
        if (!admission.admitted) throw new Error(`denied: ${admission.decision.message}`);
        return conclude(admission.next, allowedAnswer(admission.next.limits), request, options, catalog.upgradeUrl);
      },
    },
    {
      name: 'handler + memory store + encode',
      run: (i) => {
        pendingCalls++;
        handler(wires[i % n]!, call);
      },
      drain: () => (pendingCalls === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve))),
    },
  ];
}

/** What a store answers when every limit allows, for the decision alone. */
function allowedAnswer(limits: readonly { name: string; kind: string }[]): ConsumeResult {
  return { allowed: true, outcomes: limits.map((limit) => ({ name: limit.name, allowed: true, limit: 1e9, remaining: 1e9 - 1, resetMs: 1_000, retryAfterMs: 0 })) };
}

/** ns/op of `piece` over `operations`, in chunks so that the handler's promises settle between them. */
export async function measure(piece: Piece, operations: number): Promise<number> {
  const chunk = piece.drain ? 64 : operations;
  const started = process.hrtime.bigint();
  for (let done = 0; done < operations; done += chunk) {
    for (let i = done; i < done + chunk; i++) piece.run(i);
    if (piece.drain) await piece.drain();
  }
  return Number(process.hrtime.bigint() - started) / operations;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export interface CheckPiecesResult {
  decode: PieceResult;
  encode: PieceResult;
  /** ns per operation, the median of the rounds: pieces with no library to compare with. */
  alone: Record<string, number>;
}

/** For `npm run bench`: the codecs against protobufjs in interleaved rounds (bench/piece-timing.ts), the rest alone. */
export async function runCheckPiecesBench(options = { rounds: 15, units: 20_000, warmUpUnits: 20_000 }): Promise<CheckPiecesResult> {
  const pieces = await checkPieces();
  const piece = (name: string) => pieces.find((candidate) => candidate.name === name)!;
  const contender = (name: string, label: string) => {
    let i = 0;
    return { name: label, run: () => void piece(name).run(i++) };
  };
  const decode = await comparePieces([contender('decode: protobufjs', '@grpc/proto-loader requestDeserialize (baseline)'), contender('decode: ours', "Tollgate's CheckRequest decoder")], options);
  const encode = await comparePieces([contender('encode allow: protobufjs', 'protobufjs encode of the same response (baseline)'), contender('encode allow: ours', "Tollgate's response encoder")], options);
  const alone: Record<string, number> = {};
  for (const name of ['decide (admit + conclude)', 'handler + memory store + encode']) {
    await measure(piece(name), options.warmUpUnits);
    const figures: number[] = [];
    for (let round = 0; round < options.rounds; round++) figures.push(await measure(piece(name), options.units));
    alone[name] = Math.round(median(figures));
  }
  return { decode, encode, alone };
}

export function checkPiecesSection(result: CheckPiecesResult): string {
  return `## Pieces: the Check's codecs vs protobufjs, the decision and the handler

In process over \`bench/catalog-realistic.yaml\` with ${customers * keysPerCustomer} keys of ${customers} customers and every endpoint
(\`bench/check-pieces.ts\`), ${result.decode.rounds} interleaved rounds of ${result.decode.unitsPerRound} operations; ratios are the median of per-round ratios.

**CheckRequest decoder**

${pieceTable(result.decode, 'requests')}

**Response encoder (allow, with identity headers and signed metadata)**

${pieceTable(result.encode, 'responses')}

**Alone** (no library does this work): ${Object.entries(result.alone)
    .map(([name, ns]) => `${name} ${ns} ns/op`)
    .join('; ')}.
`;
}

async function main() {
  const rounds = Number(process.argv[2] ?? 7);
  const operations = Number(process.argv[3] ?? 100_000);
  const only = process.argv[4];
  const pieces = (await checkPieces()).filter((piece) => only === undefined || piece.name.includes(only));
  for (const piece of pieces) await measure(piece, operations); // warm up
  const figures = new Map<string, number[]>(pieces.map((piece) => [piece.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const piece of pieces) figures.get(piece.name)!.push(await measure(piece, operations));
  }
  const result = Object.fromEntries([...figures].map(([name, values]) => [name, Math.round(median(values))]));
  console.log(JSON.stringify(result));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
