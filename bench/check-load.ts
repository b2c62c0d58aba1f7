/**
 * A load generator for Checks with many different request bodies (h2load sends one): plays Envoy's ext_authz
 * client over `connections` HTTP/2 connections with up to `streams` Checks in flight on each, cycling through the
 * framed CheckRequests in a file (each preceded by its 4-byte length), as fast as answered or paced at `rps`.
 * Usage: tsx bench/check-load.ts '<json options>'; prints one JSON line with the result when done.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { readFileSync } from 'node:fs';

export interface CheckLoadOptions {
  port: number;
  bodiesFile: string;
  connections: number;
  streams: number;
  durationS: number;
  warmUpS: number;
  /** Requests per second over all connections; unset, as fast as the server answers. */
  rps?: number;
}

export interface CheckLoadResult {
  requestsPerSecond: number;
  succeeded: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
}

/** The frames of a bodies file, written by `writeBodies`. */
function readBodies(file: string): Buffer[] {
  const all = readFileSync(file);
  const bodies: Buffer[] = [];
  for (let at = 0; at < all.length; ) {
    const length = all.readUInt32BE(at);
    bodies.push(all.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return bodies;
}

/** Writes framed CheckRequests as a bodies file: each preceded by its length. */
export function encodeBodies(frames: Buffer[]): Buffer {
  return Buffer.concat(
    frames.flatMap((frame) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(frame.length);
      return [length, frame];
    }),
  );
}

async function run(options: CheckLoadOptions): Promise<CheckLoadResult> {
  const bodies = readBodies(options.bodiesFile);
  const headers = {
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: '/envoy.service.auth.v3.Authorization/Check',
    [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    te: 'trailers',
  };
  const sessions: ClientHttp2Session[] = await Promise.all(
    Array.from({ length: options.connections }, () => new Promise<ClientHttp2Session>((resolve, reject) => {
      const session = connect(`http://127.0.0.1:${options.port}`);
      session.once('connect', () => resolve(session));
      session.once('error', reject);
    })),
  );
  const latencies = new Float64Array(16_000_000);
  let recorded = 0;
  let succeeded = 0;
  let failed = 0;
  let next = 0;
  let measuring = false;
  let running = true;
  const inFlight = new Array<number>(sessions.length).fill(0);
  let allowance = Infinity;

  const send = (index: number) => {
    const body = bodies[next++ % bodies.length]!;
    const started = performance.now();
    inFlight[index]!++;
    const stream = sessions[index]!.request(headers, { endStream: false });
    let status = '';
    stream.on('trailers', (trailers) => (status = String(trailers['grpc-status'] ?? '')));
    stream.on('response', (head) => {
      if (head['grpc-status'] !== undefined) status = String(head['grpc-status']);
    });
    stream.on('data', () => {});
    stream.on('error', () => {});
    stream.once('close', () => {
      inFlight[index]!--;
      if (measuring) {
        if (status === '0') {
          succeeded++;
          if (recorded < latencies.length) latencies[recorded++] = performance.now() - started;
        } else failed++;
      }
      if (running) fill(index);
    });
    stream.end(body);
  };
  const fill = (index: number) => {
    while (inFlight[index]! < options.streams && allowance >= 1) {
      allowance--;
      send(index);
    }
  };
  let pacer: NodeJS.Timeout | undefined;
  if (options.rps) {
    allowance = 0;
    const tickMs = 5;
    pacer = setInterval(() => {
      allowance = Math.min(allowance + (options.rps! * tickMs) / 1000, options.connections * options.streams);
      sessions.forEach((_, index) => fill(index));
    }, tickMs);
  } else sessions.forEach((_, index) => fill(index));

  await new Promise((resolve) => setTimeout(resolve, options.warmUpS * 1000));
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, options.durationS * 1000));
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  running = false;
  clearInterval(pacer);
  for (const session of sessions) session.close();
  const sorted = latencies.subarray(0, recorded).sort();
  const percentile = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  return { requestsPerSecond: (succeeded + failed) / seconds, succeeded, failed, p50Ms: percentile(50), p99Ms: percentile(99) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run(JSON.parse(process.argv[2]!) as CheckLoadOptions);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
