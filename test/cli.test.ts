import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

const run = promisify(execFile);

/** The CLI as a user runs it: a separate process talking to a running server's admin API and gRPC port. */
describe('tollgate CLI', () => {
  let service: TestApp;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    service = await startTestApp({ mode: 'embedded' });
    env = { ...process.env, TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken, TOLLGATE_GRPC_ADDR: service.grpcAddress };
  });
  afterAll(async () => {
    await service?.close();
  });

  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { env });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  it('creates a customer and a key, prints the key on its last line, and checks with it', async () => {
    expect((await cli('customers', 'create', '--id', 'cli-co', '--name', 'CLI Co')).code).toBe(0);
    const created = await cli('keys', 'create', '--customer', 'cli-co', '--plan', 'free');
    expect(created.code).toBe(0);
    const key = created.stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^tg_[0-9A-Za-z]+$/);

    const allowed = await cli('check', '--key', key, '--method', 'GET', '--path', '/api/v1/pets');
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^ALLOW 200/);
    expect(JSON.parse(allowed.stdout.slice(allowed.stdout.indexOf('{')))).toMatchObject({ upstreamHeaders: { 'x-tollgate-customer-id': 'cli-co' } });

    const denied = await cli('check', '--key', key, '--method', 'GET', '--path', '/api/v1/analytics');
    expect(denied.code).toBe(1);
    expect(denied.stdout).toMatch(/^DENY 403/);
  });

  it('revokes a key', async () => {
    await cli('customers', 'create', '--id', 'cli-revoke', '--name', 'Revoke Co');
    const created = await cli('keys', 'create', '--customer', 'cli-revoke', '--plan', 'pro');
    const keyId = /Created key (key_\w+)/.exec(created.stdout)![1]!;
    const revoked = await cli('keys', 'revoke', keyId);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: keyId, status: 'revoked' });
  });

  it('reports API errors with their field and exits 1', async () => {
    const result = await cli('keys', 'create', '--customer', 'nobody', '--plan', 'free');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/customer nobody not found \[not_found\]/);
    const badPlan = await cli('subscriptions', 'create', '--customer', 'cli-co', '--plan', 'gold');
    expect(badPlan.stderr).toMatch(/field: plan/);
  });

  it('exits 2 with usage on a bad command or option', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
    const missing = await cli('keys', 'create', '--customer', 'x');
    expect(missing.code).toBe(1);
    expect((await cli('customers', 'create')).stderr).toMatch(/missing --name/);
    expect((await cli('keys', 'list', '--bogus')).code).toBe(2);
  });

  it('validates a catalog file with config check', async () => {
    expect((await cli('config', 'check', '--catalog', 'examples/petstore.yaml')).stdout).toMatch(/ok \(1 products, \d+ plans\)/);
    const broken = await cli('config', 'check', '--catalog', 'test/fixtures/catalog/bad-window.yaml');
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/bad-window\.yaml:14:\d+: plans\[0\]\.rate_limits\[0\]\.window/);
  });

  it('says clearly when the server cannot be reached', async () => {
    const result = await run(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'customers', 'list'], {
      env: { ...env, TOLLGATE_URL: 'http://127.0.0.1:1' },
    }).catch((error: { code: number; stderr: string }) => error);
    expect(result).toMatchObject({ code: 1 });
    expect((result as { stderr: string }).stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1/);
  });

  it('ends quietly when its reader stops early, as `| head` does', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'customers', 'list'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  });
});
