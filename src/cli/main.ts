import { parseArgs } from 'node:util';
import { CatalogError, loadCatalogFile } from '../catalog/index.js';
import { AdminApiError, AdminClient } from './admin-client.js';
import { sendCheck } from './check.js';

const usage = `Usage: tollgate <command> [options]

  serve                                     run the server (configuration from TOLLGATE_* variables)
  config check [--catalog FILE]             validate a catalog file and report every problem
  customers create --name NAME [--id ID] [--email EMAIL]
  customers list | customers get ID
  customers suspend ID [--reason TEXT] | customers activate ID
  customers export ID                       everything held about the customer, as JSON
  customers erase ID --confirm              erase the customer's personal data for good: keys destroyed, personal
                                            fields and per-request usage deleted; invoices and the ledger kept
  subscriptions list --customer ID
  subscriptions create --customer ID --plan PLAN
  subscriptions change-plan SUBSCRIPTION_ID --plan PLAN
  subscriptions cancel SUBSCRIPTION_ID
  keys create --customer ID (--plan PLAN | --subscription ID) [--name NAME] [--app APP]
                                            prints the new key on the last line of stdout
  keys list --customer ID | keys revoke KEY_ID | keys approve KEY_ID
  oauth-clients register --customer ID --client-id CLIENT (--plan PLAN | --subscription ID)
                                            bill bearer JWTs whose client claim is CLIENT like an API key
  plans list
  usage --customer ID [--period YYYY-MM]   usage per subscription over its billing period (the one starting in
                                            that month, or the current one)
  usage reconcile --customer ID             quota counters of the current period against metered units
  stripe outbox [--status pending|done|dead] [--kind KIND]
                                            Stripe sync work; stripe dead-letters lists the dead ones
  stripe retry ITEM_ID | stripe retry --all send dead letters back to the Stripe sync
  stripe reconcile [--repair]               Stripe's customers, invoices, meter totals against ours; exits 1 on drift
  stripe top-up --customer ID --amount MINOR_UNITS --currency USD --success-url URL [--cancel-url URL]
                                            a wallet top-up paid through Stripe Checkout; prints its URL
  purchase --customer ID --plan PLAN [--anchor ISO_DATETIME]
                                            subscribe to a plan; a prepaid plan charges its setup fee and first
                                            recurring fee to the wallet (--anchor: billing day, e.g. the 1st)
  wallet topup --customer ID --amount 50.00 --reference REF [--currency USD]
                                            credit the wallet once per reference
  wallet show --customer ID                 balances, low-balance state and the ledger
  invoices list --customer ID [--status draft|finalized] | invoices show INVOICE_ID
  quote --plan PLAN --calls N [--setup-fee] the bill of one whole period with N calls
  report revenue --period YYYY-MM           revenue, usage and revenue share by product, plan and customer
  report mrr                                monthly recurring revenue of the active subscriptions
  report business [--period YYYY-MM]        MRR, paying customers, churn, free-to-paid conversion, activation,
                                            time to first call and net revenue retention of a month (default: this one)
  billing run                               rate now: refresh drafts, finalize ended periods, settle wallets
  alerts set-webhook --customer ID --url URL
                                            where the customer's usage alerts are POSTed; prints the new signing
                                            secret on the last line of stdout (shown once)
  alerts webhook --customer ID              the customer's alert webhook (without its secret)
  alerts list --customer ID                 the customer's usage alerts, newest first, with their delivery
  alerts deliveries [--customer ID] [--status pending|delivered|dead]
                                            the delivery log: attempts, last answer, next attempt
  alerts retry DELIVERY_ID                  send a dead delivery again
  check --key KEY --method GET --path /api/v1/pets [--host HOST] [--header 'name: value']...
                                            sends a Check exactly as Envoy would and prints the decision

The admin API is at TOLLGATE_URL (default http://127.0.0.1:8080) with TOLLGATE_ADMIN_TOKEN
(default: the token in TOLLGATE_DATA_DIR/admin-token). check talks gRPC to TOLLGATE_GRPC_ADDR (default 127.0.0.1:9001).
`;

class UsageError extends Error {}

/** The drift lists of POST /v1/stripe/reconcile, as far as the CLI reads them. */
interface StripeDriftReport {
  customers: Record<string, unknown[]>;
  invoices: Record<string, unknown[]>;
  meters: Record<string, unknown[]>;
}

const out = (text: string) => process.stdout.write(`${text}\n`);
const json = (value: unknown) => out(JSON.stringify(value, null, 2));

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      id: { type: 'string' },
      email: { type: 'string' },
      reason: { type: 'string' },
      customer: { type: 'string' },
      plan: { type: 'string' },
      subscription: { type: 'string' },
      app: { type: 'string' },
      key: { type: 'string' },
      'client-id': { type: 'string' },
      method: { type: 'string', default: 'GET' },
      path: { type: 'string' },
      host: { type: 'string', default: 'localhost' },
      header: { type: 'string', multiple: true },
      catalog: { type: 'string' },
      period: { type: 'string' },
      status: { type: 'string' },
      kind: { type: 'string' },
      all: { type: 'boolean' },
      repair: { type: 'boolean' },
      amount: { type: 'string' },
      currency: { type: 'string' },
      'success-url': { type: 'string' },
      'cancel-url': { type: 'string' },
      reference: { type: 'string' },
      anchor: { type: 'string' },
      calls: { type: 'string' },
      'setup-fee': { type: 'boolean' },
      confirm: { type: 'boolean' },
      url: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    out(usage);
    return command ? 0 : 2;
  }
  const need = (value: string | undefined, flag: string) => {
    if (!value) throw new UsageError(`missing ${flag}`);
    return value;
  };

  if (command === 'serve') {
    const { serve } = await import('../main.js');
    await serve();
    return -1; // keeps running
  }
  if (command === 'config' && sub === 'check') {
    const file = values.catalog ?? process.env.TOLLGATE_CATALOG ?? 'examples/petstore.yaml';
    const catalog = loadCatalogFile(file);
    out(`${file}: ok (${catalog.products.size} products, ${catalog.plans.size} plans)`);
    return 0;
  }
  if (command === 'check') {
    const headers: Record<string, string> = {};
    for (const line of values.header ?? []) {
      const colon = line.indexOf(':');
      if (colon < 1) throw new UsageError(`--header must look like 'name: value', got '${line}'`);
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    if (values.key) headers[process.env.TOLLGATE_KEY_HEADER ?? 'x-api-key'] = values.key;
    const outcome = await sendCheck({
      address: process.env.TOLLGATE_GRPC_ADDR ?? `127.0.0.1:${process.env.TOLLGATE_GRPC_PORT ?? '9001'}`,
      method: values.method!.toUpperCase(),
      path: need(values.path, '--path'),
      host: values.host!,
      headers,
    });
    out(`${outcome.allowed ? 'ALLOW' : 'DENY'} ${outcome.httpStatus}`);
    json(outcome);
    return outcome.allowed ? 0 : 1;
  }

  const api = AdminClient.fromEnvironment();
  const key = `${command} ${sub ?? ''}`.trim();
  switch (key) {
    case 'customers create':
      json(await api.call('POST', '/v1/customers', { name: need(values.name, '--name'), id: values.id, email: values.email }));
      return 0;
    case 'customers list':
      json(await api.call('GET', '/v1/customers'));
      return 0;
    case 'customers get':
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(arg, 'customer id'))}`));
      return 0;
    case 'customers export':
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(arg, 'customer id'))}/export`));
      return 0;
    case 'customers erase': {
      const id = need(arg, 'customer id');
      if (!values.confirm) throw new UsageError(`erasing ${id} cannot be undone: add --confirm`);
      json(await api.call('POST', `/v1/customers/${encodeURIComponent(id)}/erase`));
      return 0;
    }
    case 'customers suspend':
    case 'customers activate':
      json(
        await api.call('PATCH', `/v1/customers/${encodeURIComponent(need(arg, 'customer id'))}`, {
          status: sub === 'suspend' ? 'suspended' : 'active',
          statusReason: sub === 'suspend' ? values.reason ?? 'suspended by operator' : null,
        }),
      );
      return 0;
    case 'subscriptions list':
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/subscriptions`));
      return 0;
    case 'subscriptions create':
      json(await api.call('POST', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/subscriptions`, { plan: need(values.plan, '--plan') }));
      return 0;
    case 'subscriptions change-plan':
      json(await api.call('POST', `/v1/subscriptions/${encodeURIComponent(need(arg, 'subscription id'))}/change-plan`, { plan: need(values.plan, '--plan') }));
      return 0;
    case 'subscriptions cancel':
      json(await api.call('POST', `/v1/subscriptions/${encodeURIComponent(need(arg, 'subscription id'))}/cancel`));
      return 0;
    case 'keys create': {
      const created = await api.call<{ key: string; apiKey: { id: string; prefix: string; status: string; subscriptionId: string } }>('POST', '/v1/keys', {
        customer: need(values.customer, '--customer'),
        plan: values.plan,
        subscription: values.subscription,
        name: values.name,
        app: values.app,
      });
      out(`Created key ${created.apiKey.id} (${created.apiKey.prefix}…, ${created.apiKey.status}) on subscription ${created.apiKey.subscriptionId}.`);
      out('Store the key now: it is not shown again.');
      out(created.key);
      return 0;
    }
    case 'oauth-clients register':
      json(
        await api.call('POST', '/v1/oauth-clients', {
          customer: need(values.customer, '--customer'),
          clientId: need(values['client-id'], '--client-id'),
          plan: values.plan,
          subscription: values.subscription,
          name: values.name,
        }),
      );
      return 0;
    case 'keys list':
      json(await api.call('GET', `/v1/keys?customer=${encodeURIComponent(need(values.customer, '--customer'))}`));
      return 0;
    case 'keys revoke':
    case 'keys approve':
      json(await api.call('POST', `/v1/keys/${encodeURIComponent(need(arg, 'key id'))}/${sub}`));
      return 0;
    case 'plans list':
      json(await api.call('GET', '/v1/plans'));
      return 0;
    case 'usage': {
      const query = values.period ? `?period=${encodeURIComponent(values.period)}` : '';
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/usage${query}`));
      return 0;
    }
    case 'usage reconcile':
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/usage/reconcile`));
      return 0;
    case 'stripe outbox':
    case 'stripe dead-letters': {
      const query = new URLSearchParams({
        ...(sub === 'dead-letters' ? { status: 'dead' } : values.status ? { status: values.status } : {}),
        ...(values.kind ? { kind: values.kind } : {}),
      });
      json(await api.call('GET', `/v1/stripe/outbox?${query}`));
      return 0;
    }
    case 'stripe retry':
      if (values.all) json(await api.call('POST', '/v1/stripe/dead-letters/retry'));
      else json(await api.call('POST', `/v1/stripe/outbox/${encodeURIComponent(need(arg, 'outbox item id (or --all)'))}/retry`));
      return 0;
    case 'stripe reconcile': {
      const report = await api.call<StripeDriftReport>('POST', '/v1/stripe/reconcile', { repair: values.repair ?? false });
      json(report);
      const drift = [...Object.values(report.customers), ...Object.values(report.invoices), ...Object.values(report.meters)].some((found) => found.length > 0);
      return drift && !values.repair ? 1 : 0;
    }
    case 'stripe top-up': {
      const topUp = await api.call<{ id: string; status: string; checkoutUrl: string | null }>(
        'POST',
        `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/wallet/checkout-sessions`,
        {
          amount: Number(need(values.amount, '--amount')),
          currency: need(values.currency, '--currency').toUpperCase(),
          successUrl: need(values['success-url'], '--success-url'),
          cancelUrl: values['cancel-url'],
        },
      );
      out(`Top-up ${topUp.id} is ${topUp.status}; the wallet is credited once it is paid at:`);
      out(topUp.checkoutUrl ?? `(not open yet: tollgate asks Stripe again shortly; see GET /v1/stripe/top-ups/${topUp.id})`);
      return 0;
    }
    case 'purchase':
      json(
        await api.call('POST', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/purchases`, {
          plan: need(values.plan, '--plan'),
          periodAnchor: values.anchor,
        }),
      );
      return 0;
    case 'wallet topup':
      json(
        await api.call('POST', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/wallet/top-ups`, {
          amount: need(values.amount, '--amount'),
          reference: need(values.reference, '--reference'),
          currency: values.currency?.toUpperCase(),
        }),
      );
      return 0;
    case 'wallet show': {
      const customer = encodeURIComponent(need(values.customer, '--customer'));
      json({ wallets: await api.call('GET', `/v1/customers/${customer}/wallet`), ledger: await api.call('GET', `/v1/customers/${customer}/wallet/ledger`) });
      return 0;
    }
    case 'invoices list': {
      const query = values.status ? `?status=${encodeURIComponent(values.status)}` : '';
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/invoices${query}`));
      return 0;
    }
    case 'invoices show':
      json(await api.call('GET', `/v1/invoices/${encodeURIComponent(need(arg, 'invoice id'))}`));
      return 0;
    case 'quote': {
      const query = new URLSearchParams({ calls: need(values.calls, '--calls'), include_setup_fee: String(values['setup-fee'] ?? false) });
      json(await api.call('GET', `/v1/plans/${encodeURIComponent(need(values.plan, '--plan'))}/quote?${query}`));
      return 0;
    }
    case 'report revenue':
      json(await api.call('GET', `/v1/reports/revenue?period=${encodeURIComponent(need(values.period, '--period'))}`));
      return 0;
    case 'report mrr':
      json(await api.call('GET', '/v1/reports/mrr'));
      return 0;
    case 'report business':
      json(await api.call('GET', `/v1/reports/business${values.period ? `?period=${encodeURIComponent(values.period)}` : ''}`));
      return 0;
    case 'billing run':
      json(await api.call('POST', '/v1/billing/run'));
      return 0;
    case 'alerts set-webhook': {
      const customer = encodeURIComponent(need(values.customer, '--customer'));
      const webhook = await api.call<{ url: string; secret: string }>('PUT', `/v1/customers/${customer}/alert-webhook`, { url: need(values.url, '--url') });
      out(`Alerts of ${values.customer} go to ${webhook.url}, signed (Tollgate-Signature) with this secret.`);
      out('Store the secret now: it is not shown again.');
      out(webhook.secret);
      return 0;
    }
    case 'alerts webhook':
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/alert-webhook`));
      return 0;
    case 'alerts list':
      json(await api.call('GET', `/v1/customers/${encodeURIComponent(need(values.customer, '--customer'))}/alerts`));
      return 0;
    case 'alerts deliveries': {
      const query = new URLSearchParams({ ...(values.customer ? { customer: values.customer } : {}), ...(values.status ? { status: values.status } : {}) });
      json(await api.call('GET', `/v1/alerts/deliveries?${query}`));
      return 0;
    }
    case 'alerts retry':
      json(await api.call('POST', `/v1/alerts/deliveries/${encodeURIComponent(need(arg, 'delivery id'))}/retry`));
      return 0;
    default:
      throw new UsageError(`unknown command: ${key}`);
  }
}

export async function run(argv: string[]): Promise<void> {
  // A reader that stops early (`tollgate … | head`) ends the command quietly, as for any Unix tool; the server's
  // log stream is left alone.
  if (argv[0] !== 'serve') {
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(process.exitCode ?? 0);
    });
  }
  try {
    const code = await main(argv);
    if (code >= 0) process.exitCode = code;
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`tollgate: ${(error as Error).message}\n\n${usage}`);
      process.exitCode = 2;
    } else if (error instanceof AdminApiError) {
      process.stderr.write(`tollgate: ${error.message}${error.field ? ` (field: ${error.field})` : ''} [${error.code}]\n`);
      process.exitCode = 1;
    } else if (error instanceof CatalogError) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`tollgate: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  }
}
