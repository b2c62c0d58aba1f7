import type { AdminClient } from './admin-client.js';

/** Where a command writes, and the environment it reads: the process's, or a test's. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** The value's placeholder in help, e.g. ID or 50.00. */
  value?: string;
  help: string;
  required?: boolean;
  multiple?: boolean;
  default?: string;
}

export interface CommandSpec {
  /** The words that call it, e.g. "wallet top-up". */
  name: string;
  /** Positional arguments, all required, by their placeholder, e.g. ["CUSTOMER_ID"]. */
  args?: string[];
  /** One line for the command list. */
  summary: string;
  /** What --help adds below the options. */
  details?: string;
  options?: Record<string, OptionSpec>;
  /**
   * What --json does: `offered` (the default) prints the API's JSON instead of the human view; `always` means the
   * output is JSON anyway (an export); `none` means the command prints no result (serve).
   */
  json?: 'offered' | 'always' | 'none';
  /** The usage line's options when the generated one would mislead, e.g. "(--plan PLAN | --subscription ID)". */
  synopsis?: string;
  run(context: CommandContext): Promise<number>;
}

export interface CommandContext {
  args: string[];
  io: Io;
  /** --json: print the API's JSON for scripts. */
  json: boolean;
  /** The admin API client, from TOLLGATE_URL and TOLLGATE_ADMIN_TOKEN (or the data directory's token file). */
  api(): AdminClient;
  /** A string option's value; required ones are always there. */
  option(name: string): string | undefined;
  need(name: string): string;
  flag(name: string): boolean;
  list(name: string): string[];
  print(text: string): void;
  /** The value as JSON with --json, else as `human` renders it. */
  show<T>(value: T, human: (value: T) => string): void;
}

/** A mistake in how the command was called: exit code 2 and a pointer to the command's help. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The gRPC port could not be reached or refused the call: said in words, exit 1 (src/cli/check.ts). */
export class GatewayError extends Error {
  override name = 'GatewayError';
}

/** A positive whole number given as an option, e.g. --calls 150000. */
export function wholeNumber(text: string, flag: string, { min = 0 }: { min?: number } = {}): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min) {
    throw new UsageError(`--${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, not "${text}"`);
  }
  return Number(text);
}

/** A path segment of an admin API URL. */
export const segment = (value: string) => encodeURIComponent(value);
