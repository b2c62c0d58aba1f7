/**
 * ALS ingest: entries per second sustained from Envoy's access-log stream into PostgreSQL (spooled, de-duplicated,
 * rolled up and committed), through the real server (`startApp`) on a fresh database.
 *
 * The client plays Envoy, which encodes in C++ on another machine: messages are encoded from templates made with the
 * canonical protos, each entry with a fresh usage id and its signature, all before the measured run, which then only
 * writes their bytes (in chunks of about a megabyte, over HTTP/2 flow control); so the measured CPU is Tollgate's and
 * PostgreSQL's. The run ends when the last entry of every stream is in PostgreSQL.
 *
 * Standalone: `npx tsx bench/als-ingest.ts` (TOLLGATE_BENCH_DATABASE_URL, else TOLLGATE_TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/test names the server; a scratch database is created and dropped).
 */
import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadEnvoyServices } from '../src/grpc/protos.js';
import { toStruct } from '../test/support/envoy-wire.js';
import { withPgClient } from '../test/support/test-run.js';
import { buildDist, processCpuMicros, startTollgate } from './processes.js';
import { extAuthzNamespace } from '../src/grpc/als-wire.js';

export interface AlsIngestOptions {
  /** Entries in the measured run (a warm-up of a tenth comes first). */
  entries?: number;
  streams?: number;
  entriesPerMessage?: number;
  batchSize?: number;
}

export interface AlsIngestResult {
  entriesPerSecond: number;
  entries: number;
  seconds: number;
  streams: number;
  entriesPerMessage: number;
  batchSize: number;
  /** Mean time per flush transaction (COPY + insert + rollups), from Tollgate's own histogram. */
  meanFlushMs: number;
  /** Mean events per flush transaction (full segments, several merged when the writer is behind). */
  meanFlushEvents: number;
  /**
   * CPU per entry over the measured run, in microseconds: Tollgate's process (all threads), the PostgreSQL backends
   * serving the scratch database, and this client playing Envoy. It moves less with the shared machine than the rate.
   */
  cpuMicrosPerEntry: { tollgate: number; postgres: number; client: number };
  /** The PostgreSQL server's settings that bound its write rate, as found (the bench does not tune them). */
  postgres: Record<string, string>;
}

const serverUrl = process.env.TOLLGATE_BENCH_DATABASE_URL ?? process.env.TOLLGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Usage ids as the Check issues them (src/check/usage-identity.ts UsageIds): millisecond, instance, sequence. */
const idLength = 21;
/** Entries carry the Check's signed usage id, as Envoy copies it from the Check's metadata: metering verifies each. */
export const signingKey = 'bench-usage-signing-key-0123456789abcdef';
const signatureLength = 22;
/** As Tollgate holds it: a key object, not a string hashed into a key on every signature. */
const signingKeyObject = createSecretKey(Buffer.from(signingKey, 'utf8'));
const periodStart = Date.UTC(2026, 11, 1);
const endpoints = [
  { id: 'list-pets', weight: 1, method: 'GET', path: '/api/v1/pets' },
  { id: 'create-pet', weight: 2, method: 'POST', path: '/api/v1/pets' },
  { id: 'upload-pet-image', weight: 10, method: 'POST', path: '/api/v1/pets/42/image' },
];

export async function runAlsIngestBench(options: AlsIngestOptions = {}): Promise<AlsIngestResult> {
  const entries = options.entries ?? 1_000_000;
  const streams = options.streams ?? 4;
  const entriesPerMessage = options.entriesPerMessage ?? 50;
  const batchSize = options.batchSize ?? 50_000;

  // The server runs in its own process, as it does beside Envoy: the client's encoding and HTTP/2 framing are not
  // charged to it.
  buildDist();
  const database = await ScratchDatabase.create();
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-als-'));
  const server = await startTollgate({
    TOLLGATE_CATALOG: 'examples/petstore.yaml',
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_DATABASE_URL: database.url,
    TOLLGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789',
    TOLLGATE_USAGE_SIGNING_KEY: signingKey,
    TOLLGATE_USAGE_BATCH_SIZE: String(batchSize),
  }).catch(async (error: unknown) => {
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  });
  const messagesPerStream = (count: number) => Math.ceil(count / entriesPerMessage / streams);
  // Envoy encodes in C++, on its own machine: every message is encoded before the client connects (the time it takes
  // would exceed the server's keepalive timeout on an idle connection) and before anything is measured.
  const messages = new MessageFactory(entriesPerMessage);
  const warmUp = messages.encode(messagesPerStream(entries / 10), streams);
  const measured = messages.encode(messagesPerStream(entries), streams);
  const client = new RawAccessLogClient(`127.0.0.1:${server.info.grpcPort}`);
  const metrics = async () => (await fetch(`http://127.0.0.1:${server.info.httpPort}/metrics`)).text();
  const stored = async () => metricValue(await metrics(), 'tollgate_usage_events_stored_total');
  /**
   * Streams the encoded messages, each stream its share, and returns once all are committed: when each stream's last
   * entry is in PostgreSQL, since the server commits its spool in the order it appended it. One index lookup per poll:
   * scraping /metrics instead cost the server a few milliseconds of CPU each time, charged to ingest.
   */
  const send = async (encoded: EncodedStreams) => {
    await Promise.all(encoded.streams.map((chunks) => client.stream(chunks)));
    while (!(await database.stores(encoded.lastUsageIds))) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  /** Then the server's own count, unmeasured: every entry sent was stored, once. */
  const allStored = async (target: number) => {
    for (let waited = 0; (await stored()) < target; waited += 50) {
      if (waited > 10_000) throw new Error(`the server stored ${target - (await stored())} fewer entries than were sent`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  try {
    await send(warmUp);
    await allStored(warmUp.entries);
    const flushes = (exposition: string) => ({
      count: metricValue(exposition, 'tollgate_usage_flush_duration_seconds_count'),
      sum: metricValue(exposition, 'tollgate_usage_flush_duration_seconds_sum'),
    });
    const before = flushes(await metrics());
    const cpuBefore = { tollgate: server.cpuMicros(), postgres: await database.backendCpuMicros(), client: process.cpuUsage() };
    const started = performance.now();
    await send(measured);
    const sent = measured.entries;
    const seconds = (performance.now() - started) / 1000;
    const client = process.cpuUsage(cpuBefore.client);
    const cpu = { tollgate: server.cpuMicros() - cpuBefore.tollgate, postgres: (await database.backendCpuMicros()) - cpuBefore.postgres, client: client.user + client.system };
    await allStored(warmUp.entries + sent);
    const after = flushes(await metrics());
    const unbillable = await database.count("SELECT count(*) AS count FROM usage_events WHERE NOT billable");
    if (unbillable > 0) throw new Error(`${unbillable} entries were stored as not billable: their signatures did not verify`);
    const flushCount = after.count - before.count;
    return {
      entriesPerSecond: Math.round(sent / seconds),
      entries: sent,
      seconds: Number(seconds.toFixed(2)),
      streams,
      entriesPerMessage,
      batchSize,
      meanFlushMs: Number((((after.sum - before.sum) / Math.max(1, flushCount)) * 1000).toFixed(1)),
      meanFlushEvents: Math.round(sent / Math.max(1, flushCount)),
      cpuMicrosPerEntry: {
        tollgate: Number((cpu.tollgate / sent).toFixed(2)),
        postgres: Number((cpu.postgres / sent).toFixed(2)),
        client: Number((cpu.client / sent).toFixed(2)),
      },
      postgres: await ScratchDatabase.settings(['server_version', 'shared_buffers', 'max_wal_size', 'synchronous_commit']),
    };
  } finally {
    client.close();
    await server.stop();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A series' value in a Prometheus exposition (the sum over its labels). */
function metricValue(exposition: string, name: string): number {
  let total = 0;
  for (const [, value] of exposition.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) total += Number(value);
  return total;
}


/** Each stream's messages, gRPC-framed and concatenated into chunks of about a megabyte, and the entries they hold. */
interface EncodedStreams {
  streams: Buffer[][];
  entries: number;
  /** The usage id of each stream's last entry. */
  lastUsageIds: string[];
}

/** Envoy-shaped StreamAccessLogsMessages, encoded once per template; each copy gets fresh, signed usage ids. */
export class MessageFactory {
  private readonly templates: { bytes: Buffer; entries: { idOffsets: number[]; signatureOffset: number; factsTail: string }[] }[] = [];
  private sequence = 0;
  /** The instance part of the usage ids, and the millisecond the first was issued in. */
  private readonly instance = randomBytes(6).toString('base64url');
  private readonly firstMillisecond = Date.now();
  /** The usage id of the last entry of the last message made. */
  private lastUsageId = '';

  constructor(private readonly entriesPerMessage: number) {
    const method = (loadEnvoyServices().accessLog as unknown as Record<string, { requestSerialize(value: unknown): Buffer }>).StreamAccessLogs!;
    for (let t = 0; t < 16; t++) {
      const placeholders = Array.from({ length: entriesPerMessage }, (_, i) => `@${String(t).padStart(3, '0')}${String(i).padStart(idLength - 4, '0')}`);
      const signatures = placeholders.map((_, i) => `!${String(t).padStart(3, '0')}${String(i).padStart(6, '0')}`.padEnd(signatureLength, '!'));
      const built = placeholders.map((id, i) => entry(id, signatures[i]!, t * entriesPerMessage + i));
      const bytes = method.requestSerialize({ http_logs: { log_entry: built.map((each) => each.entry) } });
      this.templates.push({
        bytes,
        entries: placeholders.map((id, i) => ({ idOffsets: occurrences(bytes, Buffer.from(id), 3), signatureOffset: occurrences(bytes, Buffer.from(signatures[i]!), 1)[0]!, factsTail: built[i]!.factsTail })),
      });
    }
  }

  /**
   * The next `perStream` messages of each of `streams` streams, all encoded now: the client then only writes bytes,
   * as Envoy's C++ client does, and what it would spend encoding is not charged to the machine's two cores.
   * Messages go round the streams in turn, so usage ids grow across all of them together, as the Check issues them.
   */
  encode(perStream: number, streams: number): EncodedStreams {
    const chunkMessages = Math.max(1, Math.floor(2 ** 20 / (5 + this.templates[0]!.bytes.length)));
    const pending: Buffer[][] = Array.from({ length: streams }, () => []);
    const encoded: Buffer[][] = Array.from({ length: streams }, () => []);
    const lastUsageIds: string[] = [];
    for (let m = 0; m < perStream; m++) {
      for (let s = 0; s < streams; s++) {
        pending[s]!.push(this.next());
        if (pending[s]!.length === chunkMessages || m === perStream - 1) encoded[s]!.push(Buffer.concat(pending[s]!.splice(0)));
        lastUsageIds[s] = this.lastUsageId;
      }
    }
    return { streams: encoded, entries: perStream * streams * this.entriesPerMessage, lastUsageIds };
  }

  /** A gRPC-framed message (5-byte prefix, then the message), each entry with a fresh usage id and its signature. */
  next(): Buffer {
    const template = this.templates[this.sequence % this.templates.length]!;
    const framed = Buffer.allocUnsafe(5 + template.bytes.length);
    framed[0] = 0;
    framed.writeUInt32BE(template.bytes.length, 1);
    template.bytes.copy(framed, 5);
    // Each entry's id appears three times (request_id, and the Check's request_id and usage_id), then its signature.
    // The ids are those of a Check allowing 100 calls per millisecond (100,000/s) from the first.
    template.entries.forEach(({ idOffsets, signatureOffset, factsTail }, i) => {
      const n = this.sequence * this.entriesPerMessage + i;
      const usageId = (this.firstMillisecond + Math.floor(n / 100)).toString(36).padStart(9, '0') + this.instance + (n % 100).toString(36).padStart(4, '0');
      for (const offset of idOffsets) framed.write(usageId, 5 + offset, 'latin1');
      framed.write(sign(usageId, factsTail), 5 + signatureOffset, 'latin1');
      this.lastUsageId = usageId;
    });
    this.sequence++;
    return framed;
  }
}

const sign = (usageId: string, factsTail: string) => createHmac('sha256', signingKeyObject).update(`["${usageId}",${factsTail}`).digest().toString('base64url', 0, 16);

function entry(requestId: string, signature: string, n: number): { entry: Record<string, unknown>; factsTail: string } {
  const customer = `cus_${n % 200}`;
  const endpoint = endpoints[n % endpoints.length]!;
  const now = Date.now();
  const factsTail = JSON.stringify([customer, `sub_${customer}`, 'pro', periodStart, endpoint.id, endpoint.weight]).slice(1);
  const logEntry = {
    common_properties: {
      start_time: { seconds: String(Math.floor(now / 1000)), nanos: (now % 1000) * 1e6 },
      time_to_last_downstream_tx_byte: { seconds: '0', nanos: 8_500_000 },
      upstream_cluster: 'petstore',
      route_name: 'api',
      metadata: {
        filter_metadata: {
          [extAuthzNamespace]: toStruct({
            customer_id: customer,
            subscription_id: `sub_${customer}`,
            plan_id: 'pro',
            product_id: 'petstore',
            endpoint_id: endpoint.id,
            key_id: `key_${customer}`,
            weight: endpoint.weight,
            decision: 'allow',
            request_id: requestId,
            usage_id: requestId,
            usage_sig: signature,
            period_start: periodStart,
          }),
        },
      },
    },
    protocol_version: 'HTTP11',
    request: {
      request_method: endpoint.method,
      scheme: 'https',
      authority: 'api.petstore.example.com',
      path: endpoint.path,
      request_id: requestId,
      request_headers_bytes: '310',
      request_body_bytes: endpoint.method === 'POST' ? '240' : '0',
    },
    response: { response_code: { value: 200 }, response_headers_bytes: '180', response_body_bytes: '1450' },
  };
  return { entry: logEntry, factsTail };
}

function occurrences(haystack: Buffer, needle: Buffer, expected: number): number[] {
  const found: number[] = [];
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) found.push(at);
  if (found.length !== expected) throw new Error(`expected ${needle.toString()} ${expected} times in the template, found ${found.length}`);
  return found;
}

/**
 * A StreamAccessLogs client that sends already-framed gRPC messages on plain HTTP/2, honouring flow control, as
 * Envoy's C++ client does: grpc-js's per-message client machinery would cost this shared machine more CPU than the
 * server's decoding, which is not what the figure is about.
 */
export class RawAccessLogClient {
  private readonly session: http2.ClientHttp2Session;

  constructor(address: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', () => {});
  }

  /** One StreamAccessLogs call sending `messages` messages made by `next`, at most `perSecond` a second (the memory soak). */
  streamAtRate(messages: number, next: () => Buffer, perSecond: number): Promise<void> {
    async function* paced() {
      const started = performance.now();
      for (let sent = 0; sent < messages; sent++) {
        const wait = started + (sent / perSecond) * 1000 - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        yield next();
      }
    }
    return this.stream(paced());
  }

  /** One StreamAccessLogs call sending `chunks` (framed messages, back to back) as fast as flow control lets it. */
  async stream(chunks: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void> {
    const call = this.session.request({
      ':method': 'POST',
      ':path': '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const answered = new Promise<void>((resolve, reject) => {
      let status: string | undefined;
      call.on('response', (headers) => (status = headers['grpc-status'] as string | undefined ?? status));
      call.on('trailers', (trailers) => (status = trailers['grpc-status'] as string | undefined));
      call.on('error', reject);
      call.on('close', () => (status === '0' ? resolve() : reject(new Error(`StreamAccessLogs ended with grpc-status ${status}`))));
      call.resume();
    });
    // A stream that ends early rejects `answered`: it also ends a wait for 'drain', which would never come.
    answered.catch(() => {});
    for await (const chunk of chunks) {
      if (!call.write(chunk)) await Promise.race([new Promise((resolve) => call.once('drain', resolve)), answered]);
    }
    call.end();
    await answered;
  }

  close(): void {
    this.session.close();
  }
}

export class ScratchDatabase {
  /** One connection for the completion polls. */
  private poller: pg.Client | undefined;

  private constructor(
    readonly url: string,
    private readonly name: string,
  ) {}

  /** Whether every one of `usageIds` is stored. */
  async stores(usageIds: string[]): Promise<boolean> {
    if (!this.poller) {
      this.poller = new pg.Client({ connectionString: this.url });
      await this.poller.connect();
    }
    const { rows } = await this.poller.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_events WHERE usage_id = ANY($1)', [usageIds]);
    return rows[0]!.count === new Set(usageIds).size;
  }

  static async create(): Promise<ScratchDatabase> {
    const name = `tollgate_bench_${randomBytes(4).toString('hex')}`;
    await ScratchDatabase.admin(`CREATE DATABASE ${name}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    return new ScratchDatabase(url.toString(), name);
  }

  /** CPU used so far by the backends connected to this database (a backend that has exited no longer counts). */
  async backendCpuMicros(): Promise<number> {
    const { rows } = await withPgClient(serverUrl, (client) => client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [this.name]));
    let total = 0;
    for (const { pid } of rows) {
      try {
        total += processCpuMicros(pid);
      } catch {
        // The backend ended between the query and the read.
      }
    }
    return total;
  }

  async count(sql: string): Promise<number> {
    return withPgClient(this.url, async (client) => Number((await client.query<{ count: string }>(sql)).rows[0]!.count));
  }

  async drop(): Promise<void> {
    await this.poller?.end();
    return ScratchDatabase.admin(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
  }

  static async settings(names: string[]): Promise<Record<string, string>> {
    const { rows } = await withPgClient(serverUrl, (client) =>
      client.query<{ name: string; setting: string }>('SELECT name, current_setting(name) AS setting FROM unnest($1::text[]) AS name', [names]),
    );
    return Object.fromEntries(rows.map((row) => [row.name, row.setting]));
  }

  private static async admin(sql: string): Promise<void> {
    await withPgClient(serverUrl, (client) => client.query(sql));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await runAlsIngestBench(), null, 2));
}
