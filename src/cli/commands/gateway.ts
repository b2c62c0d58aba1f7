/** The server itself, its catalog, and calls to its gRPC port as Envoy makes them. */
import { loadCatalogFile } from '../../catalog/index.js';
import { roles } from '../../config/index.js';
import type { CheckedCall } from '../check.js';
import { UsageError, wholeNumber, type CommandSpec } from '../command.js';
import { fields, words, type Cell } from '../output.js';

/** Seconds as people count them: "42 s", "5 min", "3 h", "31 d" (rounded up: never sooner than said). */
function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7_200) return `${Math.ceil(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.ceil(seconds / 3_600)} h`;
  return `${Math.ceil(seconds / 86_400)} d`;
}

/**
 * A limit's figures from the RateLimit or X-Quota headers: "9 of 10 left (all back in 82 s)". On an allowed call a
 * sliding window's reset is when it holds no calls at all, up to two windows away; on a denied one, when the call fits.
 */
function limitLine(headers: Record<string, string>, prefix: 'ratelimit' | 'x-quota', allowed: boolean): string | undefined {
  const limit = headers[`${prefix}-limit`];
  if (limit === undefined) return undefined;
  const reset = headers[`${prefix}-reset`];
  const when = reset === undefined ? '' : ` (${prefix === 'ratelimit' && allowed ? 'all back' : 'resets'} in ${duration(Number(reset))})`;
  return `${headers[`${prefix}-remaining`]} of ${limit} left${when}`;
}

/** One Check for people: the decision on the first line, then who, what and how much is left, or why not. */
function checkView(checked: CheckedCall, metered: boolean): string {
  const { outcome, call } = checked;
  const head = `${outcome.allowed ? 'ALLOW' : 'DENY'} ${outcome.httpStatus}  ${call.method} ${call.path}`;
  const m = outcome.metadata;
  const pairs: [string, Cell][] = [];
  if (outcome.allowed) {
    pairs.push(
      ['customer', m.customer_id as Cell],
      ['subscription', m.subscription_id as Cell],
      ['plan', m.plan_id as Cell],
      ['endpoint', m.endpoint_id === undefined ? undefined : `${m.endpoint_id} (weight ${m.weight})`],
      ['key', m.key_id as Cell],
    );
    if (m.degraded !== undefined) pairs.push(['limits', `not counted (${m.degraded}: the counter store is unavailable)`]);
  } else {
    const error = ((outcome.body as { error?: Record<string, unknown> } | undefined)?.error ?? {}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(error)) {
      if (name === 'request_id') continue;
      pairs.push([name === 'retry_after_seconds' ? 'retry after' : words(name), name === 'retry_after_seconds' ? duration(Number(value)) : (value as Cell)]);
    }
    if (typeof outcome.body === 'string') pairs.push(['body', outcome.body]);
  }
  pairs.push(['rate limit', limitLine(outcome.responseHeaders, 'ratelimit', outcome.allowed)], ['quota', limitLine(outcome.responseHeaders, 'x-quota', outcome.allowed)]);
  if (outcome.allowed) pairs.push(['usage id', m.usage_id as Cell]);
  if (metered) {
    const customer = m.customer_id === undefined ? 'ID' : String(m.customer_id);
    pairs.push(['metered', `sent to the access log; tollgate usage --customer ${customer} shows it within a second`]);
  }
  return `${head}\n${fields(pairs)}`;
}

/** One line per call for --count. */
function checkLine(checked: CheckedCall, index: number): string {
  const { outcome } = checked;
  if (outcome.allowed) return `${String(index + 1).padStart(4)}  ALLOW ${outcome.httpStatus}  ${limitLine(outcome.responseHeaders, 'ratelimit', true) ?? ''}`.trimEnd();
  const error = (outcome.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  return `${String(index + 1).padStart(4)}  DENY ${outcome.httpStatus}   ${error?.code ?? ''}: ${error?.message ?? ''}`;
}

export const gatewayCommands: CommandSpec[] = [
  {
    name: 'serve',
    summary: 'run the server (configured by TOLLGATE_* variables: docs/CONFIGURATION.md)',
    details: [
      'The role chooses what this process runs: all (the default) everything; edge the gRPC port (Check, access logs,',
      'health) and the usage flush, beside Envoy; control the admin API, Stripe webhooks, portal, rating, Stripe sync,',
      'alerts and event publishing. edge and control need the shared PostgreSQL and Redis (docs/DEPLOYMENT.md, "Roles").',
    ].join('\n'),
    json: 'none',
    options: { role: { type: 'string', value: 'ROLE', help: 'all, edge or control (default: TOLLGATE_ROLE, else all)' } },
    run: async (c) => {
      const role = c.option('role');
      if (role !== undefined && !(roles as readonly string[]).includes(role)) throw new UsageError(`--role must be ${roles.join(', ')}, not "${role}"`);
      const { serve } = await import('../../main.js');
      await serve(role);
      return -1; // keeps running
    },
  },
  {
    name: 'config check',
    summary: 'validate a catalog file and report every problem with its line',
    options: { catalog: { type: 'string', value: 'FILE', help: 'the catalog (default: TOLLGATE_CATALOG, else examples/petstore.yaml)' } },
    run: async (c) => {
      const file = c.option('catalog') ?? c.io.env.TOLLGATE_CATALOG ?? 'examples/petstore.yaml';
      const catalog = loadCatalogFile(file);
      c.show({ file, products: catalog.products.size, plans: catalog.plans.size }, (ok) => `${ok.file}: ok (${ok.products} products, ${ok.plans} plans)`);
      return 0;
    },
  },
  {
    name: 'check',
    summary: 'send a Check as Envoy would; --meter also logs the call, so it is metered',
    details: [
      'With --meter, each call is then logged to the access-log service as Envoy would log it (with the Check\'s signed',
      'usage id), so usage, invoices and alerts fill up without an Envoy: an allowed call is billed, answered with',
      '--status; a denied one is recorded with its denial. Exits 1 when a call is denied.',
      'The gRPC port is TOLLGATE_GRPC_ADDR (default 127.0.0.1 at TOLLGATE_GRPC_PORT, 9001); a server that takes known',
      'callers only needs TOLLGATE_GRPC_CALLER_TOKEN. The key goes in the TOLLGATE_KEY_HEADER header (default x-api-key).',
    ].join('\n'),
    options: {
      key: { type: 'string', value: 'KEY', help: 'the API key (tg_…); left out, the call has none' },
      method: { type: 'string', value: 'METHOD', help: 'the HTTP method', default: 'GET' },
      path: { type: 'string', value: 'PATH', help: 'the request path, e.g. /api/v1/pets', required: true },
      host: { type: 'string', value: 'HOST', help: 'the Host (authority)', default: 'localhost' },
      header: { type: 'string', value: "'NAME: VALUE'", help: 'a request header; repeat for more', multiple: true },
      meter: { type: 'boolean', help: 'also send the access-log entry, so the call is metered' },
      status: { type: 'string', value: 'CODE', help: "the upstream's answer to an allowed call, for --meter (default 200)" },
      count: { type: 'string', value: 'N', help: 'send N calls, one line each (default 1)' },
    },
    run: async (c) => {
      const headers: Record<string, string> = {};
      for (const line of c.list('header')) {
        const colon = line.indexOf(':');
        if (colon < 1) throw new UsageError(`--header must look like 'name: value', got '${line}'`);
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const key = c.option('key');
      if (key) headers[c.io.env.TOLLGATE_KEY_HEADER ?? 'x-api-key'] = key;
      const count = c.option('count') === undefined ? 1 : wholeNumber(c.option('count')!, 'count', { min: 1 });
      const status = c.option('status') === undefined ? 200 : wholeNumber(c.option('status')!, 'status', { min: 100 });
      if (status > 599) throw new UsageError(`--status must be an HTTP status, 100 to 599, not ${status}`);
      if (c.option('status') !== undefined && !c.flag('meter')) throw new UsageError('--status is the answer the access log reports: add --meter');
      const meter = c.flag('meter');

      // gRPC and Envoy's protos only for the commands that call the gRPC port: every other command starts faster.
      const { accessLogEntry, EnvoyClient } = await import('../check.js');
      const envoy = new EnvoyClient(c.io.env.TOLLGATE_GRPC_ADDR ?? `127.0.0.1:${c.io.env.TOLLGATE_GRPC_PORT ?? '9001'}`, c.io.env.TOLLGATE_GRPC_CALLER_TOKEN);
      const checked: CheckedCall[] = [];
      try {
        const call = { method: c.need('method').toUpperCase(), path: c.need('path'), host: c.need('host'), headers };
        for (let i = 0; i < count; i++) {
          const result = await envoy.check(call);
          checked.push(result);
          if (count > 1 && !c.json) c.print(checkLine(result, i));
        }
        if (meter) await envoy.sendAccessLogs(checked.map((result) => accessLogEntry(result, status)));
      } finally {
        envoy.close();
      }

      const allowed = checked.filter((result) => result.outcome.allowed).length;
      const results = checked.map((result) => ({ requestId: result.requestId, ...result.outcome, metered: meter }));
      if (count === 1) c.show(results[0]!, () => checkView(checked[0]!, meter));
      else if (c.json) c.show(results, () => '');
      else {
        c.print(`${count} calls: ${allowed} allowed, ${count - allowed} denied${meter ? `; ${count} access-log entries sent` : ''}`);
      }
      return allowed === count ? 0 : 1;
    },
  },
];
