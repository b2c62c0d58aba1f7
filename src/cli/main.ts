import { parseArgs } from 'node:util';
import { loadCatalogFile, CatalogError } from '../catalog/load.js';
import { AdminApiError, AdminClient } from './admin-client.js';
import { sendCheck } from './check.js';

const usage = `Usage: tollgate <command> [options]

  serve                                     run the server (configuration from TOLLGATE_* variables)
  config check [--catalog FILE]             validate a catalog file and report every problem
  customers create --name NAME [--id ID] [--email EMAIL]
  customers list | customers get ID
  customers suspend ID [--reason TEXT] | customers activate ID
  subscriptions list --customer ID
  subscriptions create --customer ID --plan PLAN
  subscriptions change-plan SUBSCRIPTION_ID --plan PLAN
  subscriptions cancel SUBSCRIPTION_ID
  keys create --customer ID (--plan PLAN | --subscription ID) [--name NAME] [--app APP]
                                            prints the new key on the last line of stdout
  keys list --customer ID | keys revoke KEY_ID | keys approve KEY_ID
  plans list
  check --key KEY --method GET --path /api/v1/pets [--host HOST] [--header 'name: value']...
                                            sends a Check exactly as Envoy would and prints the decision

The admin API is at TOLLGATE_URL (default http://127.0.0.1:8080) with TOLLGATE_ADMIN_TOKEN
(default: the token in TOLLGATE_DATA_DIR/admin-token). check talks gRPC to TOLLGATE_GRPC_ADDR (default 127.0.0.1:9001).
`;

class UsageError extends Error {}

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
      method: { type: 'string', default: 'GET' },
      path: { type: 'string' },
      host: { type: 'string', default: 'localhost' },
      header: { type: 'string', multiple: true },
      catalog: { type: 'string' },
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
    default:
      throw new UsageError(`unknown command: ${key}`);
  }
}

export async function run(argv: string[]): Promise<void> {
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
