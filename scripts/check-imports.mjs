/**
 * `npm run lint:imports`: the import rules of .dependency-cruiser.cjs on src/, plus one rule dependency-cruiser
 * cannot say: no cycle between modules (folders under src/), counting type-only imports.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise } from 'dependency-cruiser';

const config = createRequire(import.meta.url)('../.dependency-cruiser.cjs');

/** The module a file belongs to: its folder under src/, or '' for the top-level files (app.ts, main.ts). */
const moduleOf = (path) => /^src\/([^/]+)\//.exec(path)?.[1] ?? (path.startsWith('src/') ? '' : undefined);

/** Module cycles as lists of module names, each starting and ending with the same module. */
export function moduleCycles(modules) {
  const edges = new Map();
  for (const module of modules) {
    const from = moduleOf(module.source);
    if (from === undefined) continue;
    for (const dependency of module.dependencies) {
      const to = moduleOf(dependency.resolved);
      if (to === undefined || to === from) continue;
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from).add(to);
    }
  }
  const cycles = [];
  const state = new Map(); // undefined: unvisited, 1: on the current path, 2: done
  const path = [];
  const visit = (node) => {
    state.set(node, 1);
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === 1) cycles.push([...path.slice(path.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    path.pop();
    state.set(node, 2);
  };
  for (const node of [...edges.keys()].sort()) if (state.get(node) === undefined) visit(node);
  return cycles;
}

/**
 * Checks the src/ folder under baseDir (the project by default) and returns every broken rule as a line of text;
 * none means the imports keep the rules.
 */
export async function checkImports(baseDir = fileURLToPath(new URL('..', import.meta.url))) {
  const result = await cruise(
    ['src'],
    { ...config.options, baseDir: resolve(baseDir), validate: true, ruleSet: { forbidden: config.forbidden } },
    { extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } },
  );
  const { output } = result;
  const problems = output.summary.violations.map((violation) =>
    violation.cycle
      ? `${violation.rule.name}: ${[violation.from, ...violation.cycle.map((step) => step.name ?? step)].join(' -> ')}`
      : `${violation.rule.name}: ${violation.from} -> ${violation.to}`,
  );
  const unresolved = output.modules.flatMap((module) =>
    module.dependencies.filter((dependency) => dependency.couldNotResolve).map((dependency) => `unresolved: ${module.source} -> ${dependency.module}`),
  );
  const cycles = moduleCycles(output.modules).map((cycle) => `no-module-cycle: ${cycle.map((name) => name || '(src top level)').join(' -> ')}`);
  return [...problems, ...unresolved, ...cycles];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problems = await checkImports();
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) {
    console.error(`${problems.length} import rule(s) broken (see .dependency-cruiser.cjs and docs/ARCHITECTURE.md)`);
    process.exit(1);
  }
}
