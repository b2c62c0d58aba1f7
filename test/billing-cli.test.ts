import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { jsonOf, runCli } from './support/cli.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

/** The purchase flow, wallets, invoices, the pricing calculator and reports from the CLI, as an operator runs them. */
describe('tollgate CLI: billing', () => {
  let service: TestApp;
  let env: NodeJS.ProcessEnv;
  const clock = new ManualClock(Date.parse('2026-11-01T00:00:00Z'));

  beforeAll(async () => {
    service = await startTestApp({ mode: 'embedded', clock });
    await service.app.ratingLoop.stop();
    env = { TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken };
  });
  afterAll(async () => {
    await service?.close();
  });

  /** A command's --json output, as scripts read it. */
  const cli = async (...args: string[]) => jsonOf(await runCli(env, ...args, '--json'));
  /** A command's output for people. */
  const shown = async (...args: string[]) => {
    const result = await runCli(env, ...args);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    return result.stdout;
  };

  it('tops up, purchases, shows the wallet and invoices, quotes and reports', async () => {
    await service.admin('POST', '/v1/customers', { id: 'cli-buyer', name: 'CLI Buyer' });
    expect(await cli('wallet', 'top-up', '--customer', 'cli-buyer', '--amount', '50.00', '--reference', 'R1')).toMatchObject({
      entry: { kind: 'top_up', amount: '50.00', reference: 'top_up:R1' },
      wallet: { balance: '50.00' },
    });
    const purchased = await cli('purchase', '--customer', 'cli-buyer', '--plan', 'pay-per-call');
    expect(purchased).toMatchObject({ subscription: { planId: 'pay-per-call' }, invoice: { total: '5.00' } });
    expect(await cli('wallet', 'show', '--customer', 'cli-buyer')).toMatchObject({
      wallets: { data: [{ currency: 'USD', balance: '45.00', available: '45.00' }] },
      ledger: { data: [{ kind: 'top_up' }, { kind: 'setup_fee', amount: '-5.00', balanceAfter: '45.00' }] },
    });
    expect((await cli('invoices', 'list', '--customer', 'cli-buyer')).data).toEqual([
      expect.objectContaining({ planId: 'pay-per-call', status: 'draft', total: '5.00' }),
    ]);

    expect(await cli('quote', '--plan', 'metered', '--calls', '150000')).toMatchObject({ total: '1250.00' });
    clock.set(Date.parse('2026-12-01T00:10:00Z'));
    expect(await cli('billing', 'run')).toMatchObject({ led: true, finalized: 1 });
    expect(await cli('report', 'revenue', '--period', '2026-11')).toMatchObject({
      invoices: 1,
      drafts: 0,
      totals: [{ id: 'all', currency: 'USD', revenue: '5.00' }],
      byPlan: [{ id: 'pay-per-call', revenue: '5.00' }],
      byCustomer: [{ id: 'cli-buyer', revenue: '5.00' }],
    });
    expect(await cli('report', 'mrr')).toMatchObject({ totals: [] });
  });

  it('shows the same figures to people, money with the currency\'s decimals', async () => {
    await service.admin('POST', '/v1/customers', { id: 'cli-reader', name: 'CLI Reader' });
    expect(await shown('wallet', 'top-up', '--customer', 'cli-reader', '--amount', '20', '--reference', 'R2')).toBe(
      'credited:   20.00 USD\nreference:  top_up:R2\nbalance:    20.00 USD\n',
    );
    await shown('purchase', '--customer', 'cli-reader', '--plan', 'pay-per-call');
    const wallet = await shown('wallet', 'show', '--customer', 'cli-reader');
    expect(wallet).toMatch(/^CURRENCY +BALANCE +AVAILABLE +LOW BELOW +STATE\nUSD +15\.00 +15\.00 +\d+\.\d\d +\w+\n\nLedger\nWHEN +KIND +AMOUNT +BALANCE +DESCRIPTION\n/);
    expect(wallet).toMatch(/ setup_fee +-5\.00 USD +15\.00 /);
    const invoiceId = /^(inv_\w+) /m.exec(await shown('invoices', 'list', '--customer', 'cli-reader'))![1]!;
    const invoice = await shown('invoices', 'show', invoiceId);
    expect(invoice).toMatch(/^invoice: +inv_\w+\n/);
    expect(invoice).toMatch(/^total: +5\.00 USD$/m);
    expect(invoice).toMatch(/^DESCRIPTION +QUANTITY +UNIT PRICE +AMOUNT\n.*Setup fee.* +1 +5\.00 +5\.00$/m);
    const quote = await shown('quote', '--plan', 'metered', '--calls', '150000');
    expect(quote).toMatch(/^plan: +metered\ncalls: +150000\ntotal: +1250\.00 USD\n\nDESCRIPTION/);
    expect(await shown('billing', 'run')).toMatch(/^drafts rated: +\d+\nfinalized: +\d+\nwallets settled: +\d+\n$/);
    expect(await shown('report', 'revenue', '--period', '2026-11')).toMatch(/^Totals\nCURRENCY +REVENUE +REVENUE SHARE +CALLS +UNITS\nUSD +5\.00 USD +0\.00 USD +0 +0$/m);
  });
});
