/**
 * The processes a chaos scenario runs and breaks: its own Redis and PostgreSQL servers (never the shared ones on
 * 6379 and 5432) and Tollgate servers, all on free loopback ports, each removed again by stop().
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from '../test/support/ports.js';

/** Polls `probe` until it returns true, or throws naming `what` after timeoutMs. */
async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 30_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve(probe()).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
  return pages * 4096;
}

/** `redis-server` without persistence: kill() and start() again give an empty Redis on the same port. */
export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const redis = new RedisServer(await freePort());
    await redis.launch();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async launch(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    this.child = child;
    await waitFor(`redis on ${this.port}`, () => pingRedis(this.port));
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  async kill(): Promise<void> {
    if (!this.child) return;
    const child = this.child;
    this.child = undefined;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited(child);
  }
}

function pingRedis(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500, () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => (socket.destroy(), resolve(data.toString().startsWith('+PONG'))));
  });
}

/**
 * A PostgreSQL cluster of its own (initdb into a temporary directory), reached over TCP on a free loopback port.
 * PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
 */
export class PostgresServer {
  private child: ChildProcess | undefined;
  private databases = 0;

  private constructor(
    private readonly bin: string,
    private readonly dataDir: string,
    readonly port: number,
    private readonly owner: { uid: number; gid: number } | undefined,
  ) {}

  static async start(): Promise<PostgresServer> {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    const bin = versions.map((version) => `/usr/lib/postgresql/${version}/bin`).find((dir) => existsSync(join(dir, 'postgres')));
    if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
    const root = mkdtempSync(join(tmpdir(), 'tollgate-chaos-pg-'));
    chmodSync(root, 0o755);
    const dataDir = join(root, 'data');
    const owner = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) } : undefined;
    if (owner) chownSync(root, owner.uid, owner.gid);
    execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'], { stdio: 'ignore', ...owner });
    const server = new PostgresServer(bin, dataDir, await freePort(), owner);
    await server.launch();
    return server;
  }

  async launch(): Promise<void> {
    const args = ['-D', this.dataDir, '-p', String(this.port), '-h', '127.0.0.1', '-k', this.dataDir, '-c', 'fsync=on', '-c', 'max_connections=200'];
    this.child = spawn(join(this.bin, 'postgres'), args, { stdio: 'ignore', ...this.owner });
    await waitFor(`PostgreSQL on ${this.port}`, async () => {
      const client = new pg.Client({ connectionString: this.adminUrl });
      client.on('error', () => {});
      await client.connect();
      await client.end();
      return true;
    });
  }

  /** Fast shutdown (SIGINT): connections are cut at once, as when the database server goes away. */
  async stop(): Promise<void> {
    if (!this.child) return;
    const child = this.child;
    this.child = undefined;
    child.kill('SIGINT');
    await exited(child);
  }

  async remove(): Promise<void> {
    await this.stop();
    rmSync(join(this.dataDir, '..'), { recursive: true, force: true });
  }

  private get adminUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** A fresh database for one Tollgate server; its URL. */
  async createDatabase(): Promise<string> {
    const name = `chaos_${++this.databases}`;
    await this.query(`CREATE DATABASE ${name}`);
    return `postgres://postgres@127.0.0.1:${this.port}/${name}`;
  }

  async query<Row = Record<string, unknown>>(sql: string, url = this.adminUrl): Promise<Row[]> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(sql)).rows as Row[];
    } finally {
      await client.end();
    }
  }
}

export const adminToken = 'chaos-admin-token-0123456789';

/** `tollgate serve` as a child process (the CLI's own entry, run through tsx), on free loopback ports. */
export class TollgateServer {
  private readonly logLines: string[] = [];
  private readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    private readonly child: ChildProcess,
    readonly grpcPort: number,
    readonly httpPort: number,
  ) {
    let pending = '';
    const collect = (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop()!;
      this.logLines.push(...lines);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Starts a server and waits until /readyz answers 200. The environment adds to and overrides the defaults. */
  static async start(env: Record<string, string>): Promise<TollgateServer> {
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const full = {
      TOLLGATE_CATALOG: 'chaos/catalog.yaml',
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_GRPC_PORT: String(grpcPort),
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_HTTP_PORT: String(httpPort),
      TOLLGATE_ADMIN_TOKEN: adminToken,
      TOLLGATE_LOG_LEVEL: 'info',
      TOLLGATE_SYNC_INTERVAL_MS: '100',
      TOLLGATE_SHUTDOWN_GRACE_MS: '5000',
      ...env,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'serve'], {
      env: { ...process.env, ...full },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new TollgateServer(child, grpcPort, httpPort);
    await waitFor('Tollgate /readyz', async () => {
      if (server.child.exitCode !== null) throw new Error(`tollgate exited with ${server.child.exitCode}:\n${server.logLines.slice(-20).join('\n')}`);
      return (await server.http('/readyz')).status === 200;
    }, 60_000, 100).catch((error: unknown) => {
      server.child.kill('SIGKILL');
      throw error;
    });
    return server;
  }

  get grpcAddress(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get exited() {
    return this.exit;
  }

  /** The JSON log lines (pino) the server wrote so far. */
  logs(): Record<string, unknown>[] {
    return this.logLines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  http(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.httpUrl}${path}`, { ...init, signal: init.signal ?? AbortSignal.timeout(10_000) });
  }

  /** Calls the admin API; throws on any status but 2xx. */
  async admin<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.http(path, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A customer with an API key on `plan`; the key once the server's identity cache knows it. */
  async customerKey(customer: string, plan = 'unbounded'): Promise<string> {
    await this.admin('POST', '/v1/customers', { id: customer, name: customer });
    const { key } = await this.admin<{ key: string }>('POST', '/v1/keys', { customer, plan });
    return key;
  }

  /** A series' value in the server's Prometheus exposition, summed over the labels that match `labels`. */
  async metric(name: string, labels = ''): Promise<number> {
    const text = await (await this.http('/metrics')).text();
    let total = 0;
    for (const [, series, value] of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
      if (!labels || (series ?? '').includes(labels)) total += Number(value);
    }
    return total;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGTERM and wait for the exit (SIGKILL after the timeout). */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exit;
    clearTimeout(timer);
  }
}
