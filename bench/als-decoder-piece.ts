/**
 * The ALS decoder as a piece (Tollgate issue 22): src/grpc/als-decoder.ts against protobufjs decoding the same bytes,
 * in the same run, so that a dependency bump or a change that undoes the gain shows. Two baselines: protobufjs's
 * reflection decoder (Type.decode, what a generic decoder costs) and @grpc/proto-loader's request deserializer
 * (decode plus toObject with the options src/grpc/protos.ts uses: what grpc-js would hand a handler).
 * The message: one StreamAccessLogsMessage of `entriesPerMessage` HTTP entries as Envoy sends them for Checked
 * calls, each with the Check's signed dynamic metadata and a few response headers.
 * Standalone: `npx tsx bench/als-decoder-piece.ts`.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { decodeHttpAccessLogEntry, decodeStreamAccessLogsMessage } from '../src/grpc/als-decoder.js';
import { loaderOptions, protoDir } from '../src/grpc/protos.js';
import { httpEntry } from '../test/support/access-log.js';
import { comparePieces, pieceTable, type PieceResult } from './piece-timing.js';

const entriesPerMessage = 100;
const alsProto = 'envoy/service/accesslog/v3/als.proto';

export interface AlsDecoderPieceResult extends PieceResult {
  entriesPerMessage: number;
  messageBytes: number;
}

function sampleMessage(): Buffer {
  const definition = protoLoader.loadSync(alsProto, loaderOptions);
  const method = (definition['envoy.service.accesslog.v3.AccessLogService'] as unknown as Record<string, { requestSerialize(value: unknown): Buffer }>).StreamAccessLogs!;
  const entries = Array.from({ length: entriesPerMessage }, (_, i) =>
    httpEntry({
      requestId: `0f6c9a4e-3b1d-4c2a-9e7f-${String(i).padStart(12, '0')}`,
      startMs: 1_796_000_000_000 + i * 7,
      status: i % 10 === 0 ? 429 : 200,
      responseHeaders: { 'content-type': 'application/json', 'x-envoy-upstream-service-time': String(3 + (i % 9)) },
      authz: {
        customer_id: `cus_${i % 37}`,
        subscription_id: `sub_${i % 37}`,
        plan_id: 'pro',
        product_id: 'petstore',
        endpoint_id: i % 3 === 0 ? 'create-pet' : 'list-pets',
        key_id: `key_${i % 53}`,
        weight: 1,
        period_start: 1_793_491_200_000,
        decision: 'allow',
        usage_id: `u_${i.toString(36).padStart(22, '0')}`,
        usage_sig: 'mV1m3oQfYb6cX2Zq0w8y9A',
      },
    }),
  );
  return method.requestSerialize({ identifier: { node: { id: 'envoy-bench', cluster: 'edge' }, log_name: 'tollgate' }, http_logs: { log_entry: entries } });
}

function protobufjsType(): protobuf.Type {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoDir, target);
  root.loadSync(alsProto, { keepCase: true });
  return root.lookupType('envoy.service.accesslog.v3.StreamAccessLogsMessage');
}

export async function runAlsDecoderPieceBench(options = { rounds: 15, units: 2_000, warmUpUnits: 2_000 }): Promise<AlsDecoderPieceResult> {
  const bytes = sampleMessage();
  const type = protobufjsType();
  const definition = protoLoader.loadSync(alsProto, loaderOptions);
  const deserialize = (definition['envoy.service.accesslog.v3.AccessLogService'] as unknown as Record<string, { requestDeserialize(bytes: Buffer): unknown }>).StreamAccessLogs!
    .requestDeserialize;
  // The same bytes must mean the same entries to all three, or the comparison is of different work.
  // Ours locates the entries, then decodes each (what metering's general path does; its fast path reads less).
  const decodeAll = () => {
    const located = decodeStreamAccessLogsMessage(bytes).http_logs!;
    const entries = [];
    for (let i = 0; i < located.spans.length; i += 2) entries.push(decodeHttpAccessLogEntry(located.bytes, located.spans[i]!, located.spans[i + 1]!));
    return entries;
  };
  const ours = decodeAll();
  const theirs = type.decode(bytes) as unknown as { http_logs: { log_entry: unknown[] } };
  if (ours.length !== entriesPerMessage || theirs.http_logs.log_entry.length !== entriesPerMessage) {
    throw new Error('the decoders disagree on the sample message');
  }
  let sink = 0;
  const result = await comparePieces(
    [
      { name: 'protobufjs Type.decode (baseline)', run: () => void (sink += (type.decode(bytes) as unknown as { http_logs: { log_entry: unknown[] } }).http_logs.log_entry.length) },
      { name: '@grpc/proto-loader requestDeserialize (decode + toObject)', run: () => void (sink += (deserialize(bytes) as { http_logs: { log_entry: unknown[] } }).http_logs.log_entry.length) },
      { name: "Tollgate's decoder (src/grpc/als-decoder.ts)", run: () => void (sink += decodeAll().length) },
    ],
    options,
  );
  if (sink === 0) throw new Error('nothing decoded');
  return { ...result, entriesPerMessage, messageBytes: bytes.length };
}

export function alsDecoderSection(result: AlsDecoderPieceResult): string {
  return `## Piece: ALS decoder vs protobufjs

One StreamAccessLogsMessage of ${result.entriesPerMessage} HTTP entries (${result.messageBytes} bytes), each with the Check's
signed dynamic metadata, decoded ${result.unitsPerRound} times per contender per round, ${result.rounds} interleaved rounds;
ratios are the median of per-round ratios (\`bench/als-decoder-piece.ts\`).

${pieceTable(result, 'messages', { factor: result.entriesPerMessage, label: 'entry' })}
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await runAlsDecoderPieceBench();
  console.log(alsDecoderSection(result));
}
