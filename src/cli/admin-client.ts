import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/** A failed admin API call, carrying the API's error code and field. */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The CLI cannot talk to the admin API as configured: the message says what is missing and how to set it. */
export class AdminSetupError extends Error {
  override name = 'AdminSetupError';
}

/** Talks to a running server's admin API; the token comes from the environment or the local data directory. */
export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    /** Where the token came from, to name it when the server refuses it. */
    private readonly tokenSource: string,
  ) {}

  static fromEnvironment(env: NodeJS.ProcessEnv, cwd = process.cwd()): AdminClient {
    const baseUrl = (env.TOLLGATE_URL ?? `http://127.0.0.1:${env.TOLLGATE_HTTP_PORT ?? '8080'}`).replace(/\/$/, '');
    if (env.TOLLGATE_ADMIN_TOKEN) return new AdminClient(baseUrl, env.TOLLGATE_ADMIN_TOKEN, 'TOLLGATE_ADMIN_TOKEN');
    const dataDir = env.TOLLGATE_DATA_DIR ?? '.tollgate';
    const file = join(dataDir, 'admin-token');
    let token: string;
    try {
      token = readFileSync(resolve(cwd, file), 'utf8').trim();
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      throw new AdminSetupError(
        `no admin token: ${file} ${missing ? 'was not found' : `cannot be read (${(error as NodeJS.ErrnoException).code})`}${isAbsolute(file) ? '' : ` in ${cwd}`}. \`tollgate serve\` keeps its admin ` +
          'token there (in TOLLGATE_DATA_DIR, by default .tollgate in the directory it runs in). Run this command in the ' +
          "server's directory, set TOLLGATE_DATA_DIR to its data directory, or set TOLLGATE_ADMIN_TOKEN to its admin token " +
          '(and TOLLGATE_URL when it is not at http://127.0.0.1:8080).',
      );
    }
    return new AdminClient(baseUrl, token, file);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      const cause = (error as Error & { cause?: NodeJS.ErrnoException }).cause;
      const why = cause?.code === 'ECONNREFUSED' ? 'nothing listens there' : cause?.message ?? (error as Error).message;
      throw new AdminApiError(0, 'unreachable', `cannot reach ${this.baseUrl} (${why}): is \`tollgate serve\` running? Set TOLLGATE_URL to the admin API of another server`);
    }
    const text = await response.text();
    let parsed: { error?: { code: string; message: string; field?: string } };
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new AdminApiError(response.status, 'not_tollgate', `${this.baseUrl} answered HTTP ${response.status} with something other than JSON: is TOLLGATE_URL the address of Tollgate's admin API?`);
    }
    if (response.status === 401) {
      throw new AdminApiError(401, 'unauthorized', `the admin API at ${this.baseUrl} refused the token from ${this.tokenSource}: it is not that server's admin token`);
    }
    if (!response.ok) {
      throw new AdminApiError(response.status, parsed.error?.code ?? 'error', parsed.error?.message ?? response.statusText, parsed.error?.field);
    }
    return parsed as T;
  }
}
