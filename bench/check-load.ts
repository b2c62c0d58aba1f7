/**
 * A load generator for Checks with many different request bodies (h2load sends one): plays Envoy's ext_authz
 * client over `connections` HTTP/2 connections with up to `streams` Checks in flight on each, cycling through the
 * framed CheckRequests of a bodies file (each preceded by its 4-byte length), as fast as answered or paced at `rps`.
 *
 * It speaks HTTP/2 itself, on a plain socket, with every request's header block encoded once: node:http2's client
 * costs about as much CPU per request as the servers measured, and on a shared 2-core machine the client's CPU is
 * taken from the server (with it, a null responder looked only 1.2× faster than grpc-js; with h2load, 2.2×).
 * Usage: tsx bench/check-load.ts '<json options>'; prints one JSON line with the result when done.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

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
  /** Answered with a message (a CheckResponse); failed: trailers only, or reset. */
  succeeded: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
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

const frameType = { data: 0, headers: 1, rstStream: 3, settings: 4, ping: 6, goaway: 7, windowUpdate: 8 } as const;
const flag = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;
const maxWindow = 2 ** 31 - 1;

function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return header;
}

/** HPACK, literal without indexing (RFC 7541 6.2.2), no Huffman: by a static table index, or by a new name. */
function literal(nameOrIndex: number | string, value: string): Buffer {
  const bytes = (text: string) => Buffer.concat([Buffer.from([text.length]), Buffer.from(text)]);
  return typeof nameOrIndex === 'number'
    ? Buffer.concat([nameOrIndex < 15 ? Buffer.from([nameOrIndex]) : Buffer.from([0x0f, nameOrIndex - 15]), bytes(value)])
    : Buffer.concat([Buffer.from([0]), bytes(nameOrIndex), bytes(value)]);
}

const headerBlock = (port: number) =>
  Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table 3 and 6)
    literal(4, '/envoy.service.auth.v3.Authorization/Check'),
    literal(1, `127.0.0.1:${port}`),
    literal(31, 'application/grpc'),
    literal('te', 'trailers'),
  ]);

class Connection {
  private nextStream = 1;
  private buffered = Buffer.alloc(0);
  private readonly started = new Map<number, number>();
  private readonly answered = new Set<number>();
  private received = 0;
  inFlight = 0;

  constructor(
    private readonly socket: Socket,
    private readonly block: Buffer,
    private readonly done: (ok: boolean, startedAt: number) => void,
  ) {
    socket.setNoDelay(true);
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH 0
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE: streams never wait for a WINDOW_UPDATE
    settings.writeUInt32BE(maxWindow, 8);
    socket.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        frameHeader(settings.length, frameType.settings, 0, 0),
        settings,
        this.windowUpdate(maxWindow - 65_535),
      ]),
    );
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  private windowUpdate(increment: number): Buffer {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(increment);
    return Buffer.concat([frameHeader(4, frameType.windowUpdate, 0, 0), payload]);
  }

  /** The frames of one Check: HEADERS, then DATA ending the stream. */
  request(body: Buffer, out: Buffer[]): void {
    const stream = this.nextStream;
    this.nextStream += 2;
    this.started.set(stream, performance.now());
    this.inFlight++;
    out.push(frameHeader(this.block.length, frameType.headers, flag.endHeaders, stream), this.block, frameHeader(body.length, frameType.data, flag.endStream, stream), body);
  }

  write(out: Buffer[]): void {
    if (out.length > 0) this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  private read(chunk: Buffer): void {
    let data = this.buffered.length > 0 ? Buffer.concat([this.buffered, chunk]) : chunk;
    const out: Buffer[] = [];
    let at = 0;
    while (data.length - at >= 9) {
      const length = data.readUIntBE(at, 3);
      if (data.length - at < 9 + length) break;
      const type = data[at + 3]!;
      const flags = data[at + 4]!;
      const stream = data.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = data.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      if (type === frameType.data) {
        this.answered.add(stream);
        this.received += length;
        if (this.received > 2 ** 30) {
          out.push(this.windowUpdate(this.received));
          this.received = 0;
        }
        if (flags & flag.endStream) this.finish(stream, true);
      } else if (type === frameType.headers && flags & flag.endStream) {
        this.finish(stream, this.answered.has(stream));
      } else if (type === frameType.rstStream) {
        this.finish(stream, false);
      } else if (type === frameType.settings && !(flags & flag.ack)) {
        out.push(frameHeader(0, frameType.settings, flag.ack, 0));
      } else if (type === frameType.ping && !(flags & flag.ack)) {
        out.push(frameHeader(8, frameType.ping, flag.ack, 0), Buffer.from(payload));
      }
    }
    this.buffered = at < data.length ? Buffer.from(data.subarray(at)) : Buffer.alloc(0);
    data = Buffer.alloc(0);
    this.write(out);
  }

  private finish(stream: number, ok: boolean): void {
    const startedAt = this.started.get(stream);
    if (startedAt === undefined) return;
    this.started.delete(stream);
    this.answered.delete(stream);
    this.inFlight--;
    this.done(ok, startedAt);
  }

  close(): void {
    this.socket.destroy();
  }
}

async function run(options: CheckLoadOptions): Promise<CheckLoadResult> {
  const bodies = readBodies(options.bodiesFile);
  const block = headerBlock(options.port);
  const latencies = new Float64Array(16_000_000);
  let recorded = 0;
  let succeeded = 0;
  let failed = 0;
  let next = 0;
  let measuring = false;
  let running = true;
  let allowance = options.rps ? 0 : Infinity;
  const connections: Connection[] = [];

  const fill = (connection: Connection) => {
    const out: Buffer[] = [];
    while (running && connection.inFlight < options.streams && allowance >= 1) {
      allowance--;
      connection.request(bodies[next++ % bodies.length]!, out);
    }
    connection.write(out);
  };
  const done = (connection: () => Connection) => (ok: boolean, startedAt: number) => {
    if (measuring) {
      if (ok) {
        succeeded++;
        if (recorded < latencies.length) latencies[recorded++] = performance.now() - startedAt;
      } else failed++;
    }
    // Refilled once the frames read in this turn are all processed, so the new requests go out in one write.
    if (!refills.has(connection())) {
      refills.add(connection());
      if (refills.size === 1) setImmediate(refill);
    }
  };
  const refills = new Set<Connection>();
  const refill = () => {
    for (const connection of refills) fill(connection);
    refills.clear();
  };

  for (let i = 0; i < options.connections; i++) {
    const socket = connect(options.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.on('error', () => {});
    let self!: Connection;
    self = new Connection(socket, block, done(() => self));
    connections.push(self);
  }
  let pacer: NodeJS.Timeout | undefined;
  if (options.rps) {
    // By the time that passed, not by ticks (the 5 ms timer fires late on a busy machine), and banked up to 20 ms of
    // requests: a bank of one in-flight window per tick capped the rate at about 6,400 req/s whatever was asked.
    const bank = Math.max(options.connections * options.streams, options.rps * 0.02);
    let last = performance.now();
    pacer = setInterval(() => {
      const now = performance.now();
      allowance = Math.min(allowance + (options.rps! * (now - last)) / 1000, bank);
      last = now;
      connections.forEach(fill);
    }, 5);
  } else connections.forEach(fill);

  await new Promise((resolve) => setTimeout(resolve, options.warmUpS * 1000));
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, options.durationS * 1000));
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  running = false;
  clearInterval(pacer);
  for (const connection of connections) connection.close();
  const sorted = latencies.subarray(0, recorded).sort();
  const percentile = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  return { requestsPerSecond: (succeeded + failed) / seconds, succeeded, failed, p50Ms: percentile(50), p99Ms: percentile(99) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run(JSON.parse(process.argv[2]!) as CheckLoadOptions);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
