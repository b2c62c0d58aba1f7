import { constants, type Http2Server, type Http2Session, type IncomingHttpHeaders, type SecureServerOptions, type ServerHttp2Stream } from 'node:http2';
import { createSecureServer, createServer } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { gunzipSync } from 'node:zlib';

/**
 * A gRPC server over node:http2, for the three services Envoy and Kubernetes call: ext_authz Check (unary), access
 * logs (client streaming) and grpc.health.v1 (unary and server streaming). Messages are decoded and encoded by
 * the hand-written codecs, and each call costs one stream, one small call object and the HTTP/2 frames: grpc-js
 * spent about half of a Check's CPU on its own machinery (bench/RESULTS.md).
 * The protocol, as in https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md: POST with content-type
 * application/grpc[+proto]; each message a 5-byte prefix (compressed flag, big-endian length) then its bytes, split
 * across DATA frames at will; the answer is HEADERS, DATA, then trailers with grpc-status and grpc-message, or a
 * single trailers-only HEADERS frame for an error before any message.
 */

/** google.rpc.Code values the server sends. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof Status)[keyof typeof Status];

/** Who is calling: the connection's address and, over mutual TLS, the identities its verified certificate names. */
export interface Peer {
  address: string;
  /** The connection presented a client certificate that verified against the client CA. */
  verified: boolean;
  /** That certificate's subject alternative names, as Node prints them (URI:spiffe://…, DNS:…); else empty. */
  identities: readonly string[];
}

export type Authentication = { ok: true } | { ok: false; reason: string };

/** Decides whether a call may proceed, from its peer and its metadata (request headers). */
export type Authenticator = (peer: Peer, headers: IncomingHttpHeaders) => Authentication;

export interface CallContext {
  readonly method: string;
  readonly peer: Peer;
  readonly headers: IncomingHttpHeaders;
  /** performance.now() by which the caller wants its answer (grpc-timeout); Infinity without one. */
  readonly deadline: number;
  /** Set once the caller reset the stream, the deadline passed or the server is cutting calls: answers go nowhere. */
  readonly cancelled: boolean;
}

export interface UnaryCall<Response> extends CallContext {
  respond(response: Response): void;
  fail(code: StatusCode, message: string): void;
}

export interface ServerStreamCall<Response> extends CallContext {
  send(response: Response): void;
  finish(code?: StatusCode, message?: string): void;
  /** Called once when the call ends from the client's side (reset, deadline, shutdown). */
  onCancel(listener: () => void): void;
}

/**
 * A client-streaming call. Messages are delivered in order; while paused, none is delivered, the stream stops
 * reading and HTTP/2 flow control holds the client back. A reset delivers every message already received (even while
 * paused) before `cancelled`: they are what the client sent.
 */
export interface ClientStreamCall<Request, Response> extends CallContext {
  onMessage(listener: (message: Request) => void): void;
  /** The client half-closed; every message was delivered. */
  onEnd(listener: () => void): void;
  onCancel(listener: () => void): void;
  pause(): void;
  resume(): void;
  /** Messages received and not yet delivered (held while paused). */
  readonly held: number;
  /** Delivers every held message now, paused or not (e.g. before answering a stream that is being ended). */
  deliverHeld(): void;
  respond(response: Response): void;
  fail(code: StatusCode, message: string): void;
}

interface MethodBase<Request, Response> {
  /** A message's bytes (prefix removed, decompressed) to the request; throws on a malformed one. */
  decode(bytes: Buffer): Request;
  /** A response to its framed bytes, the 5-byte prefix included (see `frame`). */
  encode(response: Response): Buffer;
  /** Authenticate the caller first (the health service answers anyone: kubelet and load balancers probe it). */
  authenticated: boolean;
  /** A bound below the server's for this method's messages (the health service's requests are a service name). */
  maxMessageBytes?: number;
}

export interface UnaryMethod<Request, Response> extends MethodBase<Request, Response> {
  kind: 'unary';
  handle(request: Request, call: UnaryCall<Response>): void;
}

export interface ServerStreamMethod<Request, Response> extends MethodBase<Request, Response> {
  kind: 'server-stream';
  handle(request: Request, call: ServerStreamCall<Response>): void;
}

export interface ClientStreamMethod<Request, Response> extends MethodBase<Request, Response> {
  kind: 'client-stream';
  handle(call: ClientStreamCall<Request, Response>): void;
}

// Each method's handler is checked against its codecs where the method is declared (see the `*Method` helpers).
export type Method = UnaryMethod<any, any> | ServerStreamMethod<any, any> | ClientStreamMethod<any, any>;

export const unaryMethod = <Request, Response>(method: Omit<UnaryMethod<Request, Response>, 'kind'>): Method => ({ kind: 'unary', ...method });
export const serverStreamMethod = <Request, Response>(method: Omit<ServerStreamMethod<Request, Response>, 'kind'>): Method => ({
  kind: 'server-stream',
  ...method,
});
export const clientStreamMethod = <Request, Response>(method: Omit<ClientStreamMethod<Request, Response>, 'kind'>): Method => ({
  kind: 'client-stream',
  ...method,
});

export interface TransportOptions {
  /** By path, `/package.Service/Method`. */
  methods: ReadonlyMap<string, Method>;
  /** Without it, every caller may call every method. */
  authenticate?: Authenticator | undefined;
  /** Told of each refused call, e.g. to count and log it. */
  onUnauthenticated?: (method: string, peer: Peer, reason: string) => void;
  /** TLS: certificate, key and, for mutual TLS, the client CA and whether a client certificate is required. */
  tls?: SecureServerOptions | undefined;
  /** Largest message accepted, in bytes (gRPC's default is 4 MiB); larger ones end their call RESOURCE_EXHAUSTED. */
  maxMessageBytes?: number;
  /** Bytes of incomplete messages held across all calls at once; past it, a call that needs more is refused. */
  maxBufferedBytes?: number;
  /** Streams one connection may have open (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams?: number;
  /** Idle connections are pinged this often; one that does not answer within keepaliveTimeoutMs is closed. */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * An answer the client has not taken this long after it was given (it keeps its flow-control window shut) is
   * abandoned, its stream reset with CANCEL: a client that never reads must not hold answers forever.
   */
  flushTimeoutMs?: number;
}

export interface GrpcTransport {
  readonly server: Http2Server;
  /** Resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Replaces the TLS context for new connections; open connections keep theirs (so none is dropped). */
  setSecureContext(options: SecureServerOptions): void;
  /**
   * Stops accepting connections and sends GOAWAY on each, so clients open new streams elsewhere; streams under way
   * may finish until graceMs has passed, then every connection is destroyed.
   */
  close(graceMs: number): Promise<void>;
}

const grpcContentType = /^application\/grpc(?:$|[+;])/;
const timeoutPattern = /^(\d{1,8})([HMSmun])$/;
const timeoutUnitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** Encodings accepted in a request's grpc-encoding; answers are never compressed (Check responses are small). */
const acceptEncoding = 'identity,gzip';

const responseHeaders = Object.freeze({
  [constants.HTTP2_HEADER_STATUS]: 200,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
  'grpc-accept-encoding': acceptEncoding,
});
const okTrailers = Object.freeze({ 'grpc-status': '0' });

/** A message with its 5-byte gRPC prefix, uncompressed. */
export function frame(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

const maxStatusMessageChars = 500;

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself. */
export function encodeGrpcMessage(text: string): string {
  // Messages may quote what the client sent (a path, a service name): bounded, so they fit in a header frame.
  const message = text.length > maxStatusMessageChars ? `${text.slice(0, maxStatusMessageChars)}…` : text;
  return /^[\x20-\x24\x26-\x7e]*$/.test(message)
    ? message
    : Array.from(Buffer.from(message, 'utf8'), (byte) => (byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** performance.now() at which a grpc-timeout header runs out; Infinity without a valid one. */
export function deadlineOf(timeout: string | string[] | undefined, now: number): number {
  if (typeof timeout !== 'string') return Infinity;
  const match = timeoutPattern.exec(timeout);
  return match ? now + Number(match[1]) * timeoutUnitMs[match[2]!]! : Infinity;
}

/**
 * Reads gRPC messages out of a stream's DATA chunks, however they are split: whole messages are returned as views of
 * the chunk when they fit in one, else copied together once complete.
 */
export class MessageReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** What the pending chunks are charged to the budget: their bytes and each one's own cost (chunkCostBytes). */
  private charged = 0;
  /** The current message's full length with its prefix, once the prefix is known. */
  private needed = 0;

  constructor(
    private readonly maxMessageBytes: number,
    private readonly budget: BufferBudget,
  ) {}

  get buffered(): number {
    return this.pendingBytes;
  }

  /** Adds a chunk; returns the complete messages in it (prefix included), or an error status for the call. */
  push(chunk: Buffer, out: Buffer[]): { code: StatusCode; message: string } | undefined {
    let data = chunk;
    if (this.pendingBytes > 0) {
      if (!this.charge(chunk.length)) return heldTooMuch;
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.needed === 0 && this.pendingBytes >= 5) {
        const head = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
        const error = this.prefix(head);
        if (error) return error;
      }
      if (this.needed === 0 || this.pendingBytes < this.needed) return undefined;
      data = Buffer.concat(this.pending, this.pendingBytes);
      this.discard();
    }
    let at = 0;
    while (data.length - at >= 5) {
      const length = data.readUInt32BE(at + 1);
      if (length > this.maxMessageBytes) return tooLarge(length, this.maxMessageBytes);
      if (data.length - at < 5 + length) break;
      out.push(data.subarray(at, at + 5 + length));
      at += 5 + length;
    }
    if (at < data.length) {
      const rest = data.subarray(at);
      if (!this.charge(rest.length)) return heldTooMuch;
      this.pending.push(rest);
      this.pendingBytes = rest.length;
      if (rest.length >= 5) {
        const error = this.prefix(rest);
        if (error) return error;
      }
    }
    return undefined;
  }

  /** Releases what is held (the call ended, or the message is complete). */
  discard(): void {
    this.budget.give(this.charged);
    this.charged = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.needed = 0;
  }

  private charge(bytes: number): boolean {
    const cost = bytes + chunkCostBytes;
    if (!this.budget.take(cost)) return false;
    this.charged += cost;
    return true;
  }

  private prefix(head: Buffer): { code: StatusCode; message: string } | undefined {
    const length = head.readUInt32BE(1);
    if (length > this.maxMessageBytes) return tooLarge(length, this.maxMessageBytes);
    this.needed = 5 + length;
    return undefined;
  }
}

/**
 * What a held chunk costs beside its bytes (its Buffer, and node:http2's record of it): a client sending one-byte DATA
 * frames held about 115 bytes of heap per byte when only bytes were counted, so the budget bounded nothing.
 */
const chunkCostBytes = 128;

const heldTooMuch = { code: Status.RESOURCE_EXHAUSTED, message: 'server is holding too many partial messages' };

const tooLarge = (length: number, max: number) => ({
  code: Status.RESOURCE_EXHAUSTED,
  message: `received message larger than max (${length} vs. ${max})`,
});

/** Bytes of partial messages held by all calls together. */
export class BufferBudget {
  private used = 0;

  constructor(private readonly limit: number) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

/** A framed message's payload, decompressed if it says so; throws a status for the call otherwise. */
function payload(framed: Buffer, encoding: string, maxMessageBytes: number): Buffer {
  const body = framed.subarray(5);
  if (framed[0] === 0) return body;
  if (framed[0] !== 1) throw new CallError(Status.INTERNAL, `invalid message compression flag ${framed[0]}`);
  if (encoding === 'identity') throw new CallError(Status.INTERNAL, 'received a compressed message but grpc-encoding is identity');
  try {
    return gunzipSync(body, { maxOutputLength: maxMessageBytes });
  } catch (error) {
    const code = (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? Status.RESOURCE_EXHAUSTED : Status.INTERNAL;
    throw new CallError(code, `cannot decompress message: ${(error as Error).message}`);
  }
}

class CallError extends Error {
  constructor(
    readonly code: StatusCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Ends a call with a status: one trailers-only HEADERS frame when nothing was sent yet, else trailers after what was.
 * What a client still sends is read and dropped, never held: closing the stream instead (RST_STREAM NO_ERROR) left
 * its unread data charged to the connection's flow-control window in node:http2, until every call on it hung.
 */
function answerStatus(stream: ServerHttp2Stream, code: StatusCode, message: string): void {
  if (stream.destroyed || stream.closed) return;
  const status = code === Status.OK ? okTrailers : { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) };
  if (!stream.headersSent) {
    stream.respond({ ...responseHeaders, ...status }, { endStream: true });
  } else if (!stream.writableEnded) {
    stream.once('wantTrailers', () => stream.sendTrailers(status));
    stream.end();
  }
  if (!stream.readableEnded) stream.resume();
}

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(okTrailers);
}

/** Answers a request that is not gRPC at all (wrong method or content type) with a plain HTTP status. */
function refuseHttp(stream: ServerHttp2Stream, status: number): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond({ [constants.HTTP2_HEADER_STATUS]: status }, { endStream: true });
}

const peers = new WeakMap<Http2Session, Peer>();

function peerOf(session: Http2Session): Peer {
  let peer = peers.get(session);
  if (!peer) {
    const socket = session.socket as TLSSocket;
    const verified = Boolean(socket.encrypted && socket.authorized);
    const identities: string[] = [];
    if (verified) {
      const altNames = socket.getPeerCertificate()?.subjectaltname;
      if (altNames) for (const name of altNames.split(', ')) identities.push(name.trim());
    }
    peer = { address: socket.remoteAddress ?? '', verified, identities };
    peers.set(session, peer);
  }
  return peer;
}

export function createGrpcTransport(options: TransportOptions): GrpcTransport {
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const budget = new BufferBudget(options.maxBufferedBytes ?? 64 * 1024 * 1024);
  const keepaliveTimeMs = options.keepaliveTimeMs ?? 30_000;
  const keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? 10_000;
  const flushTimeoutMs = options.flushTimeoutMs ?? 10_000;
  const settings = { maxConcurrentStreams: options.maxConcurrentStreams ?? 1_000 };
  const server: Http2Server = options.tls
    ? (createSecureServer({ ...options.tls, settings, allowHTTP1: false }) as unknown as Http2Server)
    : createServer({ settings });
  const sessions = new Set<Http2Session>();
  /** Every call under way: the sweeper expires those past their deadline, a forced close cuts them. */
  const calls = new Set<LiveCall>();
  let closing = false;
  let closed: Promise<void> | undefined;

  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // A failing connection's streams are told through their own events; nothing else is owed here.
    session.on('error', () => {});
    if (closing) session.close();
  });

  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => {});
    const method = options.methods.get(headers[constants.HTTP2_HEADER_PATH] as string);
    if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST') return refuseHttp(stream, 405);
    if (!grpcContentType.test(String(headers[constants.HTTP2_HEADER_CONTENT_TYPE] ?? ''))) return refuseHttp(stream, 415);
    const path = headers[constants.HTTP2_HEADER_PATH] as string;
    if (!method) return answerStatus(stream, Status.UNIMPLEMENTED, `unknown method ${path}`);
    const encoding = String(headers['grpc-encoding'] ?? 'identity');
    if (encoding !== 'identity' && encoding !== 'gzip') {
      return answerStatus(stream, Status.UNIMPLEMENTED, `message encoding ${encoding} is not supported (accepted: ${acceptEncoding})`);
    }
    const peer = peerOf(stream.session!);
    if (method.authenticated && options.authenticate) {
      const verdict = options.authenticate(peer, headers);
      if (!verdict.ok) {
        options.onUnauthenticated?.(path, peer, verdict.reason);
        return answerStatus(stream, Status.UNAUTHENTICATED, verdict.reason);
      }
    }
    const now = performance.now();
    const deadline = deadlineOf(headers['grpc-timeout'], now);
    if (deadline <= now) return answerStatus(stream, Status.DEADLINE_EXCEEDED, 'deadline exceeded before the call started');
    new LiveCall(stream, method as AnyMethod, path, peer, headers, deadline, encoding, Math.min(method.maxMessageBytes ?? maxMessageBytes, maxMessageBytes), budget, calls);
  });

  // One timer for every call's deadline and every connection's keepalive, rather than one per call.
  const sweepEveryMs = 50;
  let lastKeepalive = performance.now();
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const call of calls) {
      if (call.answeredAt === undefined) {
        if (call.deadline <= now) call.expire();
      } else if (now - call.answeredAt > flushTimeoutMs) {
        call.abandon();
      }
    }
    if (now - lastKeepalive < keepaliveTimeMs) return;
    lastKeepalive = now;
    for (const session of sessions) {
      if (session.destroyed || session.closed) continue;
      const timeout = setTimeout(() => session.destroy(), keepaliveTimeoutMs);
      timeout.unref();
      const pinged = session.ping((error) => {
        clearTimeout(timeout);
        if (error && !session.destroyed) session.destroy();
      });
      if (!pinged) clearTimeout(timeout);
    }
  }, sweepEveryMs);
  sweeper.unref();

  return {
    server,
    listen: (host, port) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      }),
    setSecureContext: (tls) => (server as unknown as { setSecureContext(options: SecureServerOptions): void }).setSecureContext(tls),
    close: (graceMs) =>
      (closed ??= new Promise<void>((resolve) => {
        closing = true;
        const done = () => {
          clearTimeout(force);
          clearInterval(sweeper);
          resolve();
        };
        const force = setTimeout(() => {
          for (const call of calls) if (call.answeredAt === undefined) call.cut();
          for (const session of sessions) session.destroy();
          done();
        }, graceMs);
        server.close(() => done());
        // GOAWAY: no new streams on this connection; the ones under way go on.
        for (const session of sessions) session.close();
      })),
  };
}

/** Bytes of messages a paused client stream holds before it stops reading from the connection. */
const maxHeldBytes = 64 * 1024;

type AnyMethod = UnaryMethod<unknown, unknown> | ServerStreamMethod<unknown, unknown> | ClientStreamMethod<unknown, unknown>;

/**
 * One call, whatever its kind: it is the call object handlers get (one allocation per call). At most one answer
 * leaves it; after the caller resets the stream, the deadline passes or the server cuts it, answers go nowhere.
 */
class LiveCall implements UnaryCall<unknown>, ServerStreamCall<unknown>, ClientStreamCall<unknown, unknown> {
  cancelled = false;
  /** When the call was answered (performance.now()); it stays among the calls until its stream has closed. */
  answeredAt: number | undefined;
  private readonly reader: MessageReader;
  private readonly messages: Buffer[] = [];
  private cancelListeners: (() => void)[] | undefined;
  private messageListener: ((message: unknown) => void) | undefined;
  private endListener: (() => void) | undefined;
  /** A client stream's messages received while paused, delivered on resume (or before a cancel). */
  private held_: Buffer[] = [];
  private heldBytes = 0;
  /** What the complete request of a unary or server-streaming call holds of the budget until it is decoded. */
  private requestCharge = 0;
  private paused = false;
  /** The HTTP/2 stream stopped reading: flow control now holds the client back. */
  private readingStopped = false;
  private halfClosed = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly definition: AnyMethod,
    readonly method: string,
    readonly peer: Peer,
    readonly headers: IncomingHttpHeaders,
    readonly deadline: number,
    private readonly encoding: string,
    private readonly maxMessageBytes: number,
    private readonly budget: BufferBudget,
    private readonly calls: Set<LiveCall>,
  ) {
    this.reader = new MessageReader(maxMessageBytes, budget);
    calls.add(this);
    stream.on('data', (chunk: Buffer) => this.received(chunk));
    stream.once('end', () => this.halfClose());
    stream.once('close', () => {
      this.reader.discard();
      this.releaseRequest();
      this.calls.delete(this);
      if (!this.answered) this.cancel();
    });
    if (definition.kind === 'client-stream') definition.handle(this);
  }

  private get answered(): boolean {
    return this.answeredAt !== undefined;
  }

  // --- what handlers call ---

  respond(response: unknown): void {
    if (this.answered) return;
    this.answeredAt = performance.now();
    if (this.stream.destroyed || this.stream.closed) return;
    if (!this.stream.headersSent) this.stream.respond(responseHeaders, { waitForTrailers: true });
    this.stream.once('wantTrailers', sendOkTrailers);
    this.stream.end(this.definition.encode(response));
  }

  fail(code: StatusCode, message: string): void {
    if (this.answered) return;
    this.answeredAt = performance.now();
    answerStatus(this.stream, code, message);
  }

  send(response: unknown): void {
    if (this.answered || this.stream.destroyed || this.stream.closed) return;
    if (!this.stream.headersSent) this.stream.respond(responseHeaders, { waitForTrailers: true });
    this.stream.write(this.definition.encode(response));
  }

  finish(code: StatusCode = Status.OK, message = ''): void {
    this.fail(code, message);
  }

  onCancel(listener: () => void): void {
    (this.cancelListeners ??= []).push(listener);
  }

  onMessage(listener: (message: unknown) => void): void {
    this.messageListener = listener;
  }

  onEnd(listener: () => void): void {
    this.endListener = listener;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused || this.cancelled) return;
    this.paused = false;
    while (this.held_.length > 0 && !this.paused && !this.answered) if (!this.deliverNext()) return;
    if (this.paused || this.answered) return;
    if (this.readingStopped) {
      this.readingStopped = false;
      this.stream.resume();
    }
    if (this.halfClosed) this.endListener?.();
  }

  get held(): number {
    return this.held_.length;
  }

  deliverHeld(): void {
    // What the stream buffered after it stopped reading was received too.
    for (let chunk = this.stream.read() as Buffer | null; chunk !== null; chunk = this.stream.read() as Buffer | null) {
      this.reader.push(chunk, this.messages);
      this.hold();
    }
    while (this.held_.length > 0) if (!this.deliverNext()) return;
  }

  // --- the server's side ---

  /** The deadline passed: the caller gets DEADLINE_EXCEEDED, and nothing more is done for it. */
  expire(): void {
    this.fail(Status.DEADLINE_EXCEEDED, 'deadline exceeded');
    this.cancel();
  }

  /** The answer was not taken within the flush timeout. */
  abandon(): void {
    this.calls.delete(this);
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
  }

  /** The server is stopping and its grace is over. */
  cut(): void {
    this.fail(Status.UNAVAILABLE, 'server is shutting down');
    this.cancel();
  }

  private received(chunk: Buffer): void {
    if (this.answered) return;
    const error = this.reader.push(chunk, this.messages);
    if (this.definition.kind === 'client-stream') {
      if (this.paused) {
        this.hold();
      } else {
        for (const framed of this.messages.splice(0)) if (!this.deliver(framed)) return;
      }
    } else if (this.messages.length > 1) {
      return this.refuse(Status.UNIMPLEMENTED, `${this.definition.kind === 'unary' ? 'a unary' : 'a server-streaming'} call takes exactly one request message`);
    } else if (this.messages.length === 1 && this.requestCharge === 0) {
      // Complete, it waits for the end of the stream, which a client may never send: it stays in the budget till then.
      const cost = this.messages[0]!.length + chunkCostBytes;
      if (!this.budget.take(cost)) return this.refuse(heldTooMuch.code, heldTooMuch.message);
      this.requestCharge = cost;
    }
    if (error) this.refuse(error.code, error.message);
  }

  private releaseRequest(): void {
    this.budget.give(this.requestCharge);
    this.requestCharge = 0;
  }

  private halfClose(): void {
    this.halfClosed = true;
    if (this.answered || this.cancelled) return;
    if (this.reader.buffered > 0) return this.fail(Status.INTERNAL, 'the stream ended inside a message');
    const { definition } = this;
    if (definition.kind === 'client-stream') {
      if (!this.paused) this.endListener?.();
      return;
    }
    if (this.messages.length !== 1) return this.fail(Status.INTERNAL, 'the call ended without a request message');
    // A request read after its deadline (the process was busy) is not worth deciding: its caller has given up.
    if (this.deadline !== Infinity && performance.now() >= this.deadline) return this.expire();
    let request: unknown;
    try {
      request = definition.decode(payload(this.messages[0]!, this.encoding, this.maxMessageBytes));
    } catch (error) {
      return this.refuseFor(error, 'request');
    }
    this.messages.length = 0;
    this.releaseRequest();
    if (definition.kind === 'unary') definition.handle(request, this);
    else definition.handle(request, this);
  }

  /**
   * Keeps the messages just read for later. Past maxHeldBytes the stream stops reading, so what the client sends
   * next waits in its HTTP/2 flow-control window instead of in this process.
   */
  private hold(): void {
    for (const framed of this.messages.splice(0)) {
      this.held_.push(framed);
      this.heldBytes += framed.length;
    }
    if (this.heldBytes > maxHeldBytes && !this.readingStopped) {
      this.readingStopped = true;
      this.stream.pause();
    }
  }

  private deliverNext(): boolean {
    const framed = this.held_.shift()!;
    this.heldBytes -= framed.length;
    return this.deliver(framed);
  }

  /** Hands one client-stream message to the handler; false if it was refused (the call is then over). */
  private deliver(framed: Buffer): boolean {
    let message: unknown;
    try {
      message = this.definition.decode(payload(framed, this.encoding, this.maxMessageBytes));
    } catch (error) {
      // Nothing after a malformed message is delivered.
      this.held_ = [];
      this.heldBytes = 0;
      this.refuseFor(error, 'message');
      return false;
    }
    this.messageListener?.(message);
    return true;
  }

  private cancel(): void {
    if (this.cancelled) return;
    // Messages received before the reset were sent by the client: hand them over before saying it is over.
    this.deliverHeld();
    this.cancelled = true;
    for (const listener of this.cancelListeners?.splice(0) ?? []) listener();
  }

  /** A bad request: answer its status, stop reading and let the handler know the call is over. */
  private refuse(code: StatusCode, message: string): void {
    this.fail(code, message);
    this.reader.discard();
    this.releaseRequest();
    this.cancel();
  }

  private refuseFor(error: unknown, what: string): void {
    if (error instanceof CallError) this.refuse(error.code, error.message);
    else this.refuse(Status.INVALID_ARGUMENT, `malformed ${what}: ${(error as Error).message}`);
  }
}
