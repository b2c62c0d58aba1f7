import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeServer, type StripeServer } from './stripe-server/server.js';
import { jsonOf, runCli } from './support/cli.js';
import { freePort } from './support/ports.js';
import { builtCli, spawnCli } from './support/serve-process.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

/** The CLI as a user runs it, in this process: its main(argv) against a running server's admin API and gRPC port. */
describe('tollgate CLI', () => {
  let stripe: StripeServer;
  let service: TestApp;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(env, ...args);
  const packageVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

  beforeAll(async () => {
    stripe = await startStripeServer();
    service = await startTestApp({
      mode: 'embedded',
      env: { TOLLGATE_STRIPE_SECRET_KEY: 'sk_test_tollgate_cli', TOLLGATE_STRIPE_API_BASE: stripe.url, TOLLGATE_STRIPE_SYNC_INTERVAL_MS: '20' },
    });
    env = { TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken, TOLLGATE_GRPC_ADDR: service.grpcAddress };
  });
  afterAll(async () => {
    await service?.close();
    await stripe?.close();
  });

  const newKey = async (customer: string, plan: string) => {
    expect((await cli('customers', 'create', '--id', customer, '--name', `${customer} Inc.`)).code).toBe(0);
    const created = await cli('keys', 'create', '--customer', customer, '--plan', plan);
    expect(created.code).toBe(0);
    return created.stdout.trim().split('\n').at(-1)!;
  };

  it('creates a customer and a key, prints the key on its last line, and checks with it', async () => {
    const created = await cli('customers', 'create', '--id', 'cli-co', '--name', 'CLI Co');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(/^id: +cli-co\nname: +CLI Co\nemail: +-\nstatus: +active\ncreated: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\n$/);
    const key = (await cli('keys', 'create', '--customer', 'cli-co', '--plan', 'free')).stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^tg_[0-9A-Za-z]+$/);

    const allowed = await cli('check', '--key', key, '--method', 'GET', '--path', '/api/v1/pets');
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^ALLOW 200 {2}GET \/api\/v1\/pets\n/);
    expect(allowed.stdout).toMatch(/^customer: +cli-co$/m);
    expect(allowed.stdout).toMatch(/^rate limit: +9 of 10 left \(all back in \d+ s\)$/m);
    const asJson = await cli('check', '--key', key, '--path', '/api/v1/pets', '--json');
    expect(jsonOf(asJson)).toMatchObject({ allowed: true, httpStatus: 200, upstreamHeaders: { 'x-tollgate-customer-id': 'cli-co' }, metered: false });

    const denied = await cli('check', '--key', key, '--method', 'GET', '--path', '/api/v1/analytics');
    expect(denied.code).toBe(1);
    expect(denied.stdout).toMatch(/^DENY 403 {2}GET \/api\/v1\/analytics\ncode: +not_entitled\nmessage: +Plan free does not include analytics\./);
  });

  it('meters checks as Envoy would log them: usage, then a draft invoice, without an Envoy', async () => {
    const key = await newKey('cli-meter', 'metered');
    const one = await cli('check', '--key', key, '--path', '/api/v1/pets', '--meter');
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^metered: +sent to the access log; tollgate usage --customer cli-meter shows it within a second$/m);
    const three = await cli('check', '--key', key, '--path', '/api/v1/pets/7', '--meter', '--count', '3');
    expect(three.code).toBe(0);
    expect(three.stdout.trim().split('\n').at(-1)).toBe('3 calls: 3 allowed, 0 denied; 3 access-log entries sent');

    const usage = async () => jsonOf(await cli('usage', '--customer', 'cli-meter', '--json')).subscriptions[0]?.totals;
    await expect.poll(usage, { timeout: 10_000, interval: 100 }).toMatchObject({ calls: 4, billableCalls: 4, units: 4, deniedCalls: 0 });
    const shown = await cli('usage', '--customer', 'cli-meter');
    expect(shown.stdout).toMatch(/^Subscription sub_\w+: plan metered \(active\), period \d{4}-\d\d-\d\d \S+ – \d{4}-\d\d-\d\d \S+\ncalls: +4\n/);
    expect(shown.stdout).toMatch(/^ENDPOINT +CALLS +UNITS +BILLABLE +DENIED\nget-pet +3 +3 +3 +0\nlist-pets +1 +1 +1 +0$/m);

    expect((await cli('billing', 'run')).stdout).toMatch(/^drafts rated: +\d+/);
    const invoices = await cli('invoices', 'list', '--customer', 'cli-meter');
    // Metered: 4 units at 1.0¢.
    expect(invoices.stdout).toMatch(/^ID +PLAN +PERIOD +STATUS +CALLS +TOTAL\ninv_\w+ +metered +\S+ \S+ – \S+ \S+ +draft +4 +0\.04 USD\n$/);
  });

  it('meters denied calls too, as recorded and not billed, and exits 1 when one is denied', async () => {
    const key = await newKey('cli-limited', 'free');
    const calls = await cli('check', '--key', key, '--path', '/api/v1/pets', '--meter', '--count', '11');
    expect(calls.code).toBe(1);
    const lines = calls.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ {3}1 {2}ALLOW 200 {2}9 of 10 left \(all back in \d+ s\)$/);
    expect(lines[10]).toBe('  11  DENY 429   rate_limited: Rate limit of 10 requests per 1m exceeded.');
    expect(lines[11]).toBe('11 calls: 10 allowed, 1 denied; 11 access-log entries sent');
    const usage = async () => jsonOf(await cli('usage', '--customer', 'cli-limited', '--json')).subscriptions[0]?.totals;
    await expect.poll(usage, { timeout: 10_000, interval: 100 }).toMatchObject({ calls: 10, billableCalls: 10, deniedCalls: 1 });

    const denied = await cli('check', '--key', key, '--path', '/api/v1/pets');
    expect(denied.code).toBe(1);
    const retry = /^retry after: +(\d+) s$/m.exec(denied.stdout)?.[1];
    expect(retry).toBeDefined();
    expect(denied.stdout).toMatch(new RegExp(`^rate limit: +0 of 10 left \\(resets in ${retry} s\\)$`, 'm'));
  });

  it('revokes a key', async () => {
    await cli('customers', 'create', '--id', 'cli-revoke', '--name', 'Revoke Co');
    const created = await cli('keys', 'create', '--customer', 'cli-revoke', '--plan', 'pro');
    const keyId = /Created key (key_\w+)/.exec(created.stdout)![1]!;
    expect(jsonOf(await cli('keys', 'revoke', keyId, '--json'))).toMatchObject({ id: keyId, status: 'revoked' });
    expect((await cli('keys', 'list', '--customer', 'cli-revoke')).stdout).toMatch(new RegExp(`^ID +PREFIX +NAME +STATUS +SUBSCRIPTION +CREATED\\n${keyId} +tg_\\w+… +- +revoked `));
  });

  it('lists the plans with their prices, fees with the currency\'s decimals', async () => {
    const plans = await cli('plans', 'list');
    expect(plans.stdout.split('\n')[0]).toMatch(/^ID +NAME +PRICE +QUOTA +RATE LIMITS$/);
    expect(plans.stdout).toMatch(/^free +Free +free \(USD\) +1000 units\/month +10\/1m$/m);
    expect(plans.stdout).toMatch(/^pro +Pro +49\.00 USD\/month +50000 units\/month +100\/1m$/m);
    expect(plans.stdout).toMatch(/^enterprise +Enterprise +499\.00 USD\/month \+ 0\.0004 USD\/unit over 1000000 +1000000 units\/month +1000\/1m, 50\/1s$/m);
    expect(plans.stdout).toMatch(/^pay-per-call +Pay per call +prepaid: 0\.005–0\.10 USD\/call \+ setup 5\.00 USD +- +600\/1m$/m);
    expect(plans.stdout).toMatch(/^metered +Metered +graduated from 0\.01 USD\/unit +- +600\/1m$/m);
    expect(jsonOf(await cli('plans', 'list', '--json')).data[1]).toMatchObject({ id: 'pro', pricing: { recurringFee: '49.00' } });
  });

  it('reports API errors in words, with the option they came from, and exits 1', async () => {
    const result = await cli('keys', 'create', '--customer', 'nobody', '--plan', 'free');
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toBe('tollgate: customer nobody not found [not_found]\n');
    const badPlan = await cli('subscriptions', 'create', '--customer', 'cli-co', '--plan', 'gold');
    expect(badPlan.stderr).toMatch(/^tollgate: .*\(--plan\) \[invalid_request\]\n$/);
  });

  it('answers --help with exit 0 at the top and for every command, and --version', async () => {
    const top = await cli('--help');
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^tollgate \d+\.\d+\.\d+: /);
    expect(top.stdout).toMatch(/^ {2}wallet top-up +credit a prepaid wallet/m);
    const one = await cli('wallet', 'top-up', '--help');
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^Usage: tollgate wallet top-up --customer ID --amount 50\.00 --reference REF \[--currency CODE\] \[--json\]\n/);
    // Each command's own help, not one page for all.
    expect((await cli('keys', 'list', '-h')).stdout).not.toMatch(/--amount/);
    expect(await cli('help', 'check')).toMatchObject({ code: 0, stdout: expect.stringMatching(/--meter +also send the access-log entry/) });
    expect(await cli('customers', '--help')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ {2}customers erase /m) });
    expect(await cli('--version')).toEqual({ code: 0, stdout: `tollgate ${packageVersion}\n`, stderr: '' });
  });

  it('exits 2 with a short hint on a bad command or option, and refuses the other spelling of a verb', async () => {
    expect(await cli()).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/^Usage: tollgate COMMAND/) });
    expect(await cli('frobnicate')).toEqual({ code: 2, stdout: '', stderr: "tollgate: unknown command 'frobnicate' (tollgate --help lists the commands)\n" });
    expect((await cli('wallet', 'topup', '--customer', 'x', '--amount', '50.00', '--reference', 'r')).stderr).toBe(
      "tollgate: unknown command 'wallet topup'; did you mean 'wallet top-up'? (tollgate --help lists the commands)\n",
    );
    expect(await cli('keys', 'list', '--bogus')).toMatchObject({ code: 2, stderr: 'tollgate: keys list has no option --bogus\nSee tollgate keys list --help\n' });
    expect((await cli('keys', 'list', '--customr', 'x')).stderr).toMatch(/has no option --customr; did you mean --customer\?/);
    expect(await cli('customers', 'create')).toMatchObject({ code: 2, stderr: expect.stringMatching(/^tollgate: missing --name NAME\n/) });
    expect(await cli('keys', 'create', '--customer', 'x')).toMatchObject({ code: 2, stderr: expect.stringMatching(/give --plan or --subscription/) });
    expect(await cli('customers', 'get')).toMatchObject({ code: 2, stderr: expect.stringMatching(/missing ID/) });
    expect(await cli('customers', 'get', 'a', 'b')).toMatchObject({ code: 2, stderr: expect.stringMatching(/unexpected 'b'/) });
    expect(await cli('quote', '--plan', 'metered', '--calls', 'many')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--calls must be a whole number/) });
    expect(await cli('customers')).toMatchObject({ code: 2, stderr: expect.stringMatching(/^tollgate customers commands/) });
  });

  it('takes amounts in major units everywhere, converted exactly with the currency\'s decimals', async () => {
    await cli('customers', 'create', '--id', 'cli-wallet', '--name', 'Wallet Co');
    // No --currency: the catalog's only one (USD), as for wallet top-ups.
    const topUp = await cli('stripe', 'top-up', '--customer', 'cli-wallet', '--amount', '25.00', '--success-url', 'https://example.com/thanks');
    expect(topUp).toMatchObject({ code: 0, stderr: "" });
    expect(topUp.stdout).toMatch(/^Top-up \w+ of 25\.00 USD is open; the wallet is credited once it is paid at:\nhttps:\/\/checkout\.stripe\.com\//);
    expect(jsonOf(await cli('stripe', 'top-up', '--customer', 'cli-wallet', '--amount', '7.5', '--currency', 'usd', '--success-url', 'https://example.com/t', '--json'))).toMatchObject({ amount: '750', currency: 'USD' });
    expect(await cli('stripe', 'top-up', '--customer', 'cli-wallet', '--amount', '25.001', '--currency', 'USD', '--success-url', 'https://example.com/t')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^tollgate: --amount: "25\.001" has more decimals than USD allows \(2\)/),
    });
    expect((await cli('stripe', 'top-up', '--customer', 'cli-wallet', '--amount', '2500.5', '--currency', 'JPY', '--success-url', 'https://example.com/t')).stderr).toMatch(/more decimals than JPY allows \(0\)/);
    const wallet = await cli('wallet', 'top-up', '--customer', 'cli-wallet', '--amount', '50.001', '--reference', 'w1');
    expect(wallet).toMatchObject({ code: 1, stderr: expect.stringMatching(/more decimals than USD allows \(2\) \(--amount\)/) });
  });

  it('validates a catalog file with config check', async () => {
    expect((await cli('config', 'check', '--catalog', 'examples/petstore.yaml')).stdout).toMatch(/ok \(1 products, \d+ plans\)/);
    const broken = await cli('config', 'check', '--catalog', 'test/fixtures/catalog/bad-window.yaml');
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/bad-window\.yaml:14:\d+: plans\[0\]\.rate_limits\[0\]\.window/);
  });

  it('says in plain words what to set when the server cannot be reached or its token not found', async () => {
    const closed = await freePort();
    const unreachable = await runCli({ ...env, TOLLGATE_URL: `http://127.0.0.1:${closed}` }, 'customers', 'list');
    expect(unreachable).toEqual({ code: 1, stdout: '', stderr: `tollgate: cannot reach http://127.0.0.1:${closed} (nothing listens there): is \`tollgate serve\` running? Set TOLLGATE_URL to the admin API of another server\n` });
    const nowhere = mkdtempSync(join(tmpdir(), 'tollgate-cli-'));
    try {
      const noToken = await runCli({ TOLLGATE_URL: service.httpUrl, TOLLGATE_DATA_DIR: join(nowhere, '.tollgate') }, 'customers', 'list');
      expect(noToken.code).toBe(1);
      expect(noToken.stderr).toContain(`no admin token: ${join(nowhere, '.tollgate', 'admin-token')} was not found.`);
      expect(noToken.stderr).toMatch(/set TOLLGATE_DATA_DIR to its data directory, or set TOLLGATE_ADMIN_TOKEN/);
    } finally {
      rmSync(nowhere, { recursive: true, force: true });
    }
    const wrongToken = await runCli({ ...env, TOLLGATE_ADMIN_TOKEN: 'not-the-token-0123456789' }, 'customers', 'list');
    expect(wrongToken.stderr).toBe(`tollgate: the admin API at ${service.httpUrl} refused the token from TOLLGATE_ADMIN_TOKEN: it is not that server's admin token\n`);
    const noGrpc = await runCli({ ...env, TOLLGATE_GRPC_ADDR: `127.0.0.1:${closed}` }, 'check', '--path', '/api/v1/pets');
    expect(noGrpc).toMatchObject({ code: 1, stderr: expect.stringMatching(/^tollgate: cannot reach the gRPC port at 127\.0\.0\.1:\d+ .*TOLLGATE_GRPC_ADDR/) });
  });

  describe('as a process', () => {
    const run = promisify(execFile);

    it('ends quietly when its reader stops early, as `| head` does', async () => {
      const child = spawnCli(['customers', 'list'], { env: { ...process.env, ...env } });
      child.stdout!.destroy();
      let stderr = '';
      child.stderr!.on('data', (chunk) => (stderr += chunk));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    });

    // dist/ is built by test/global-setup.ts.
    it('runs as the built bin', async () => {
      expect(await run(process.execPath, [builtCli, '--version'])).toMatchObject({ stdout: `tollgate ${packageVersion}\n` });
      const denied = await run(process.execPath, [builtCli, 'frobnicate']).catch((error: { code: number; stderr: string }) => error);
      expect(denied).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown command 'frobnicate'/) });
    });
  });
});
