import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CatalogError, loadCatalogFile, parseCatalog } from '../src/catalog/load.js';
import { RouteTable } from '../src/catalog/routes.js';

const fixture = (name: string) => `test/fixtures/catalog/${name}.yaml`;

function problemsOf(file: string) {
  try {
    loadCatalogFile(file);
  } catch (error) {
    expect(error).toBeInstanceOf(CatalogError);
    return (error as CatalogError).problems;
  }
  throw new Error(`${file} loaded without error`);
}

describe('catalog loading', () => {
  it('loads the PetStore example with its plans, weights and entitlements', () => {
    const catalog = loadCatalogFile('examples/petstore.yaml');
    expect([...catalog.plans.keys()]).toEqual(['free', 'pro', 'enterprise', 'pay-per-call', 'hybrid', 'metered']);
    expect(catalog.plan('free')!.quota).toEqual({ units: 1000, when_exhausted: 'deny_429' });
    expect(catalog.plan('pro')!.quota!.units).toBe(50_000);
    expect(catalog.plan('enterprise')!.quota!.units).toBe(1_000_000);
    expect(catalog.plan('free')!.rate_limits).toEqual([{ requests: 10, window: 60_000, scope: 'subscription' }]);
    expect(catalog.plan('pro')!.rate_limits[0]!.requests).toBe(100);
    expect(catalog.plan('enterprise')!.rate_limits[0]!.requests).toBe(1000);
    const weight = (method: string, path: string) => catalog.match('h', method, path)!.endpoint.weight;
    expect(weight('GET', '/api/v1/pets')).toBe(1);
    expect(weight('POST', '/api/v1/pets')).toBe(2);
    expect(weight('POST', '/api/v1/pets/7/image')).toBe(10);
    expect(weight('GET', '/api/v1/analytics')).toBe(5);
    expect(catalog.plan('free')!.allowedEndpoints.has('analytics')).toBe(false);
    expect(catalog.plan('pro')!.allowedEndpoints.has('analytics')).toBe(true);
    expect(catalog.plan('pro')!.allowedEndpoints.has('webhooks')).toBe(false);
    expect(catalog.plan('enterprise')!.allowedEndpoints.has('webhooks')).toBe(true);
  });

  it('reports a wrong type with file, line and field', () => {
    const [problem] = problemsOf(fixture('bad-quota-type'));
    expect(problem).toMatchObject({ file: fixture('bad-quota-type'), line: 13, path: 'plans[0].quota.units' });
    expect(problem!.message).toMatch(/number/);
  });

  it('reports an unknown field at the field itself', () => {
    const [problem] = problemsOf(fixture('unknown-field'));
    expect(problem).toMatchObject({ line: 13, path: 'plans[0].rate_limits[0].burst' });
    expect(problem!.message).toMatch(/unrecognized key/i);
  });

  it('reports an entitlement that names neither an endpoint nor a tag', () => {
    const [problem] = problemsOf(fixture('unknown-entitlement'));
    expect(problem).toMatchObject({ line: 11, column: 27, path: 'plans[0].entitlements[1]' });
    expect(problem!.message).toContain('"analytics"');
  });

  it('reports YAML syntax errors with their line', () => {
    const [problem] = problemsOf(fixture('syntax-error'));
    expect(problem!.line).toBeGreaterThanOrEqual(4);
    expect(problem!.message.length).toBeGreaterThan(0);
  });

  it('reports every problem at once: bad duration, bad path, duplicate id, unknown product', () => {
    const problems = problemsOf(fixture('bad-window'));
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining(['plans[0].rate_limits[0].window', 'products[0].endpoints[1].path']),
    );
    const window = problems.find((p) => p.path === 'plans[0].rate_limits[0].window')!;
    expect(window.line).toBe(14);
    expect(window.message).toMatch(/duration/);
    const message = new CatalogError(problems).message;
    expect(message).toContain(`${fixture('bad-window')}:14:`);
  });

  describe('hostile or broken YAML: a clear problem with file, line and field', () => {
    const problemsIn = (text: string) => {
      try {
        parseCatalog(text, 'broken.yaml');
      } catch (error) {
        expect(error).toBeInstanceOf(CatalogError);
        return (error as CatalogError).problems;
      }
      throw new Error('parsed without error');
    };

    it('an alias to no anchor', () => {
      expect(problemsIn('products:\n  - id: pets\n  - *nothing\n')).toEqual([
        { file: 'broken.yaml', line: 3, column: 5, path: 'products[1]', message: 'alias *nothing names no anchor set before it' },
      ]);
    });

    it('an alias bomb (billion laughs)', () => {
      const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
      for (const [name, previous] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f'], ['h', 'g']]) {
        levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]`);
      }
      const [problem, ...more] = problemsIn(`${levels.join('\n')}\nproducts: *h\n`);
      expect(more).toEqual([]);
      expect(problem).toMatchObject({ file: 'broken.yaml', line: 2, path: 'b[0]' });
      expect(problem!.message).toMatch(/alias count.*at most 100 alias expansions/);
    });

    it('nesting deeper than any catalog, in flow or block style, and deep enough to overflow the parser', () => {
      const block = `products:\n${Array.from({ length: 80 }, (_, depth) => `${' '.repeat(2 * depth + 2)}a${depth}:`).join('\n')} 1\n`;
      const [blockProblem] = problemsIn(block);
      expect(blockProblem).toMatchObject({ file: 'broken.yaml', line: 66, path: 'products.a0.a1.a2.a3.a4.a5.a6', message: 'nested more than 64 levels deep' });
      const [flowProblem] = problemsIn(`products: ${'['.repeat(100)}${']'.repeat(100)}\n`);
      expect(flowProblem).toMatchObject({ line: 1, message: 'nested more than 64 levels deep' });
      const [overflow] = problemsIn(`products: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`);
      expect(overflow).toMatchObject({ file: 'broken.yaml', line: 1, message: 'nested more than 64 levels deep' });
    });
  });

  it('reports cross-reference problems once the shape is valid', () => {
    const problems = problemsOf('test/fixtures/catalog/duplicate-and-unknown-product.yaml');
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ['products[0].endpoints[1].id', 7],
      ['plans[0].product', 10],
    ]);
  });

  it('refuses what would never match or never count: hosts with a scheme or port, routes taken twice, windows past a year', () => {
    const problems = problemsOf(fixture('never-matching'));
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ['products[0].hosts[1]', 5],
      ['products[0].hosts[2]', 5],
      ['products[0].hosts[3]', 5],
      ['plans[0].rate_limits[0].window', 17],
      ['products[0].endpoints[1].path', 8],
      ['products[0].endpoints[3].path', 10],
    ]);
    expect(problems[4]!.message).toBe('endpoint "get-item" already has GET /v1/items/:item_id');
    expect(problems[5]!.message).toBe('endpoint "any" already has * /v1/echo');
    expect(problems[3]!.message).toMatch(/at most 366d/);
  });

  it('refuses a missing file with a clear error', () => {
    const [problem] = problemsOf('test/fixtures/catalog/does-not-exist.yaml');
    expect(problem!.message).toMatch(/cannot read/);
  });
});

describe('route matching', () => {
  const catalog = parseCatalog(`
version: 1
products:
  - id: api
    name: API
    hosts: [api.example.com, "*.Tenant.Example.com"]
    endpoints:
      - { id: list, method: GET, path: /v1/items }
      - { id: special, method: GET, path: /v1/items/special }
      - { id: get, method: GET, path: /v1/items/:id }
      - { id: any-method, method: "*", path: /v1/echo }
      - { id: files, method: GET, path: /v1/files/* }
  - id: other
    name: Other
    endpoints:
      - { id: fallback, method: GET, path: /v1/items/:id }
plans:
  - { id: p, product: api, name: P, entitlements: ["*"] }
`);
  const id = (host: string, method: string, path: string) => catalog.match(host, method, path)?.endpoint.id;

  it('prefers static segments over parameters', () => {
    expect(id('api.example.com', 'GET', '/v1/items/special')).toBe('special');
    expect(id('api.example.com', 'GET', '/v1/items/42')).toBe('get');
  });

  it('ignores the query string, the port and a trailing slash', () => {
    expect(id('api.example.com:443', 'GET', '/v1/items?page=2')).toBe('list');
    expect(id('api.example.com', 'GET', '/v1/items/')).toBe('list');
  });

  it('matches method wildcards, path wildcards and wildcard hosts', () => {
    expect(id('api.example.com', 'DELETE', '/v1/echo')).toBe('any-method');
    expect(id('api.example.com', 'GET', '/v1/files/a/b/c.txt')).toBe('files');
    expect(id('x.tenant.example.com', 'GET', '/v1/items')).toBe('list');
  });

  it('matches host names whatever their case, in the catalog or the request', () => {
    expect(id('X.TENANT.example.COM', 'GET', '/v1/items')).toBe('list');
    expect(id('API.Example.com', 'GET', '/v1/items')).toBe('list');
  });

  it('falls through to the next product when the host does not match', () => {
    expect(catalog.match('elsewhere.com', 'GET', '/v1/items/1')?.product.id).toBe('other');
    expect(id('elsewhere.com', 'GET', '/v1/items')).toBeUndefined();
  });

  it('answers the same from its cache of recent routes, however small, as by matching every time', () => {
    const products = catalog.document.products;
    const uncached = new RouteTable(products, { entries: 0, bytes: 0 });
    const request = fc.record({
      host: fc.constantFrom('api.example.com', 'API.example.com:8443', 'x.tenant.example.com', 'elsewhere.com'),
      method: fc.constantFrom('GET', 'get', 'POST', 'DELETE'),
      path: fc.constantFrom('/v1/items', '/v1/items/', '/v1/items?page=2', '/v1/items/special', '/v1/items/42', '/v1/echo', '/v1/files/a/b', '/v2/items', '/v1/items/%2e%2e'),
    });
    // Joined with spaces, these two would share one cache key; crafted hosts and paths must not collide.
    const cached = new RouteTable(products);
    expect(cached.match('x.tenant.example.com', 'GET', '/v1/items/a b')?.endpoint.id).toBe('get');
    expect(cached.match('x.tenant.example.com /v1/items/a', 'GET', 'b')).toBeUndefined();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 20, max: 200 }), fc.array(request, { maxLength: 60 }), (entries, bytes, requests) => {
        const cached = new RouteTable(products, { entries, bytes });
        for (const { host, method, path } of requests) expect(cached.match(host, method, path)).toEqual(uncached.match(host, method, path));
      }),
    );
  });

  it('holds no more bytes of paths than its limit, and no long paths at all', () => {
    const table = new RouteTable(catalog.document.products, { entries: 1_000_000, bytes: 10_000 });
    for (let i = 0; i < 2_000; i++) table.match('api.example.com', 'GET', `/v1/items/${i}-${'x'.repeat(i % 40)}`);
    expect(table.cachedBytes).toBeGreaterThan(0);
    expect(table.cachedBytes).toBeLessThanOrEqual(10_000);
    const before = table.cachedBytes;
    expect(table.match('api.example.com', 'GET', `/v1/items/${'y'.repeat(100_000)}`)?.endpoint.id).toBe('get');
    expect(table.cachedBytes).toBe(before);
  });

  it('does not match other methods or unknown paths', () => {
    expect(id('api.example.com', 'POST', '/v1/items')).toBeUndefined();
    expect(id('api.example.com', 'GET', '/v2/items')).toBeUndefined();
  });
});

describe('paths that could reach another endpoint upstream', () => {
  const catalog = loadCatalogFile('examples/petstore.yaml');
  it.each([
    '/api/v1/pets/..%2Fanalytics',
    '/api/v1/pets/%2e%2e/analytics',
    '/api/v1/pets/./1',
    '/api/v1/pets/a%2Fb',
    '/api/v1/pets/a%5Cb',
    '/api/v1/pets/..;/analytics',
    '/api/v1/pets/1;jsessionid=x',
    '/api/v1/pets/1%3Bx',
    '/api/v1/pets/1%00',
  ])('matches no endpoint for %s', (path) => {
    expect(catalog.match('h', 'GET', path)).toBeUndefined();
  });

  it('refuses two rate limits with the same window and scope', () => {
    expect(() =>
      parseCatalog(`
version: 1
products: [{ id: p, name: P, endpoints: [{ id: e, method: GET, path: /e }] }]
plans:
  - id: x
    product: p
    name: X
    entitlements: ["*"]
    rate_limits: [{ requests: 10, window: 60s }, { requests: 20, window: 1m }]
`),
    ).toThrow(/plans\[0\]\.rate_limits\[1\]\.window: another rate limit/);
  });

  it('refuses a plan in meter mode that is also prepaid: Stripe and the wallet would both bill its usage', () => {
    const plan = (mode: string) => `
version: 1
products: [{ id: p, name: P, endpoints: [{ id: e, method: GET, path: /e }] }]
plans:
  - id: x
    product: p
    name: X
    entitlements: ["*"]
    pricing: { currency: USD, mode: ${mode}, usage: { model: per_unit, unit_price: "0.001" } }
    stripe: { meter_event_name: api_calls }
`;
    expect(() => parseCatalog(plan('prepaid'))).toThrow(/plans\[0\]\.pricing\.mode: a plan in meter mode/);
    expect(parseCatalog(plan('postpaid')).document.plans[0]!.stripe?.meter_event_name).toBe('api_calls');
  });

  it('refuses a default plan that charges a fee: customers are put on it without paying', () => {
    const catalog = (pricing: string) => `
version: 1
default_plan: starter
products: [{ id: p, name: P, endpoints: [{ id: e, method: GET, path: /e }] }]
plans:
  - { id: starter, product: p, name: Starter, entitlements: ["*"], pricing: ${pricing} }
  - { id: hidden, product: p, name: Hidden, public: false, entitlements: ["*"] }
`;
    expect(() => parseCatalog(catalog('{ currency: USD, setup_fee: "5.00" }'))).toThrow(/default_plan: plan "starter" charges a setup fee; .* free to start/);
    expect(() => parseCatalog(catalog('{ currency: USD, setup_fee: "1.00", recurring_fee: "9.00" }'))).toThrow(/a setup fee and a recurring fee/);
    // A zero fee, usage prices or a prepaid wallet ask nothing before the first call.
    const free = parseCatalog(catalog('{ currency: USD, mode: prepaid, recurring_fee: "0.00", usage: { model: per_unit, unit_price: "0.01" } }'));
    expect(free.document.default_plan).toBe('starter');
    expect(free.document.plans.map((plan) => plan.public)).toEqual([true, false]);
  });
});
