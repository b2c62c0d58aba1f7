import type { EndpointDocument, ProductDocument } from './schema.js';

export interface RouteMatch {
  product: ProductDocument;
  endpoint: EndpointDocument;
}

/** One path segment level of the route trie: static segments win over parameters, parameters over "*". */
interface TrieNode {
  statics: Map<string, TrieNode>;
  param?: TrieNode;
  wildcard?: Map<string, EndpointDocument>;
  /** Endpoints ending here, by method ("*" for any). */
  methods: Map<string, EndpointDocument>;
}

const newNode = (): TrieNode => ({ statics: new Map(), methods: new Map() });

/** Puts an endpoint in the trie; `onTaken` hears of each method slot another endpoint already had (it is replaced). */
function insert(root: TrieNode, endpoint: EndpointDocument, onTaken?: (method: string, taken: EndpointDocument) => void): void {
  const claim = (slots: Map<string, EndpointDocument>) => {
    for (const method of endpoint.method) {
      const taken = slots.get(method);
      if (taken && taken !== endpoint) onTaken?.(method, taken);
      slots.set(method, endpoint);
    }
  };
  let node = root;
  for (const segment of splitPath(endpoint.path)) {
    if (segment === '*') return claim((node.wildcard ??= new Map()));
    if (segment.startsWith(':')) node = node.param ??= newNode();
    else {
      let next = node.statics.get(segment);
      if (!next) node.statics.set(segment, (next = newNode()));
      node = next;
    }
  }
  claim(node.methods);
}

/**
 * The routes of a product's endpoints that an earlier endpoint already has (a method on the same path, whatever its
 * parameters are named): the later endpoint would take all of those calls.
 */
export function takenRoutes(endpoints: readonly EndpointDocument[]): { index: number; method: string; taken: EndpointDocument }[] {
  const root = newNode();
  const found: { index: number; method: string; taken: EndpointDocument }[] = [];
  endpoints.forEach((endpoint, index) => insert(root, endpoint, (method, taken) => found.push({ index, method, taken })));
  return found;
}

const byMethod = (table: Map<string, EndpointDocument> | undefined, method: string) =>
  table?.get(method) ?? table?.get('*');

function lookup(node: TrieNode, segments: string[], index: number, method: string): EndpointDocument | undefined {
  if (index === segments.length) return byMethod(node.methods, method) ?? byMethod(node.wildcard, method);
  const segment = segments[index]!;
  const viaStatic = node.statics.get(segment);
  const found =
    (viaStatic && lookup(viaStatic, segments, index + 1, method)) ??
    (node.param && lookup(node.param, segments, index + 1, method));
  return found ?? byMethod(node.wildcard, method);
}

function splitPath(path: string): string[] {
  return path.split('/').filter((segment) => segment.length > 0);
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return pattern === host;
}

/** What the cache of recent routes may hold: entries, and bytes of their hosts and paths. */
export interface RecentRoutesLimit {
  entries: number;
  bytes: number;
}

/** Longer paths are matched every time: they carry ids that do not repeat, and would crowd out the routes that do. */
const longestCachedPath = 512;

/** Matches (host, method, path) to the one product endpoint that serves it. */
export class RouteTable {
  private readonly products: { product: ProductDocument; root: TrieNode }[];
  /**
   * Answers by method, host and path (no query): matching takes ~0.6 µs on every Check, a lookup here a tenth of
   * that, and most traffic repeats a few routes. Emptied when full (entries or bytes), so paths full of ids only cost
   * the matching. Nested maps rather than one joined key: no separator a crafted host or path could contain makes
   * two requests one.
   */
  private readonly recent = new Map<string, Map<string, Map<string, RouteMatch | null>>>();
  private recentCount = 0;
  private recentBytes = 0;

  constructor(
    products: ProductDocument[],
    private readonly recentLimit: RecentRoutesLimit = { entries: 10_000, bytes: 2 * 1024 * 1024 },
  ) {
    this.products = products.map((product) => {
      const root = newNode();
      for (const endpoint of product.endpoints) insert(root, endpoint);
      return { product, root };
    });
  }

  /** Bytes of hosts and paths the cache of recent routes holds now. */
  get cachedBytes(): number {
    return this.recentBytes;
  }

  match(host: string, method: string, rawPath: string): RouteMatch | undefined {
    const path = stripQuery(rawPath);
    let byHost = this.recent.get(method);
    let byPath = byHost?.get(host);
    const known = byPath?.get(path);
    if (known !== undefined) return known ?? undefined;
    const found = this.find(host, method, path);
    const bytes = host.length + path.length + method.length;
    if (this.recentLimit.entries > 0 && path.length <= longestCachedPath && bytes <= this.recentLimit.bytes) {
      if (this.recentCount >= this.recentLimit.entries || this.recentBytes + bytes > this.recentLimit.bytes) {
        this.recent.clear();
        this.recentCount = this.recentBytes = 0;
        byHost = byPath = undefined;
      }
      if (!byHost) this.recent.set(method, (byHost = new Map()));
      if (!byPath) byHost.set(host, (byPath = new Map()));
      byPath.set(path, found ?? null);
      this.recentCount++;
      this.recentBytes += bytes;
    }
    return found;
  }

  private find(host: string, method: string, path: string): RouteMatch | undefined {
    const bareHost = host.toLowerCase().replace(/:\d+$/, '');
    const segments = splitPath(path).map(decodeSegment);
    if (segments.some(mayReachAnotherEndpoint)) return undefined;
    for (const { product, root } of this.products) {
      if (!product.hosts.some((pattern) => hostMatches(pattern, bareHost))) continue;
      const endpoint = lookup(root, segments, 0, method.toUpperCase());
      if (endpoint) return { product, endpoint };
    }
    return undefined;
  }
}

/**
 * "..", "." or an encoded "/" or "\\" could make the upstream serve another endpoint than the one matched here; so
 * could ";" (Tomcat and Spring drop path parameters: "/docs/..;/analytics" is served as "/analytics") and NUL.
 */
function mayReachAnotherEndpoint(segment: string): boolean {
  return segment === '.' || segment === '..' || /[/\\;\0]/.test(segment);
}

function stripQuery(path: string): string {
  const cut = path.search(/[?#]/);
  return cut === -1 ? path : path.slice(0, cut);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
