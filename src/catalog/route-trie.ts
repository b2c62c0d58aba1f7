/**
 * The route trie under the catalog's route table, and the check the schema makes with it (no endpoint may take
 * another's routes). Generic over the endpoint so that the schema, which defines the endpoint type, can use it.
 */

/** What the trie needs of an endpoint. */
export interface RoutedEndpoint {
  method: readonly string[];
  path: string;
}

/** One path segment level of the route trie: static segments win over parameters, parameters over "*". */
export interface TrieNode<E extends RoutedEndpoint> {
  statics: Map<string, TrieNode<E>>;
  param?: TrieNode<E>;
  wildcard?: Map<string, E>;
  /** Endpoints ending here, by method ("*" for any). */
  methods: Map<string, E>;
}

export const newNode = <E extends RoutedEndpoint>(): TrieNode<E> => ({ statics: new Map(), methods: new Map() });

/** Puts an endpoint in the trie; `onTaken` hears of each method slot another endpoint already had (it is replaced). */
export function insert<E extends RoutedEndpoint>(root: TrieNode<E>, endpoint: E, onTaken?: (method: string, taken: E) => void): void {
  const claim = (slots: Map<string, E>) => {
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
export function takenRoutes<E extends RoutedEndpoint>(endpoints: readonly E[]): { index: number; method: string; taken: E }[] {
  const root = newNode<E>();
  const found: { index: number; method: string; taken: E }[] = [];
  endpoints.forEach((endpoint, index) => insert(root, endpoint, (method, taken) => found.push({ index, method, taken })));
  return found;
}

const byMethod = <E>(table: Map<string, E> | undefined, method: string) =>
  table?.get(method) ?? table?.get('*');

export function lookup<E extends RoutedEndpoint>(node: TrieNode<E>, segments: string[], index: number, method: string): E | undefined {
  if (index === segments.length) return byMethod(node.methods, method) ?? byMethod(node.wildcard, method);
  const segment = segments[index]!;
  const viaStatic = node.statics.get(segment);
  const found =
    (viaStatic && lookup(viaStatic, segments, index + 1, method)) ??
    (node.param && lookup(node.param, segments, index + 1, method));
  return found ?? byMethod(node.wildcard, method);
}

export function splitPath(path: string): string[] {
  return path.split('/').filter((segment) => segment.length > 0);
}
