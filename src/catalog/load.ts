import { readFileSync } from 'node:fs';
import { isAlias, isCollection, isNode, isPair, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { Catalog } from './catalog.js';
import { catalogSchema } from './schema.js';

/** A catalog problem located in its file: `file:line:column: path: message`. */
export interface CatalogProblem {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}

export class CatalogError extends Error {
  constructor(readonly problems: CatalogProblem[]) {
    super(`invalid catalog:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'CatalogError';
  }
}

export const formatProblem = (p: CatalogProblem) => `  ${p.file}:${p.line}:${p.column}: ${p.path || '(root)'}: ${p.message}`;

export function loadCatalogFile(file: string): Catalog {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CatalogError([{ file, line: 0, column: 0, path: '', message: `cannot read: ${(error as Error).message}` }]);
  }
  return parseCatalog(text, file);
}

/** Deeper than any real catalog; bounds the work of a hostile or broken file. */
const maxNestingDepth = 64;
/** Aliases a catalog may expand: enough for shared blocks, far too few for an alias bomb ("billion laughs"). */
const maxAliasCount = 100;

export function parseCatalog(text: string, file = '<catalog>'): Catalog {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, path: (string | number)[], message: string): CatalogProblem => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col, path: formatPath(path), message };
  };
  if (doc.errors.length > 0) {
    throw new CatalogError(
      doc.errors.map((error) =>
        // The YAML composer recurses; a nesting deep enough overflows the stack while composing.
        at(error.pos[0], [], /Maximum call stack size exceeded/.test(error.message) ? `nested more than ${maxNestingDepth} levels deep` : error.message.split('\n')[0]!),
      ),
    );
  }
  const structural = structuralProblems(doc, at);
  if (structural.length > 0) throw new CatalogError(structural);
  let plain: unknown;
  try {
    plain = doc.toJS({ maxAliasCount });
  } catch (error) {
    const firstAlias = findNode(doc, isAlias);
    throw new CatalogError([at(firstAlias?.node.range?.[0] ?? 0, firstAlias?.path ?? [], `${(error as Error).message} (at most ${maxAliasCount} alias expansions)`)]);
  }
  const parsed = catalogSchema.safeParse(plain);
  if (!parsed.success) throw new CatalogError(parsed.error.issues.map((issue) => locate(issue, doc, lineCounter, file)));
  return new Catalog(parsed.data);
}

type Locate = (offset: number, path: (string | number)[], message: string) => CatalogProblem;

/** Aliases to no anchor, and nesting past the limit, found by walking the nodes without recursion. */
function structuralProblems(doc: Document, at: Locate): CatalogProblem[] {
  const problems: CatalogProblem[] = [];
  const unresolved = findNode(doc, (node) => isAlias(node) && !node.resolve(doc));
  if (unresolved && isAlias(unresolved.node)) {
    problems.push(at(unresolved.node.range?.[0] ?? 0, unresolved.path, `alias *${unresolved.node.source} names no anchor set before it`));
  }
  const tooDeep = findNode(doc, (_, depth) => depth > maxNestingDepth);
  if (tooDeep) problems.push(at(tooDeep.node.range?.[0] ?? 0, tooDeep.path.slice(0, 8), `nested more than ${maxNestingDepth} levels deep`));
  return problems;
}

/** The first node, depth first, that `test` accepts, with its path (keys and indexes) and depth. */
function findNode(doc: Document, test: (node: Node, depth: number) => boolean): { node: Node; path: (string | number)[] } | undefined {
  const pending: { node: unknown; path: (string | number)[] }[] = [{ node: doc.contents, path: [] }];
  while (pending.length > 0) {
    const { node, path } = pending.pop()!;
    if (!isNode(node)) continue;
    if (test(node, path.length)) return { node, path };
    if (!isCollection(node)) continue;
    const children = node.items.map((item, index) =>
      isPair(item) ? { node: item.value, path: [...path, isNode(item.key) && 'value' in item.key ? String(item.key.value) : String(item.key)] } : { node: item, path: [...path, index] },
    );
    pending.push(...children.reverse());
  }
  return undefined;
}

/** Finds the YAML node nearest to the issue's path, so the error points at the line to fix. */
function locate(issue: z.core.$ZodIssue, doc: Document, lineCounter: LineCounter, file: string): CatalogProblem {
  const path = issue.path.map((segment) => (typeof segment === 'symbol' ? segment.toString() : segment));
  // An unknown field is reported on its parent object; point at the field itself.
  if (issue.code === 'unrecognized_keys' && issue.keys[0]) path.push(issue.keys[0]);
  let offset = 0;
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) {
      offset = node.range[0];
      break;
    }
  }
  const { line, col } = lineCounter.linePos(offset);
  return { file, line, column: col, path: formatPath(path), message: issue.message };
}

function formatPath(path: (string | number)[]): string {
  return path.reduce<string>(
    (text, segment) => (typeof segment === 'number' ? `${text}[${segment}]` : text ? `${text}.${segment}` : segment),
    '',
  );
}
