import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The `tollgate` command run in this process against `env`, its output captured. */
export async function runCli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (text) => void (stdout += text), stderr: (text) => void (stderr += text), env });
  return { code, stdout, stderr };
}

/** A CLI run's --json output. */
export function jsonOf(result: CliResult): any {
  if (!result.stdout) throw new Error(`no output (exit ${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout);
}
