import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

const run = promisify(execFile);

/** The purchase flow, wallets, invoices, the pricing calculator and reports from the CLI, as an operator runs them. */
describe('tollgate CLI: billing', () => {
  let service: TestApp;
  let env: NodeJS.ProcessEnv;
  const clock = new ManualClock(Date.parse('2026-11-01T00:00:00Z'));

  beforeAll(async () => {
    service = await startTestApp({ mode: 'embedded', clock });
    await service.app.ratingLoop.stop();
    env = { ...process.env, TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken };
  });
  afterAll(async () => {
    await service?.close();
  });

  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { env });
      return { code: 0, output: JSON.parse(stdout) };
    } catch (error) {
      const failed = error as { code: number; stderr: string };
      return { code: failed.code, output: failed.stderr };
    }
  };

  it('tops up, purchases, shows the wallet and invoices, quotes and reports', async () => {
    await service.admin('POST', '/v1/customers', { id: 'cli-buyer', name: 'CLI Buyer' });
    expect((await cli('wallet', 'topup', '--customer', 'cli-buyer', '--amount', '50.00', '--reference', 'R1')).output).toMatchObject({
      entry: { kind: 'top_up', amount: '50.00', reference: 'top_up:R1' },
      wallet: { balance: '50.00' },
    });
    const purchased = await cli('purchase', '--customer', 'cli-buyer', '--plan', 'pay-per-call');
    expect(purchased.output).toMatchObject({ subscription: { planId: 'pay-per-call' }, invoice: { total: '5.00' } });
    expect((await cli('wallet', 'show', '--customer', 'cli-buyer')).output).toMatchObject({
      wallets: { data: [{ currency: 'USD', balance: '45.00', available: '45' }] },
      ledger: { data: [{ kind: 'top_up' }, { kind: 'setup_fee', amount: '-5.00', balanceAfter: '45.00' }] },
    });
    expect((await cli('invoices', 'list', '--customer', 'cli-buyer')).output.data).toEqual([
      expect.objectContaining({ planId: 'pay-per-call', status: 'draft', total: '5.00' }),
    ]);


    expect((await cli('quote', '--plan', 'metered', '--calls', '150000')).output).toMatchObject({ total: '1250.00' });
    clock.set(Date.parse('2026-12-01T00:10:00Z'));
    expect((await cli('billing', 'run')).output).toMatchObject({ led: true, finalized: 1 });
    expect((await cli('report', 'revenue', '--period', '2026-11')).output).toMatchObject({
      invoices: 1,
      drafts: 0,
      totals: [{ id: 'all', currency: 'USD', revenue: '5.00' }],
      byPlan: [{ id: 'pay-per-call', revenue: '5.00' }],
      byCustomer: [{ id: 'cli-buyer', revenue: '5.00' }],
    });
    expect((await cli('report', 'mrr')).output).toMatchObject({ totals: [] });
  });
});
