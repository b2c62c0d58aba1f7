import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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

/** Talks to a running server's admin API; the token comes from the environment or the local data directory. */
export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): AdminClient {
    const baseUrl = env.TOLLGATE_URL ?? `http://127.0.0.1:${env.TOLLGATE_HTTP_PORT ?? '8080'}`;
    const token = env.TOLLGATE_ADMIN_TOKEN ?? readTokenFile(join(env.TOLLGATE_DATA_DIR ?? '.tollgate', 'admin-token'));
    return new AdminClient(baseUrl.replace(/\/$/, ''), token);
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
      throw new AdminApiError(0, 'unreachable', `cannot reach ${this.baseUrl}: ${(error as Error).cause ?? (error as Error).message}`);
    }
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as { error?: { code: string; message: string; field?: string } }) : {};
    if (!response.ok) {
      throw new AdminApiError(response.status, parsed.error?.code ?? 'error', parsed.error?.message ?? response.statusText, parsed.error?.field);
    }
    return parsed as T;
  }
}

function readTokenFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}
