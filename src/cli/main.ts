import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CatalogError } from '../catalog/index.js';
import { version } from '../kernel/index.js';
import { AdminApiError, AdminClient, AdminSetupError } from './admin-client.js';
import { GatewayError, UsageError, type CommandContext, type CommandSpec, type Io, type OptionSpec } from './command.js';
import { accountCommands } from './commands/accounts.js';
import { billingCommands } from './commands/billing.js';
import { gatewayCommands } from './commands/gateway.js';
import { stripeCommands } from './commands/stripe.js';
import { usageCommands } from './commands/usage.js';

/** The commands, by section of the overview. */
const sections: [title: string, commands: CommandSpec[]][] = [
  ['Running', gatewayCommands],
  ['Customers, subscriptions and keys', accountCommands],
  ['Usage and alerts', usageCommands],
  ['Billing', billingCommands],
  ['Stripe', stripeCommands],
];
const commands = new Map(sections.flatMap(([, list]) => list.map((spec) => [spec.name, spec] as const)));
/** First words shared by several commands ("customers"), which list them. */
const groups = new Set([...commands.keys()].filter((name) => name.includes(' ')).map((name) => name.split(' ')[0]!));

const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
};

const jsonOption: OptionSpec = { type: 'boolean', help: 'print the result as JSON (for scripts) instead of for people' };
const helpOption: OptionSpec = { type: 'boolean', help: 'show this help' };

/**
 * The `tollgate` command: runs argv's command and answers its exit code (0 done, 1 failed or denied, 2 called
 * wrongly), or -1 for `serve`, which keeps running. Output goes to `io`, so tests call it in process.
 */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const print = (text: string) => io.stdout(`${text}\n`);
  const complain = (text: string) => io.stderr(`tollgate: ${text}\n`);
  const [first] = argv;
  if (first === undefined) {
    io.stderr('Usage: tollgate COMMAND [options]\ntollgate --help lists the commands; tollgate COMMAND --help shows one\'s options.\n');
    return 2;
  }
  if (first === '--version' || first === '-V') {
    print(`tollgate ${version}`);
    return 0;
  }
  if (first === '--help' || first === '-h') {
    print(overview());
    return 0;
  }
  if (first === 'help') return help(argv.slice(1).filter((word) => !word.startsWith('-')), io);
  if (first.startsWith('-')) {
    complain(`${first} goes after a command, e.g. tollgate customers list ${first}; tollgate --help lists the commands`);
    return 2;
  }

  const words = leadingWords(argv);
  const spec = commands.get(words.slice(0, 2).join(' ')) ?? commands.get(words[0]!);
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  if (!spec) {
    if (groups.has(words[0]!) && words.length === 1) {
      if (wantsHelp) {
        print(groupHelp(words[0]!));
        return 0;
      }
      io.stderr(`${groupHelp(words[0]!)}\n`);
      return 2;
    }
    const asked = words.slice(0, groups.has(words[0]!) ? 2 : 1).join(' ');
    const guess = closest(asked);
    complain(`unknown command '${asked}'${guess ? `; did you mean '${guess}'?` : ''} (tollgate --help lists the commands)`);
    return 2;
  }
  if (wantsHelp) {
    print(commandHelp(spec));
    return 0;
  }

  try {
    const context = parse(spec, argv.slice(spec.name.split(' ').length), io);
    return await spec.run(context);
  } catch (error) {
    if (error instanceof UsageError) {
      complain(`${error.message}\nSee tollgate ${spec.name} --help`);
      return 2;
    }
    if (error instanceof CatalogError) {
      io.stderr(`${error.message}\n`);
      return 2;
    }
    if (error instanceof AdminApiError) {
      const flag = error.field === undefined ? undefined : flagOf(spec, error.field);
      // The API's own refusals name their code; the client's (unreachable, wrong token) say all in words.
      const code = error.status >= 400 && error.status !== 401 ? ` [${error.code}]` : '';
      complain(`${error.message}${flag ? ` (${flag})` : error.field ? ` (field: ${error.field})` : ''}${code}`);
      return 1;
    }
    if (error instanceof AdminSetupError || error instanceof GatewayError) {
      complain(error.message);
      return 1;
    }
    complain((error as Error).message);
    return 1;
  }
}

/** `tollgate help [COMMAND]`. */
function help(words: string[], io: Io): number {
  const spec = commands.get(words.join(' '));
  if (spec) io.stdout(`${commandHelp(spec)}\n`);
  else if (words.length === 1 && groups.has(words[0]!)) io.stdout(`${groupHelp(words[0]!)}\n`);
  else if (words.length === 0) io.stdout(`${overview()}\n`);
  else {
    const guess = closest(words.join(' '));
    io.stderr(`tollgate: unknown command '${words.join(' ')}'${guess ? `; did you mean '${guess}'?` : ''}\n`);
    return 2;
  }
  return 0;
}

/** The words before the first option: the command's name and its positional arguments. */
function leadingWords(argv: string[]): string[] {
  const end = argv.findIndex((word) => word.startsWith('-'));
  return end === -1 ? argv : argv.slice(0, end);
}

function parse(spec: CommandSpec, rest: string[], io: Io): CommandContext {
  const specOptions = optionsOf(spec);
  const config: ParseArgsConfig = {
    args: rest,
    allowPositionals: true,
    strict: true,
    options: Object.fromEntries(
      Object.entries(specOptions).map(([name, option]) => [
        name,
        { type: option.type, ...(option.multiple ? { multiple: true } : {}), ...(option.default !== undefined ? { default: option.default } : {}) },
      ]),
    ),
  };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    throw new UsageError(parseProblem(spec, error as Error & { code?: string }));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const args = parsed.positionals;
  const wanted = spec.args ?? [];
  const required = wanted.filter((arg) => !arg.startsWith('['));
  if (args.length < required.length) throw new UsageError(`missing ${required.slice(args.length).join(' ')}`);
  if (args.length > wanted.length) throw new UsageError(`unexpected ${args.slice(wanted.length).map((arg) => `'${arg}'`).join(' ')}`);
  for (const [name, option] of Object.entries(specOptions)) {
    if (option.required && (values[name] === undefined || values[name] === '')) throw new UsageError(`missing --${name}${option.value ? ` ${option.value}` : ''}`);
  }

  let api: AdminClient | undefined;
  const json = spec.json === 'always' || values.json === true;
  const print = (text: string) => io.stdout(`${text}\n`);
  const string = (name: string) => {
    const value = values[name];
    return typeof value === 'string' ? value : undefined;
  };
  return {
    args,
    io,
    json,
    api: () => (api ??= AdminClient.fromEnvironment(io.env)),
    option: string,
    need: (name) => {
      const value = string(name);
      if (value === undefined) throw new UsageError(`missing --${name}`);
      return value;
    },
    flag: (name) => values[name] === true,
    list: (name) => (Array.isArray(values[name]) ? (values[name] as string[]) : []),
    print,
    show: (value, human) => print(json ? JSON.stringify(value, null, 2) : human(value)),
  };
}

/** What parseArgs refused, in the command's terms. */
function parseProblem(spec: CommandSpec, error: Error & { code?: string }): string {
  const option = /'(-{1,2}[^' ]+)/.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
    const known = Object.keys(optionsOf(spec)).map((name) => `--${name}`);
    const guess = nearest(option, known);
    return `${spec.name} has no option ${option}${guess ? `; did you mean ${guess}?` : ''}`;
  }
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    return optionsOf(spec)[option.replace(/^-+/, '')]?.type === 'boolean' ? `${option} takes no value` : `${option} needs a value`;
  }
  return error.message;
}

function optionsOf(spec: CommandSpec): Record<string, OptionSpec> {
  return { ...spec.options, ...(spec.json === 'none' ? {} : { json: jsonOption }), help: helpOption };
}

/** The option an API error's field came from (amount → --amount, successUrl → --success-url). */
function flagOf(spec: CommandSpec, field: string): string | undefined {
  const name = field.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  return spec.options?.[name] ? `--${name}` : undefined;
}

function usageLine(spec: CommandSpec): string {
  if (spec.synopsis) return `tollgate ${spec.name} ${spec.synopsis}`;
  const parts = [...(spec.args ?? [])];
  for (const [name, option] of Object.entries(spec.options ?? {})) {
    const text = `--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`;
    parts.push(option.required ? text : `[${text}]${option.multiple ? '...' : ''}`);
  }
  if (spec.json !== 'none' && spec.json !== 'always') parts.push('[--json]');
  return `tollgate ${spec.name} ${parts.join(' ')}`.trimEnd();
}

function commandHelp(spec: CommandSpec): string {
  const options = Object.entries(optionsOf(spec)).filter(([name]) => !(name === 'json' && spec.json === 'always'));
  const labels = options.map(([name, option]) => `${name === 'help' ? '-h, ' : ''}--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`);
  const width = Math.max(...labels.map((label) => label.length));
  const summary = `${spec.summary[0]!.toUpperCase()}${spec.summary.slice(1)}.`;
  return [
    `Usage: ${usageLine(spec)}`,
    '',
    summary,
    '',
    'Options:',
    ...options.map(([, option], i) => `  ${labels[i]!.padEnd(width)}  ${option.help}${option.required ? ' (required)' : ''}`),
    ...(spec.details ? ['', spec.details] : []),
  ].join('\n');
}

function groupHelp(group: string): string {
  const members = [...commands.values()].filter((spec) => spec.name === group || spec.name.startsWith(`${group} `));
  const width = Math.max(...members.map((spec) => spec.name.length));
  return [`tollgate ${group} commands (tollgate COMMAND --help for one's options):`, ...members.map((spec) => `  ${spec.name.padEnd(width)}  ${spec.summary}`)].join('\n');
}

function overview(): string {
  const width = Math.max(...[...commands.keys()].map((name) => name.length));
  const lines = [
    `tollgate ${version}: API monetization next to Envoy and Istio`,
    '',
    'Usage: tollgate COMMAND [options]      tollgate COMMAND --help shows its options; tollgate --version',
  ];
  for (const [title, list] of sections) lines.push('', title, ...list.map((spec) => `  ${spec.name.padEnd(width)}  ${spec.summary}`));
  lines.push(
    '',
    'Lists print as tables, single results as "name: value" lines; --json prints the admin API\'s JSON for scripts.',
    'Amounts are in major units: --amount 50.00.',
    'The admin API is at TOLLGATE_URL (default http://127.0.0.1:8080), with TOLLGATE_ADMIN_TOKEN or else the token',
    'tollgate serve keeps in TOLLGATE_DATA_DIR/admin-token (.tollgate/admin-token where it runs). check talks to the',
    'gRPC port at TOLLGATE_GRPC_ADDR (default 127.0.0.1 at TOLLGATE_GRPC_PORT, 9001).',
  );
  return lines.join('\n');
}

/** The command or group a mistyped name most likely meant ("wallet topup" → "wallet top-up"). */
function closest(asked: string): string | undefined {
  return nearest(asked, [...commands.keys(), ...groups]);
}

function nearest(asked: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(asked.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(asked, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** The process's entry (bin.ts): runs main and sets the exit code. */
export async function run(argv: string[]): Promise<void> {
  // A reader that stops early (`tollgate … | head`) ends the command quietly, as for any Unix tool; the server's
  // log stream is left alone.
  if (argv[0] !== 'serve') {
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(process.exitCode ?? 0);
    });
  }
  const code = await main(argv);
  if (code >= 0) process.exitCode = code;
}
