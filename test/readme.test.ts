import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './support/cli.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

/**
 * The README's CLI examples as a fresh user pastes them: every `npx tollgate …` line of its sh blocks, in order, with
 * the shell variables they set (`KEY=$(npx tollgate … | tail -n 1)`), against one fresh server; then those of the
 * docs the README leads to, in reading order (they build on the quick start's customers).
 */
const exampleFiles = ['README.md', 'docs/CATALOG.md', 'docs/BILLING.md', 'docs/USAGE-ALERTS.md'];


interface Step {
  line: string;
  /** The variable the step's last output line goes into. */
  assign?: string;
  words: string[];
}

function readmeSteps(markdown: string): Step[] {
  const steps: Step[] = [];
  let inShell = false;
  for (const raw of markdown.split('\n')) {
    if (raw.startsWith('```')) {
      inShell = raw === '```sh';
      continue;
    }
    if (!inShell) continue;
    const line = withoutComment(raw).trim();
    const match = /^(?:([A-Z_]+)=\$\()?npx tollgate (.+?)(\s*\|\s*tail -n 1\))?$/.exec(line);
    if (!match) continue;
    if (Boolean(match[1]) !== Boolean(match[3])) throw new Error(`cannot read README line: ${raw}`);
    steps.push({ line, ...(match[1] ? { assign: match[1] } : {}), words: shellWords(match[2]!) });
  }
  return steps;
}

/** The line before a `#` that starts a comment (preceded by a space, outside quotes). */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quote) {
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") quote = char;
    else if (char === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** Shell words: quotes group, `$NAME` is left for expansion (single quotes keep it literal, as `\u0000`-marked). */
function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const char of text) {
    if (quote) {
      if (char === quote) quote = undefined;
      else word = (word ?? '') + (char === '$' && quote === "'" ? '\u0000' : char);
    } else if (char === '"' || char === "'") {
      quote = char;
      word ??= '';
    } else if (/\s/.test(char)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + char;
  }
  if (quote) throw new Error(`unclosed quote in: ${text}`);
  if (word !== undefined) words.push(word);
  return words;
}

describe('README', () => {
  let service: TestApp;
  let env: NodeJS.ProcessEnv;
  const steps = exampleFiles.flatMap((file) => readmeSteps(readFileSync(file, 'utf8')));

  beforeAll(async () => {
    // The portal on, as the quick start restarts the server for its sign-in link.
    service = await startTestApp({ mode: 'embedded', env: { TOLLGATE_PORTAL_PORT: '0', TOLLGATE_PORTAL_HOST: '127.0.0.1' } });
    env = { TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken, TOLLGATE_GRPC_ADDR: service.grpcAddress };
  });
  afterAll(async () => {
    await service?.close();
  });

  it('has the quick start: a metered key, checks logged as Envoy would, usage and a draft invoice', () => {
    expect(steps.map((step) => step.line)).toEqual(
      expect.arrayContaining([
        'KEY=$(npx tollgate keys create --customer acme --plan metered | tail -n 1)',
        'npx tollgate check --key $KEY --path /api/v1/pets --meter --count 20',
        'npx tollgate usage --customer acme',
        'npx tollgate invoices list --customer acme',
        'npx tollgate portal link --customer acme',
      ]),
    );
  });

  it('runs every CLI example in order, as written', async () => {
    const variables: Record<string, string> = {};
    const outputs = new Map<string, CliResult>();
    for (const step of steps) {
      const args = step.words.map((word) =>
        word.replace(/\$\{?([A-Z_]+)\}?/g, (_, name: string) => {
          if (variables[name] === undefined) throw new Error(`${step.line}: $${name} is not set by an earlier example`);
          return variables[name]!;
        }).replace(/\u0000/g, '$'),
      );
      // Usage is written within a second of the access log (TOLLGATE_USAGE_FLUSH_MS): a reader a moment later sees it.
      if (args[0] === 'usage' && args[1] !== 'reconcile') {
        const seen = async () => /^calls: +[1-9]/m.test((await runCli(env, ...args)).stdout);
        await expect.poll(seen, { timeout: 5_000, interval: 100 }).toBe(true);
      }
      const result = await runCli(env, ...args);
      // check exits 1 for a denied call, which some examples show on purpose.
      expect({ line: step.line, code: result.code, stderr: result.stderr }).toEqual({ line: step.line, code: args[0] === 'check' ? expect.toBeOneOf([0, 1]) : 0, stderr: '' });
      if (step.assign) variables[step.assign] = result.stdout.trimEnd().split('\n').at(-1)!;
      outputs.set(step.line, result);
    }

    expect(variables.KEY).toMatch(/^tg_\w+$/);
    expect(outputs.get('npx tollgate check --key $KEY --path /api/v1/pets')!.stdout).toMatch(/^ALLOW 200 /);
    expect(outputs.get('npx tollgate usage --customer acme')!.stdout).toMatch(/^calls: +20\n(.*\n)*billable calls: +20$/m);
    expect(outputs.get('npx tollgate invoices list --customer acme')!.stdout).toMatch(/^inv_\w+ +metered +.* +draft +20 +0\.20 USD$/m);
    const limited = outputs.get('npx tollgate check --key $FREE_KEY --path /api/v1/pets --count 11')!;
    expect(limited).toMatchObject({ code: 1, stdout: expect.stringMatching(/^ {2}11 {2}DENY 429 +rate_limited: /m) });
    expect(outputs.get('npx tollgate check --key $FREE_KEY --path /api/v1/pets')!.stdout).toMatch(/^DENY 429 .*\ncode: +rate_limited\n/);
    expect(outputs.get('npx tollgate wallet show --customer globex')!.stdout).toMatch(/^USD +45\.00 +45\.00 /m);
  });
});
