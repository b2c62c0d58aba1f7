import { readFileSync } from 'node:fs';
import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
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

export function parseCatalog(text: string, file = '<catalog>'): Catalog {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new CatalogError(
      doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return { file, line, column: col, path: '', message: error.message.split('\n')[0]! };
      }),
    );
  }
  const parsed = catalogSchema.safeParse(doc.toJS());
  if (!parsed.success) throw new CatalogError(parsed.error.issues.map((issue) => locate(issue, doc, lineCounter, file)));
  return new Catalog(parsed.data);
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
