import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clientStreamMethod,
  createGrpcTransport,
  frame,
  Status,
  unaryMethod,
  type ClientStreamCall,
  type GrpcTransport,
  type Method,
  type TransportOptions,
  type UnaryCall,
} from '../src/grpc/transport.js';

/**
 * The gRPC server under Check, access logs and health, against what a conforming server must do: real grpc-js
 * clients where a client can say it, raw HTTP/2 (node:http2) where the test needs frames a client would not send.
 */

const text = (bytes: Buffer) => bytes.toString('utf8');
const framedText = (value: string) => frame(Buffer.from(value, 'utf8'));

interface Harness {
  port: number;
  transport: GrpcTransport;
  /** Unary calls the Hold method has not answered. */
  held: UnaryCall<string>[];
  /** What the Collect method's calls received, per call in order. */
  collected: string[][];
  collectCalls: ClientStreamCall<string, string>[];
  unaryHandled: number;
}

const running: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const stop of running.splice(0).reverse()) await stop();
});

async function start(options: Partial<TransportOptions> & { pauseCollect?: boolean } = {}): Promise<Harness> {
  const harness: Harness = { port: 0, transport: undefined as never, held: [], collected: [], collectCalls: [], unaryHandled: 0 };
  const methods = new Map<string, Method>([
    [
      '/test.Echo/Unary',
      unaryMethod<string, string>({
        authenticated: true,
        decode: text,
        encode: framedText,
        handle: (request, call) => {
          harness.unaryHandled++;
          call.respond(`echo:${request}`);
        },
      }),
    ],
    [
      '/test.Echo/Hold',
      unaryMethod<string, string>({ authenticated: true, decode: text, encode: framedText, handle: (_request, call) => void harness.held.push(call) }),
    ],
    [
      '/test.Echo/Collect',
      clientStreamMethod<string, string>({
        authenticated: true,
        decode: text,
        encode: framedText,
        handle: (call) => {
          const messages: string[] = [];
          harness.collected.push(messages);
          harness.collectCalls.push(call);
          if (options.pauseCollect) call.pause();
          call.onMessage((message) => messages.push(message));
          call.onEnd(() => call.respond(`${messages.length}:${messages.join(',')}`));
        },
      }),
    ],
  ]);
  harness.transport = createGrpcTransport({ methods, ...options });
  harness.port = await harness.transport.listen('127.0.0.1', 0);
  running.push(() => harness.transport.close(100));
  return harness;
}

function session(port: number): ClientHttp2Session {
  const client = connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  running.push(() => void client.destroy());
  return client;
}

interface RawAnswer {
  headers: IncomingHttpHeaders;
  data: Buffer;
  trailers: IncomingHttpHeaders | undefined;
}

/** One request on a raw HTTP/2 session: each chunk is written on its own (so in its own DATA frame). */
async function raw(client: ClientHttp2Session, path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<RawAnswer> {
  const stream = client.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...headers,
  });
  stream.on('error', () => {});
  const answer = new Promise<RawAnswer>((resolve) => {
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const data: Buffer[] = [];
    stream.on('response', (received) => (responseHeaders = received));
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => data.push(chunk));
    stream.on('close', () => resolve({ headers: responseHeaders, data: Buffer.concat(data), trailers }));
  });
  for (const chunk of chunks) {
    await new Promise<void>((resolve) => stream.write(chunk, () => resolve()));
    await new Promise((resolve) => setImmediate(resolve));
  }
  stream.end();
  return answer;
}

/** grpc-status wherever it came: the trailers, or the headers of a trailers-only answer. */
const grpcStatus = (answer: RawAnswer) => Number((answer.trailers ?? answer.headers)['grpc-status']);

function grpcClient(port: number): grpc.Client {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  running.push(() => client.close());
  return client;
}

function unary(client: grpc.Client, path: string, value: string | Buffer, options: grpc.CallOptions = {}) {
  return new Promise<{ code: number; details: string; value?: string }>((resolve) =>
    client.makeUnaryRequest<Buffer, Buffer>(
      path,
      (bytes) => bytes,
      (bytes) => bytes,
      typeof value === 'string' ? Buffer.from(value) : value,
      new grpc.Metadata(),
      options,
      (error, response) => resolve(error ? { code: error.code, details: error.details } : { code: 0, details: '', value: response!.toString() }),
    ),
  );
}

describe('the gRPC transport', () => {
  it('answers a unary call from a grpc-js client', async () => {
    const harness = await start();
    expect(await unary(grpcClient(harness.port), '/test.Echo/Unary', 'hello')).toEqual({ code: 0, details: '', value: 'echo:hello' });
  });

  it('reads a message split across DATA frames, the prefix included', async () => {
    const harness = await start();
    const framed = framedText('split-message');
    const chunks = Array.from({ length: framed.length }, (_, i) => framed.subarray(i, i + 1));
    const answer = await raw(session(harness.port), '/test.Echo/Unary', chunks);
    expect(grpcStatus(answer)).toBe(0);
    expect(answer.data).toEqual(framedText('echo:split-message'));
  });

  it('reads several messages of a client stream, in one frame or split across many', async () => {
    const harness = await start();
    const messages = ['a', 'bb', 'c'.repeat(70_000), 'd'];
    const bytes = Buffer.concat(messages.map(framedText));
    const chunks = [bytes.subarray(0, 3), bytes.subarray(3, 9), bytes.subarray(9, 40_000), bytes.subarray(40_000)];
    const answer = await raw(session(harness.port), '/test.Echo/Collect', chunks);
    expect(grpcStatus(answer)).toBe(0);
    expect(harness.collected).toEqual([messages]);
    expect(text(answer.data.subarray(5))).toMatch(/^4:a,bb,c+,d$/);
  });

  it('answers UNIMPLEMENTED, trailers-only, for an unknown service or method', async () => {
    const harness = await start();
    for (const path of ['/no.Such/Service', '/test.Echo/Nope']) {
      const answer = await raw(session(harness.port), path, [framedText('x')]);
      expect(answer.headers[':status']).toBe(200);
      // Trailers-only: one HEADERS frame carries the status, with no DATA and no trailers after it.
      expect(answer.headers['grpc-status']).toBe(String(Status.UNIMPLEMENTED));
      expect(answer.trailers).toBeUndefined();
      expect(answer.data.length).toBe(0);
    }
    expect((await unary(grpcClient(harness.port), '/no.Such/Service', 'x')).code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('keeps a connection usable after many calls answered before the client finished sending', async () => {
    // Each refused call's unread body held part of the connection's flow-control window: after a few rounds every
    // call on the connection hung (found by the chaos fuzzer).
    const harness = await start();
    const connection = session(harness.port);
    const body = Buffer.alloc(70_000);
    body.writeUInt32BE(body.length - 5, 1);
    for (let round = 0; round < 8; round++) {
      const answers = await Promise.all(Array.from({ length: 32 }, () => raw(connection, '/test.Echo/Nope', [body])));
      expect(answers.map(grpcStatus)).toEqual(Array(32).fill(Status.UNIMPLEMENTED));
    }
    expect(grpcStatus(await raw(connection, '/test.Echo/Unary', [framedText('still here')]))).toBe(0);
  });

  it('answers HTTP 415 to a request that is not gRPC, and 405 to one that is not a POST', async () => {
    const harness = await start();
    const client = session(harness.port);
    expect((await raw(client, '/test.Echo/Unary', [framedText('x')], { 'content-type': 'application/json' })).headers[':status']).toBe(415);
    const get = await new Promise<IncomingHttpHeaders>((resolve) => {
      const stream = client.request({ ':method': 'GET', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc' });
      stream.on('response', resolve);
      stream.end();
    });
    expect(get[':status']).toBe(405);
    expect(harness.unaryHandled).toBe(0);
  });

  it('refuses a message over the size limit with RESOURCE_EXHAUSTED before reading it whole', async () => {
    const harness = await start({ maxMessageBytes: 1024 });
    const client = grpcClient(harness.port);
    const refused = await unary(client, '/test.Echo/Unary', Buffer.alloc(2048, 97));
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toContain('larger than max');
    // Only the prefix is needed to refuse: a client that announces 1 GiB is refused without sending it.
    const prefix = Buffer.from([0, 0x40, 0, 0, 0]);
    expect(grpcStatus(await raw(session(harness.port), '/test.Echo/Unary', [prefix]))).toBe(Status.RESOURCE_EXHAUSTED);
    expect(harness.unaryHandled).toBe(0);
    expect((await unary(client, '/test.Echo/Unary', 'small')).value).toBe('echo:small');
  });

  it('bounds the partial messages held across calls', async () => {
    const harness = await start({ maxBufferedBytes: 10_000 });
    const client = session(harness.port);
    // A call that sends half of a large message and stops holds that half...
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    const large = frame(Buffer.alloc(20_000, 98));
    const refused = new Promise<IncomingHttpHeaders>((resolve) => stream.on('response', resolve));
    stream.write(large.subarray(0, 12_000));
    // ...up to the budget: past it the call is refused, and others still work.
    expect((await refused)['grpc-status']).toBe(String(Status.RESOURCE_EXHAUSTED));
    expect((await unary(grpcClient(harness.port), '/test.Echo/Unary', 'after')).value).toBe('echo:after');
  });

  it('counts each held DATA frame beside its bytes: one-byte frames cannot hold more than the budget', async () => {
    const harness = await start({ maxBufferedBytes: 10_000 });
    // 200 bytes of a 1,000-byte message, a frame each: within the budget by bytes, far past it by what they hold.
    const chunks = [Buffer.from([0, 0, 0, 0x03, 0xe8]), ...Array.from({ length: 200 }, () => Buffer.from('a'))];
    expect(grpcStatus(await raw(session(harness.port), '/test.Echo/Unary', chunks))).toBe(Status.RESOURCE_EXHAUSTED);
    expect((await unary(grpcClient(harness.port), '/test.Echo/Unary', 'after')).value).toBe('echo:after');
  });

  it('keeps a complete request in the budget until its stream ends, which a client may never do', async () => {
    const harness = await start({ maxBufferedBytes: 10_000 });
    const client = session(harness.port);
    const open = Array.from({ length: 4 }, () => {
      const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc' });
      stream.on('error', () => {});
      const answered = new Promise<IncomingHttpHeaders>((resolve) => stream.on('response', resolve));
      const body = new Promise<string>((resolve) => {
        let data = '';
        stream.on('data', (chunk: Buffer) => (data += chunk.subarray(5).toString()));
        stream.on('close', () => resolve(data));
      });
      stream.write(frame(Buffer.alloc(3_000, 99)));
      return { stream, answered, body };
    });
    // Three complete 3,000-byte requests fill the 10,000-byte budget; the fourth is refused.
    expect((await open[3]!.answered)['grpc-status']).toBe(String(Status.RESOURCE_EXHAUSTED));
    open[0]!.stream.end();
    expect(await open[0]!.body).toBe(`echo:${'c'.repeat(3_000)}`);
  });

  it('resets with CANCEL an answer the client does not take within the flush timeout', async () => {
    const harness = await start({ flushTimeoutMs: 200 });
    // A window of 0: the answer's DATA cannot be sent until the client opens it, which it never does.
    const client = connect(`http://127.0.0.1:${harness.port}`, { settings: { initialWindowSize: 0 } });
    client.on('error', () => {});
    running.push(() => void client.destroy());
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
    stream.end(framedText('hello'));
    expect(await closed).toBe(constants.NGHTTP2_CANCEL);
    expect(harness.unaryHandled).toBe(1);
  });

  it('bounds a status message that quotes what the client sent', async () => {
    const harness = await start();
    const unknown = await raw(session(harness.port), `/test.Echo/${'x'.repeat(20_000)}`, [framedText('hello')]);
    expect(grpcStatus(unknown)).toBe(Status.UNIMPLEMENTED);
    expect(String((unknown.trailers ?? unknown.headers)['grpc-message']).length).toBeLessThan(600);
  });

  it('decodes a gzip-compressed message, refuses an unknown encoding with UNIMPLEMENTED and a compressed flag under identity with INTERNAL', async () => {
    const harness = await start();
    const client = session(harness.port);
    const compressed = gzipSync(Buffer.from('zipped'));
    const gzipped = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), compressed]);
    gzipped.writeUInt32BE(compressed.length, 1);
    const decoded = await raw(client, '/test.Echo/Unary', [gzipped], { 'grpc-encoding': 'gzip' });
    expect(grpcStatus(decoded)).toBe(0);
    expect(text(decoded.data.subarray(5))).toBe('echo:zipped');
    const unknown = await raw(client, '/test.Echo/Unary', [framedText('x')], { 'grpc-encoding': 'snappy' });
    expect(grpcStatus(unknown)).toBe(Status.UNIMPLEMENTED);
    expect(unknown.headers['grpc-accept-encoding']).toBe('identity,gzip');
    expect(grpcStatus(await raw(client, '/test.Echo/Unary', [gzipped]))).toBe(Status.INTERNAL);
    // A grpc-js client compressing with gzip is understood.
    const grpcJs = new grpc.Client(`127.0.0.1:${harness.port}`, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    running.push(() => grpcJs.close());
    expect((await unary(grpcJs, '/test.Echo/Unary', 'from-grpc-js')).value).toBe('echo:from-grpc-js');
  });

  it('answers DEADLINE_EXCEEDED when the deadline passes, and does no work for a request read after its deadline', async () => {
    const harness = await start();
    const client = session(harness.port);
    // A handler that never answers: the server sends DEADLINE_EXCEEDED itself when the grpc-timeout runs out.
    const expired = await raw(client, '/test.Echo/Hold', [framedText('x')], { 'grpc-timeout': '100m' });
    expect(grpcStatus(expired)).toBe(Status.DEADLINE_EXCEEDED);
    harness.held[0]!.respond('too late'); // dropped, without harm
    expect(harness.held[0]!.cancelled).toBe(true);
    // The request's message arrives after its deadline, the process having been busy: the handler never runs.
    let streamsSeen = 0;
    harness.transport.server.on('stream', () => streamsSeen++);
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc', 'grpc-timeout': '20m' });
    stream.on('error', () => {});
    const answered = new Promise<IncomingHttpHeaders>((resolve) => stream.on('response', resolve));
    await expect.poll(() => streamsSeen).toBe(1);
    const busyUntil = performance.now() + 60;
    while (performance.now() < busyUntil);
    stream.end(framedText('late'));
    expect((await answered)['grpc-status']).toBe(String(Status.DEADLINE_EXCEEDED));
    expect(harness.unaryHandled).toBe(0);
  });

  it('tells the handler when the client resets the stream (RST_STREAM CANCEL)', async () => {
    const harness = await start();
    const client = session(harness.port);
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Hold', 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    stream.end(framedText('x'));
    await expect.poll(() => harness.held.length).toBe(1);
    let cancelled = false;
    const call = harness.held[0]! as UnaryCall<string> & { onCancel(listener: () => void): void };
    call.onCancel(() => (cancelled = true));
    stream.close(constants.NGHTTP2_CANCEL);
    await expect.poll(() => cancelled).toBe(true);
    expect(call.cancelled).toBe(true);
    call.respond('nobody listens'); // no throw, nothing sent
  });

  it('holds a paused client stream back with HTTP/2 flow control, and delivers everything once resumed', async () => {
    const harness = await start({ pauseCollect: true });
    const client = session(harness.port);
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Collect', 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    const answered = new Promise<Buffer>((resolve) => {
      const data: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => data.push(chunk));
      stream.on('close', () => resolve(Buffer.concat(data)));
    });
    await expect.poll(() => harness.collectCalls.length).toBe(1);
    const call = harness.collectCalls[0]!;
    const message = framedText('m'.repeat(10_000));
    // Write while the stream takes data; once the server stopped reading and the window is spent, 'drain' stops coming.
    let written = 0;
    let blocked = false;
    while (!blocked && written < 1_000) {
      written++;
      if (stream.write(message)) continue;
      blocked = !(await Promise.race([
        new Promise<boolean>((resolve) => stream.once('drain', () => resolve(true))),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500)),
      ]));
    }
    expect(blocked).toBe(true);
    // What was written is held by the client, the flow-control window and the server (bounded); none was delivered.
    expect(written * message.length).toBeLessThan(1_000_000);
    await expect.poll(() => call.held).toBeGreaterThan(0);
    expect(harness.collected[0]).toEqual([]);
    call.resume();
    stream.end();
    const answer = await answered;
    expect(text(answer.subarray(5)).split(':')[0]).toBe(String(written));
  });

  it('delivers what a paused client stream holds before telling of a reset', async () => {
    const harness = await start({ pauseCollect: true });
    const client = session(harness.port);
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Collect', 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    for (const value of ['r1', 'r2', 'r3']) stream.write(framedText(value));
    await expect.poll(() => harness.collectCalls[0]?.held ?? 0).toBe(3);
    const order: string[] = [];
    harness.collectCalls[0]!.onCancel(() => order.push(`cancelled after ${harness.collected[0]!.length}`));
    stream.close(constants.NGHTTP2_CANCEL);
    await expect.poll(() => order).toEqual(['cancelled after 3']);
    expect(harness.collected[0]).toEqual(['r1', 'r2', 'r3']);
  });

  it('sends GOAWAY when closing, and lets the calls under way finish', async () => {
    const harness = await start();
    const client = session(harness.port);
    const goaway = new Promise<number>((resolve) => client.once('goaway', (code) => resolve(code)));
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Hold', 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    const answered = new Promise<IncomingHttpHeaders | undefined>((resolve) => {
      let trailers: IncomingHttpHeaders | undefined;
      stream.on('trailers', (received) => (trailers = received));
      stream.on('close', () => resolve(trailers));
      stream.resume();
    });
    stream.end(framedText('in flight'));
    await expect.poll(() => harness.held.length).toBe(1);
    const closed = harness.transport.close(5_000);
    expect(await goaway).toBe(constants.NGHTTP2_NO_ERROR);
    harness.held[0]!.respond('finished');
    expect((await answered)?.['grpc-status']).toBe('0');
    await closed;
  });

  it('cuts the calls still open when the grace is over, with UNAVAILABLE', async () => {
    const harness = await start();
    const client = grpcClient(harness.port);
    const pending = unary(client, '/test.Echo/Hold', 'forever');
    await expect.poll(() => harness.held.length).toBe(1);
    await harness.transport.close(50);
    expect((await pending).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('pings idle connections and answers their pings', async () => {
    const harness = await start({ keepaliveTimeMs: 100 });
    const client = session(harness.port);
    let pinged = 0;
    client.on('ping', () => pinged++);
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    await expect.poll(() => pinged, { timeout: 5_000 }).toBeGreaterThan(0);
    const rtt = await new Promise<number>((resolve, reject) => client.ping((error, duration) => (error ? reject(error) : resolve(duration))));
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(harness.port).toBeGreaterThan(0);
  });

  it('refuses an unauthenticated call with UNAUTHENTICATED before reading its message, and says so', async () => {
    const refused: string[] = [];
    const harness = await start({
      authenticate: (_peer, headers) => (headers.authorization === 'Bearer good' ? { ok: true } : { ok: false, reason: 'a caller token is required' }),
      onUnauthenticated: (method, _peer, reason) => refused.push(`${method}: ${reason}`),
    });
    const client = session(harness.port);
    const denied = await raw(client, '/test.Echo/Unary', [framedText('x')]);
    expect(grpcStatus(denied)).toBe(Status.UNAUTHENTICATED);
    expect(denied.headers['grpc-message']).toBe('a caller token is required');
    expect(harness.unaryHandled).toBe(0);
    expect(refused).toEqual(['/test.Echo/Unary: a caller token is required']);
    expect(grpcStatus(await raw(client, '/test.Echo/Unary', [framedText('x')], { authorization: 'Bearer good' }))).toBe(0);
  });
});
