/**
 * At least 100,000 hostile inputs against one server: random and truncated gRPC frames over raw HTTP/2, hostile
 * CheckRequest fields through a real gRPC client, random admin API bodies (with the admin token), garbage on both
 * ports, and catalog files with alias bombs through `tollgate config check`. The server must not crash, hang,
 * answer 500 or gRPC INTERNAL from a handler, and must be healthy afterwards.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ServiceError } from '@grpc/grpc-js';
import { loadEnvoyServices } from '../../src/grpc/protos.js';
import type { CheckRequestWire } from '../../src/grpc/wire.js';
import { FakeEnvoy } from '../../test/support/envoy.js';
import { RedisServer, rssBytes, TollgateServer, adminToken } from '../processes.js';
import { Random } from '../random.js';
import type { ScenarioContext, ScenarioResult } from '../scenario.js';

const seed = 20;
const hangMs = 10_000;

/** Outcome counts of one kind of input, and the first input that gave each failing outcome. */
class Tally {
  readonly counts: Record<string, number> = {};
  readonly failures: Record<string, string> = {};

  /** Failing inputs by outcome and `where` (e.g. the admin route), so each distinct failure keeps a sample. */
  readonly failureCounts: Record<string, number> = {};
  inputs = 0;
  failed = 0;
  /** What happened to the client's connections (GOAWAY codes, errors), for inputs sent over shared ones. */
  readonly connectionEvents: Record<string, number> = {};

  connectionEvent(event: string): void {
    this.connectionEvents[event] = (this.connectionEvents[event] ?? 0) + 1;
  }

  /** The routes (or other places) each failure was seen on. */
  readonly failurePlaces: Record<string, Set<string>> = {};

  add(outcome: string, failing: boolean, sample: () => string, cause = '', place = ''): void {
    this.inputs++;
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
    if (!failing) return;
    this.failed++;
    const failure = cause ? `${outcome} for ${cause}` : outcome;
    this.failureCounts[failure] = (this.failureCounts[failure] ?? 0) + 1;
    if (!(failure in this.failures)) this.failures[failure] = sample();
    if (place) (this.failurePlaces[failure] ??= new Set()).add(place);
  }
}

/** Runs `count` inputs, `concurrency` at a time. */
async function pool(count: number, concurrency: number, run: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await run(next++);
  }));
}

const show = (value: Buffer | string, max = 160) => {
  const text = typeof value === 'string' ? JSON.stringify(value) : `hex ${value.toString('hex')}`;
  return text.length > max ? `${text.slice(0, max)}… (${value.length} ${typeof value === 'string' ? 'chars' : 'bytes'})` : text;
};

/** The gRPC spec's answer to a broken frame is INTERNAL; only an INTERNAL with another message came from a handler. */
const framingMessages = /ended inside a message|without a request message|compression flag|grpc-encoding is identity|cannot decompress/;

export async function fuzz({ quick, postgres, log }: ScenarioContext): Promise<ScenarioResult> {
  const scale = quick ? 0.05 : 1;
  const counts = { frames: 40_000 * scale, checks: 30_000 * scale, admin: 30_000 * scale, garbage: 1_000 * scale, catalogs: quick ? 4 : 40 };
  const random = new Random(seed);
  const redis = await RedisServer.start();
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-chaos-fuzz-'));
  const server = await TollgateServer.start({ TOLLGATE_DATABASE_URL: await postgres.createDatabase(), TOLLGATE_REDIS_URL: redis.url, TOLLGATE_DATA_DIR: dataDir, TOLLGATE_LOG_LEVEL: 'warn' });
  const tallies: Record<string, Tally> = {};
  const findings: string[] = [];
  let healthyAfter = '';
  const rss = { before: 0, after: 0 };
  try {
    const key = await server.customerKey('fuzz');
    await new Promise((resolve) => setTimeout(resolve, 500));
    rss.before = rssBytes(server.pid);
    const parts: [string, () => Promise<Tally>][] = [
      ['random and truncated gRPC frames (raw HTTP/2)', () => grpcFrames(server, random, counts.frames, key)],
      ['hostile CheckRequests (grpc-js, Envoy protos)', () => hostileChecks(server, random, counts.checks, key)],
      ['admin API, random JSON bodies and path parameters', () => adminBodies(server, random, counts.admin)],
      ['garbage bytes on the gRPC and HTTP ports (raw TCP)', () => garbage(server, random, counts.garbage)],
      ['catalog YAML (alias bombs, mutations) via `tollgate config check`', () => catalogs(random, counts.catalogs, dataDir)],
    ];
    for (const [name, run] of parts) {
      const started = Date.now();
      const tally = await run();
      tallies[name] = tally;
      log(`${name}: ${tally.inputs} inputs in ${((Date.now() - started) / 1000).toFixed(0)} s; ${JSON.stringify(tally.counts)}; connections: ${JSON.stringify(tally.connectionEvents)}`);
      for (const [outcome, sample] of Object.entries(tally.failures)) {
        const places = [...(tally.failurePlaces[outcome] ?? [])];
        const where = places.length > 0 ? ` on ${places.length} route(s): ${places.slice(0, 6).join(', ')}${places.length > 6 ? ', …' : ''}` : '';
        findings.push(`fuzz, ${name}: ${tally.failureCounts[outcome]} × "${outcome}"${where}. First input (seed ${seed}): ${sample}`);
      }
      const goaways = Object.entries(tally.connectionEvents).filter(([event]) => event.startsWith('GOAWAY') && event !== 'GOAWAY 0');
      for (const [event, times] of goaways) {
        findings.push(
          `fuzz, ${name}: the server closed the fuzzing client's HTTP/2 connection ${times} time(s) with ${event} (${http2ErrorNames[Number(event.split(' ')[1])] ?? 'code'}), ` +
            `resetting every stream in flight on it (the "reset (n)" answers); which input causes it is not isolated yet. Reproduce: \`npm run chaos -- fuzz\` (seed ${seed}).`,
        );
      }
      if (!server.running) {
        findings.push(`fuzz, ${name}: the server crashed (${JSON.stringify(await server.exited)}).`);
        break;
      }
    }
    rss.after = server.running ? rssBytes(server.pid) : 0;
    const probe = async (path: string) => server.http(path, { signal: AbortSignal.timeout(5_000) }).then((r) => r.status, () => 0);
    healthyAfter = `/healthz ${await probe('/healthz')}, /readyz ${await probe('/readyz')}`;
    log(`afterwards: ${healthyAfter}; RSS ${mib(rss.before)} → ${mib(rss.after)} MiB`);
    if (!healthyAfter.endsWith('200') || !healthyAfter.startsWith('/healthz 200')) findings.push(`fuzz: the server was not healthy afterwards (${healthyAfter}).`);
    const errors = server.logs().filter((line) => Number(line.level) >= 50);
    if (errors.length > 0) log(`server error log lines: ${errors.length}; first: ${JSON.stringify(errors[0]).slice(0, 300)}`);
  } finally {
    await server.stop();
    await redis.kill();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const total = Object.values(tallies).reduce((sum, tally) => sum + tally.inputs, 0);
  const outcomes = (tally: Tally) => Object.entries(tally.counts).sort(([, a], [, b]) => b - a).map(([outcome, count]) => `${outcome}: ${count}`).join('; ');
  return {
    title: 'Fuzzing',
    description:
      `${total.toLocaleString('en')} inputs (seed ${seed}) against one server with Redis and PostgreSQL, each part after the other; an input ` +
      `without an answer in ${hangMs / 1000} s is a hang. A gRPC INTERNAL is counted as a failure only when a handler sent it: for a frame ` +
      `cut short or wrongly compressed, INTERNAL is the status the gRPC spec prescribes, and those are shown apart ("INTERNAL (framing)"). ` +
      `Raw frames share one HTTP/2 connection, 32 streams at a time: "reset (n)" is a stream reset with HTTP/2 error code n and no gRPC ` +
      `status, and "http 200" a stream that ended after its headers without trailers, both seen when the connection is torn down ` +
      `under streams in flight. The admin API part picks its routes from /openapi.json. ` +
      `Afterwards: ${healthyAfter || 'not reached'}; resident memory ${mib(rss.before)} MiB before, ${mib(rss.after)} MiB after.`,
    table: {
      head: ['inputs', 'count', 'crashes', 'hangs', 'HTTP 500 / gRPC INTERNAL or UNKNOWN from a handler', 'answers'],
      rows: Object.entries(tallies).map(([name, tally]) => [
        name,
        tally.inputs.toLocaleString('en'),
        String(tally.counts.crash ?? 0),
        String(tally.counts.hang ?? 0),
        String(tally.failed - (tally.counts.crash ?? 0) - (tally.counts.hang ?? 0)),
        outcomes(tally),
      ]),
    },
    findings,
  };
}

const http2ErrorNames = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM'];

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

function checkRequest(key: string, path = '/api/v1/pets'): CheckRequestWire {
  const headers = { ':method': 'GET', ':path': path, ':authority': 'api.example.com', 'x-api-key': key, 'x-request-id': 'fuzz' };
  return { attributes: { request: { http: { id: 'fuzz', method: 'GET', path, host: 'api.example.com', headers, scheme: 'https', protocol: 'HTTP/1.1' } } } };
}

/** Random, truncated, mis-prefixed and bit-flipped gRPC frames on raw HTTP/2 streams to the Check and ALS methods. */
async function grpcFrames(server: TollgateServer, random: Random, count: number, key: string): Promise<Tally> {
  const tally = new Tally();
  const { authorization, accessLog } = loadEnvoyServices();
  const serializeCheck = (authorization.Check as unknown as { requestSerialize(value: unknown): Buffer }).requestSerialize;
  const serializeLogs = (accessLog.StreamAccessLogs as unknown as { requestSerialize(value: unknown): Buffer }).requestSerialize;
  const validCheck = serializeCheck(checkRequest(key));
  const validLogs = serializeLogs({ http_logs: { log_entry: [{ request: { request_id: 'fuzz', request_method: 'GET' }, response: { response_code: { value: 200 } } }] } });
  const framed = (message: Buffer, flag = 0, length = message.length) => Buffer.concat([Buffer.from([flag, length >>> 24, (length >>> 16) & 255, (length >>> 8) & 255, length & 255]), message]);
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  const paths = ['/envoy.service.auth.v3.Authorization/Check', '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs', '/grpc.health.v1.Health/Check', '/nope/Nope'];
  const variants: ((valid: Buffer) => { body: Buffer; headers?: Record<string, string> })[] = [
    () => ({ body: random.bytes(random.int(2_000)) }),
    () => ({ body: framed(random.bytes(random.int(2_000))) }),
    (valid) => ({ body: framed(valid).subarray(0, random.int(valid.length + 5)) }),
    (valid) => ({ body: framed(valid, 0, valid.length + 1 + random.int(100_000)) }),
    (valid) => ({ body: framed(valid, 0, Math.max(0, valid.length - 1 - random.int(valid.length))) }),
    (valid) => {
      const copy = Buffer.from(valid);
      for (let flips = 1 + random.int(8); flips > 0; flips--) {
        const at = random.int(copy.length);
        copy[at] = copy[at]! ^ (1 << random.int(8));
      }
      return { body: framed(copy) };
    },
    (valid) => ({ body: framed(gzipSync(valid).subarray(0, random.int(40)), 1), headers: { 'grpc-encoding': 'gzip' } }),
    () => ({ body: framed(random.bytes(64), 1), headers: { 'grpc-encoding': random.pick(['gzip', 'identity', 'br', '']) } }),
    (valid) => ({ body: framed(valid, 2 + random.int(254)) }),
    (valid) => ({ body: Buffer.concat([framed(valid), framed(valid)]) }),
    (valid) => ({ body: framed(valid), headers: { 'grpc-timeout': random.pick(['0n', '1n', '99999999H', 'abc', '-1S', '']) } }),
    (valid) => ({ body: framed(valid), headers: { 'content-type': random.pick(['application/json', 'application/grpc+proto', 'application/grpcx', 'text/plain']) } }),
    // A gzip bomb: 64 MiB of zeros in about 64 KiB.
    () => ({ body: framed(bomb, 1), headers: { 'grpc-encoding': 'gzip' } }),
  ];
  let session: http2.ClientHttp2Session | undefined;
  const open = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(`http://${server.grpcAddress}`);
      session.on('error', (error: Error & { code?: string }) => tally.connectionEvent(`error ${error.code ?? error.message}`));
      session.on('goaway', (code) => tally.connectionEvent(`GOAWAY ${code}`));
    }
    return session;
  };
  await pool(count, 32, async (index) => {
    const path = random.pick(paths);
    const valid = path.includes('AccessLog') ? validLogs : validCheck;
    const variant = random.int(variants.length);
    const { body, headers = {} } = variants[variant]!(valid);
    const outcome = await new Promise<{ outcome: string; message: string }>((resolve) => {
      const stream = open().request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
      let status: string | undefined;
      let message = '';
      let http = 0;
      const timer = setTimeout(() => (stream.close(http2.constants.NGHTTP2_CANCEL), resolve({ outcome: 'hang', message: '' })), hangMs);
      const take = (fields: http2.IncomingHttpHeaders) => {
        if (fields['grpc-status'] !== undefined) status = String(fields['grpc-status']);
        if (fields['grpc-message'] !== undefined) message = decodeURIComponent(String(fields['grpc-message']));
      };
      stream.on('response', (fields) => ((http = Number(fields[':status'])), take(fields)));
      stream.on('trailers', take);
      stream.on('data', () => {});
      stream.on('error', () => {});
      stream.on('close', () => {
        clearTimeout(timer);
        if (status !== undefined) resolve({ outcome: `grpc ${grpcName(Number(status))}${status === '13' && framingMessages.test(message) ? ' (framing)' : ''}`, message });
        else if (http) resolve({ outcome: `http ${http}`, message });
        else resolve({ outcome: `reset (${stream.rstCode})`, message });
      });
      stream.end(body);
    });
    const failing = outcome.outcome === 'hang' || outcome.outcome === 'grpc INTERNAL' || outcome.outcome === 'grpc UNKNOWN' || outcome.outcome === 'http 500';
    tally.add(outcome.outcome, failing, () => `input ${index}, ${path}, variant ${variant}, headers ${JSON.stringify(headers)}, body ${show(body)}; answer "${outcome.message}"`);
  });
  session?.close();
  return tally;
}

const grpcNames = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const grpcName = (code: number) => grpcNames[code] ?? String(code);

/** CheckRequests whose fields are hostile: 1 MB paths, NUL bytes, bad percent-encoding, huge header maps, odd keys. */
async function hostileChecks(server: TollgateServer, random: Random, count: number, key: string): Promise<Tally> {
  const tally = new Tally();
  const envoys = Array.from({ length: 4 }, () => new FakeEnvoy(server.grpcAddress));
  const megabyte = '/api/v1/pets/' + 'a'.repeat(1024 * 1024);
  const paths = () =>
    random.pick([
      megabyte,
      `/api/v1/pets/${random.hostileString(200)}`,
      `/api/v1/pets/%${random.hostileString(4)}`,
      `/api/v1/pets\0/1`,
      '/api/v1/pets/%00',
      '/api/v1/pets/%E0%A4%A',
      '/api/v1/./pets/../pets/1',
      `/api/v1/pets?${'a=1&'.repeat(10_000)}`,
      '',
      '*',
      random.hostileString(100),
      '/api/v1/pets',
    ]);
  await pool(count, 16, async (index) => {
    const path = paths();
    const request = checkRequest(random.next() < 0.5 ? key : random.hostileString(60), path);
    const http = request.attributes!.request!.http!;
    const headers = http.headers!;
    switch (random.int(6)) {
      case 0:
        http.method = random.pick(['', 'GET\0', 'BREW', random.hostileString(50), 'x'.repeat(100_000)]);
        break;
      case 1:
        http.host = random.pick(['', '\0', 'a'.repeat(100_000), random.hostileString(80)]);
        headers[':authority'] = http.host;
        break;
      case 2:
        for (let i = 0; i < 2_000; i++) headers[`x-h-${i}`] = random.hostileString(20);
        break;
      case 3:
        headers.authorization = random.pick(['Bearer ', 'Bearer \0', `Bearer ${'a.'.repeat(5_000)}`, 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', random.hostileString(200)]);
        delete headers['x-api-key'];
        break;
      case 4:
        headers['x-api-key'] = random.pick(['', '\0', 'k'.repeat(1024 * 1024), `${key}\0`, random.hostileString(300)]);
        break;
      default:
        headers[random.hostileString(30).toLowerCase() || 'x'] = random.hostileString(200);
    }
    headers[':path'] = path;
    let outcome: string;
    try {
      const response = await envoys[index % envoys.length]!.checkRaw(request);
      outcome = (response.status?.code ?? 0) === 0 ? 'allowed' : `denied ${response.denied_response?.status?.code ?? '?'}`;
    } catch (error) {
      const code = (error as ServiceError).code;
      outcome = code === 4 ? 'hang' : `grpc ${grpcName(code)}`;
    }
    const failing = outcome === 'hang' || outcome === 'grpc INTERNAL' || outcome === 'grpc UNKNOWN' || outcome.startsWith('denied InternalServerError');
    tally.add(outcome, failing, () => `input ${index}, CheckRequest ${show(JSON.stringify(request), 400)}`);
  });
  for (const envoy of envoys) envoy.close();
  return tally;
}

/** Admin API calls with the admin token: every route of /openapi.json, random path parameters, random JSON bodies. */
async function adminBodies(server: TollgateServer, random: Random, count: number): Promise<Tally> {
  const tally = new Tally();
  const document = (await (await server.http('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
  const routes = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => ({ method: method.toUpperCase(), path })));
  // Percent-encoded byte by byte (a lone surrogate becomes U+FFFD), with a raw '%' now and then: bad percent-encoding.
  const encode = (text: string) => Array.from(Buffer.from(text), (byte) => (/[\w.~-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0')}`)).join('');
  const parameter = () => encode(random.pick(['fuzz', 'cus_1', '', random.hostileString(40)])).replaceAll('%25', random.next() < 0.3 ? '%' : '%25');
  await pool(count, 8, async (index) => {
    const route = random.pick(routes);
    const path = route.path.replace(/\{[^}]+\}/g, parameter) + (random.next() < 0.2 ? `?${random.pick(['limit', 'status', 'period', 'after', 'customer'])}=${encode(random.hostileString(20))}` : '');
    const body = random.next() < 0.1 ? random.pick(['{', 'nul\0l', '[]'.repeat(50_000), '{"a":' .repeat(10_000)]) : JSON.stringify(random.json());
    const method = route.method === 'GET' && random.next() < 0.9 ? 'GET' : route.method;
    const outcome = await server
      .http(path, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        ...(method === 'GET' || method === 'HEAD' ? {} : { body }),
        signal: AbortSignal.timeout(hangMs),
      })
      .then(async (response) => {
        await response.arrayBuffer();
        return `http ${response.status}`;
      }, (error: unknown) => ((error as Error).name === 'TimeoutError' ? 'hang' : `client error ${(error as Error).message}`));
    const [pathPart, query = ''] = path.split('?');
    const cause = pathPart!.includes('%00') ? 'a NUL byte (%00) in a path parameter' : query.includes('%00') ? 'a NUL byte (%00) in a query parameter' : `${method} ${route.path}`;
    tally.add(outcome, outcome === 'hang' || outcome === 'http 500', () => `input ${index}: ${method} ${show(path, 200)} body ${show(body, 200)}`, cause, `${method} ${route.path}`);
  });
  return tally;
}

/** Raw TCP connections that send random bytes (sometimes after a valid HTTP/2 preface) and see the server cope. */
async function garbage(server: TollgateServer, random: Random, count: number): Promise<Tally> {
  const tally = new Tally();
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  await pool(count, 8, async (index) => {
    const port = random.next() < 0.5 ? server.grpcPort : server.httpPort;
    const bytes = Buffer.concat([random.next() < 0.5 ? preface : Buffer.alloc(0), random.bytes(random.int(4_096))]);
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const timer = setTimeout(() => (socket.destroy(), resolve('held open 2 s')), 2_000);
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.on('close', () => (clearTimeout(timer), resolve('closed by the server')));
      socket.on('connect', () => socket.write(bytes));
    });
    tally.add(outcome, false, () => `input ${index}`);
  });
  return tally;
}

/** Catalog files through the CLI: alias bombs, deep nesting and mutations of the example catalog. */
async function catalogs(random: Random, count: number, dir: string): Promise<Tally> {
  const tally = new Tally();
  const example = readFileSync('examples/petstore.yaml', 'utf8');
  const bomb = (levels: number, width: number) => {
    const lines = ['version: 1', `a0: &a0 ["${'x'.repeat(10)}"]`];
    for (let level = 1; level <= levels; level++) lines.push(`a${level}: &a${level} [${Array.from({ length: width }, () => `*a${level - 1}`).join(', ')}]`);
    lines.push(`products: *a${levels}`, `plans: *a${levels}`);
    return lines.join('\n');
  };
  const makers = [
    () => bomb(9, 10),
    () => bomb(20, 2 + random.int(9)),
    () => `${example}\nx-bomb: ${bomb(9, 10).split('\n').slice(1).join('\n')}`,
    () => `version: 1\nproducts: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`,
    () => `version: 1\nproducts:\n${'  - '.repeat(1)}${'{a: '.repeat(5_000)}1${'}'.repeat(5_000)}\n`,
    () => {
      const lines = example.split('\n');
      for (let cuts = 1 + random.int(5); cuts > 0; cuts--) lines.splice(random.int(lines.length), 1);
      return lines.join('\n');
    },
    () => {
      const bytes = Buffer.from(example);
      for (let flips = 1 + random.int(20); flips > 0; flips--) bytes[random.int(bytes.length)] = random.int(256);
      return bytes.toString('latin1');
    },
    () => example.slice(0, random.int(example.length)),
    () => `version: 1\nproducts: !!binary ${Buffer.alloc(1_000).toString('base64')}\n`,
    () => `a: &a !!js/function "function () { process.exit(9) }"\nversion: 1\n`,
  ];
  for (let index = 0; index < count; index++) {
    const text = makers[index % makers.length]!();
    const file = join(dir, `catalog-${index}.yaml`);
    writeFileSync(file, text);
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'config', 'check', '--catalog', file], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (error, _stdout, stderr) => {
        const code = error ? ((error as { code?: number | string }).code ?? 'none') : 0;
        if (error && (error as { killed?: boolean }).killed) return resolve('hang');
        if (error?.signal) return resolve(`crash (${error.signal})`);
        if (/\n\s+at .+:\d+:\d+\)?\n/.test(stderr) || /heap out of memory/i.test(stderr)) return resolve(`crash (exit ${code}, stack trace)`);
        resolve(`exit ${code}`);
      });
    });
    const failing = outcome === 'hang' || outcome.startsWith('crash') || Date.now() - started > 20_000;
    tally.add(outcome === 'hang' || !outcome.startsWith('crash') ? outcome : 'crash', failing, () => `catalog ${index} (maker ${index % makers.length}), ${show(text, 200)}: ${outcome}`);
  }
  return tally;
}
