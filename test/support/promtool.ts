import { execFileSync } from 'node:child_process';

/** Prometheus's promtool (Debian package `prometheus`; .ci/run installs it); TOLLGATE_TEST_PROMTOOL names another. */
const promtoolBinary = process.env['TOLLGATE_TEST_PROMTOOL'] ?? 'promtool';

/** Runs promtool with the arguments (and standard input); returns its output, or throws with what it said. */
export function promtool(args: string[], input?: string): string {
  try {
    return execFileSync(promtoolBinary, args, { encoding: 'utf8', stdio: 'pipe', ...(input === undefined ? {} : { input }) });
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: string; stdout?: string; stderr?: string };
    const hint = code === 'ENOENT' ? " (install Debian's prometheus package, or set TOLLGATE_TEST_PROMTOOL)" : '';
    throw new Error(`promtool ${args.join(' ')} failed${hint}:\n${stdout ?? ''}${stderr ?? (error as Error).message}`);
  }
}
