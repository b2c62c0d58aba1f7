// `npm test [-- vitest arguments]`: the import rules, then the type check beside the test run (its seconds of CPU
// overlap the run's start rather than delay it); fails if any of them fails.
import { spawn, spawnSync } from 'node:child_process';

const npx = (args, options = {}) => spawn('npx', args, { stdio: 'inherit', ...options });
const exitCode = (child) => new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));

const rules = spawnSync(process.execPath, ['scripts/check-imports.mjs'], { stdio: 'inherit' });
if (rules.status !== 0) process.exit(rules.status ?? 1);
const typecheck = exitCode(npx(['tsc', '-p', 'tsconfig.json']));
const tests = await exitCode(npx(['vitest', 'run', ...process.argv.slice(2)]));
const types = await typecheck;
process.exit(tests !== 0 ? tests : types);
