import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPortsFree, portUnavailable } from '../src/kernel/ports.js';
import { processTestTimeoutMs, processWaitMs, serve, serveAdminToken, spawnServe, testDir, timeToExit } from './support/serve-process.js';

const customers = (httpPort: number) =>
  fetch(`http://127.0.0.1:${httpPort}/v1/customers`, { headers: { authorization: `Bearer ${serveAdminToken}` } }).then((r) => r.json());

/** One data directory, one server (Tollgate issue 20): the embedded database is single-process. */
describe('data directory lock', { timeout: processTestTimeoutMs }, () => {
  it('refuses a second server on the same data directory, naming the directory and the holder', async () => {
    const first = await serve();
    const second = await spawnServe({ dataDir: first.dataDir });
    const { code, ms } = await timeToExit(second, Date.now());
    expect(code).toBe(1);
    // It gives up rather than waiting for the lock: an exit at all says so; the bound only keeps a wait from passing.
    expect(ms).toBeLessThan(processWaitMs);
    expect(second.output).toContain(`data directory ${first.dataDir} is in use by another Tollgate process (PID ${first.child.pid})`);
    // The first one goes on serving, and releases the directory when it stops.
    expect(await customers(first.httpPort)).toMatchObject({ data: [] });
    expect(JSON.parse(readFileSync(join(first.dataDir, 'tollgate.lock'), 'utf8'))).toMatchObject({ pid: first.child.pid });
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(existsSync(join(first.dataDir, 'tollgate.lock'))).toBe(false);
  });

  it('takes over the lock of a process that is gone', async () => {
    const dataDir = testDir('lock');
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(dataDir, 'tollgate.lock'), `${JSON.stringify({ pid: gone, started: '1' })}\n`);
    const server = await serve({ dataDir });
    expect(JSON.parse(readFileSync(join(dataDir, 'tollgate.lock'), 'utf8'))).toMatchObject({ pid: server.child.pid });
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('takes over a lock whose PID now belongs to another process', async () => {
    // In a container a restarted server often gets the PID its predecessor had; here, a live PID with another start time.
    const dataDir = testDir('lock');
    writeFileSync(join(dataDir, 'tollgate.lock'), `${JSON.stringify({ pid: process.pid, started: '1' })}\n`);
    const server = await serve({ dataDir });
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });
});

describe('ports taken', { timeout: processTestTimeoutMs }, () => {
  let holder: Server | undefined;
  afterEach(() => void holder?.close());

  const occupy = (port: number) =>
    new Promise<Server>((resolve) => {
      const server = createServer().listen(port, '127.0.0.1', () => resolve(server));
    });

  for (const which of ['HTTP', 'gRPC'] as const) {
    it(`fails fast naming the ${which} port, in plain words before anything else, before opening the database`, async () => {
      const server = await spawnServe({ env: { TOLLGATE_GRPC_PORT: '0', TOLLGATE_HTTP_PORT: '0' } });
      // spawnServe chose free ports for it; take the one under test back before the server gets to it.
      server.child.kill('SIGKILL');
      await server.exited;
      const port = which === 'HTTP' ? server.httpPort : server.grpcPort;
      holder = await occupy(port);
      const again = await spawnServe({ env: { [`TOLLGATE_${which === 'HTTP' ? 'HTTP' : 'GRPC'}_PORT`]: String(port) }, emptyDataDir: true });
      const { code } = await timeToExit(again, Date.now());
      expect(code).toBe(1);
      const variable = `TOLLGATE_${which === 'HTTP' ? 'HTTP' : 'GRPC'}_PORT`;
      // The one thing it says: no log lines before it, no stack trace after it.
      expect(again.output).toBe(
        `tollgate: ${which} port ${port} on 127.0.0.1 is already in use (${variable}): stop what listens there (another tollgate serve?) or set ${variable} to a free port\n`,
      );
      expect(existsSync(join(again.dataDir, 'pgdata'))).toBe(false);
    });
  }

  it('names every taken port at once', async () => {
    const [first, second] = [await occupy(0), await occupy(0)];
    try {
      const wanted = [first, second].map((server, i) => ({ name: i ? 'gRPC' : 'HTTP', variable: i ? 'TOLLGATE_GRPC_PORT' : 'TOLLGATE_HTTP_PORT', host: '127.0.0.1', port: (server.address() as AddressInfo).port }));
      const failure = await checkPortsFree([...wanted, { name: 'portal', variable: 'TOLLGATE_PORTAL_PORT', host: '127.0.0.1', port: 0 }]).catch((error: Error) => error);
      expect((failure as Error).message.split('\n')).toEqual(wanted.map(({ name, port, variable }) => expect.stringMatching(new RegExp(`^${name} port ${port} on 127\\.0\\.0\\.1 is already in use \\(${variable}\\)`))));
    } finally {
      first.close();
      second.close();
    }
  });

  it('names the setting when a port is taken between the check and the listen', async () => {
    holder = await occupy(0);
    const port = (holder.address() as AddressInfo).port;
    const wanted = [{ name: 'HTTP', variable: 'TOLLGATE_HTTP_PORT', host: '127.0.0.1', port }];
    const late = createServer();
    const failure = await new Promise<Error>((resolve) => late.once('error', resolve).listen(port, '127.0.0.1'));
    expect(portUnavailable(failure, wanted)?.message).toMatch(new RegExp(`^HTTP port ${port} on 127\\.0\\.0\\.1 is already in use \\(TOLLGATE_HTTP_PORT\\)`));
    expect(portUnavailable(new Error('boom'), wanted)).toBeUndefined();
  });
});
