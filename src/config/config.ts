import { z } from 'zod';

/** Every setting comes from the environment; names and defaults are documented in README.md. */
const envSchema = z.object({
  TOLLGATE_CATALOG: z.string().min(1).default('examples/petstore.yaml'),
  TOLLGATE_DATA_DIR: z.string().min(1).default('.tollgate'),
  TOLLGATE_DATABASE_URL: z.url().optional(),
  TOLLGATE_REDIS_URL: z.url().optional(),
  TOLLGATE_REDIS_FAILURE_MODE: z.enum(['closed', 'open', 'local']).default('local'),
  TOLLGATE_REDIS_TIMEOUT_MS: z.coerce.number().int().positive().default(50),
  TOLLGATE_REDIS_PREFIX: z.string().default('tg'),
  TOLLGATE_GRPC_HOST: z.string().default('0.0.0.0'),
  TOLLGATE_GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(9001),
  TOLLGATE_HTTP_HOST: z.string().default('0.0.0.0'),
  TOLLGATE_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  TOLLGATE_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  TOLLGATE_KEY_HEADER: z.string().toLowerCase().default('x-api-key'),
  TOLLGATE_KEY_FROM_BEARER: z.stringbool().default(true),
  TOLLGATE_HEADER_PREFIX: z.string().toLowerCase().default('x-tollgate-'),
  TOLLGATE_SYNC_INTERVAL_MS: z.coerce.number().int().positive().default(250),
  TOLLGATE_SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(10_000),
  TOLLGATE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  catalogPath: string;
  dataDir: string;
  databaseUrl: string | undefined;
  redis: { url: string | undefined; failureMode: 'closed' | 'open' | 'local'; timeoutMs: number; prefix: string };
  grpc: { host: string; port: number };
  http: { host: string; port: number };
  adminToken: string | undefined;
  keys: { header: string; fromBearer: boolean };
  headerPrefix: string;
  syncIntervalMs: number;
  shutdownGraceMs: number;
  logLevel: Env['TOLLGATE_LOG_LEVEL'];
}

/** Parses the environment; a bad value is an error naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  return {
    catalogPath: e.TOLLGATE_CATALOG,
    dataDir: e.TOLLGATE_DATA_DIR,
    databaseUrl: e.TOLLGATE_DATABASE_URL,
    redis: {
      url: e.TOLLGATE_REDIS_URL,
      failureMode: e.TOLLGATE_REDIS_FAILURE_MODE,
      timeoutMs: e.TOLLGATE_REDIS_TIMEOUT_MS,
      prefix: e.TOLLGATE_REDIS_PREFIX,
    },
    grpc: { host: e.TOLLGATE_GRPC_HOST, port: e.TOLLGATE_GRPC_PORT },
    http: { host: e.TOLLGATE_HTTP_HOST, port: e.TOLLGATE_HTTP_PORT },
    adminToken: e.TOLLGATE_ADMIN_TOKEN,
    keys: { header: e.TOLLGATE_KEY_HEADER, fromBearer: e.TOLLGATE_KEY_FROM_BEARER },
    headerPrefix: e.TOLLGATE_HEADER_PREFIX,
    syncIntervalMs: e.TOLLGATE_SYNC_INTERVAL_MS,
    shutdownGraceMs: e.TOLLGATE_SHUTDOWN_GRACE_MS,
    logLevel: e.TOLLGATE_LOG_LEVEL,
  };
}
