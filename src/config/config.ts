import { z } from 'zod';
import type { TlsFilePaths } from '../kernel/index.js';
import { portalEnvShape, portalSettings, type PortalSettings } from './portal-settings.js';
import { tracingSettings, type TracingSettings } from '../tracing/index.js';

/** Usage signing keys of at least this many characters: 32 random-looking characters are ≥ 128 bits. */
export const minSigningKeyLength = 32;

/** TOLLGATE_ROLE's values: what one process runs (see Role). */
export const roles = ['all', 'edge', 'control'] as const;

/** A NATS server address: a nats:// or tls:// URL, or a bare host:port. */
const natsServer = /^((nats|tls):\/\/)?[^\s/,]+$/;

/** Every setting comes from the environment; names and defaults are documented in docs/CONFIGURATION.md. */
const envSchema = z.object({
  TOLLGATE_ROLE: z.enum(roles).default('all'),
  TOLLGATE_CATALOG: z.string().min(1).default('examples/petstore.yaml'),
  TOLLGATE_DATA_DIR: z.string().min(1).default('.tollgate'),
  TOLLGATE_DATABASE_URL: z.url().optional(),
  TOLLGATE_REDIS_URL: z
    .string()
    .refine((value) => value.split(',').every((url) => URL.canParse(url.trim()) && /^rediss?:$/.test(new URL(url.trim()).protocol)), {
      message: 'must be a redis:// or rediss:// URL, or several comma-separated ones (Redis Cluster seeds)',
    })
    .optional(),
  TOLLGATE_REDIS_FAILURE_MODE: z.enum(['closed', 'open', 'local']).default('local'),
  TOLLGATE_REDIS_TIMEOUT_MS: z.coerce.number().int().positive().default(50),
  TOLLGATE_REDIS_PREFIX: z.string().default('tg'),
  TOLLGATE_GRPC_HOST: z.string().default('0.0.0.0'),
  TOLLGATE_GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(9001),
  TOLLGATE_GRPC_TLS_CERT: z.string().min(1).optional(),
  TOLLGATE_GRPC_TLS_KEY: z.string().min(1).optional(),
  TOLLGATE_GRPC_TLS_CLIENT_CA: z.string().min(1).optional(),
  TOLLGATE_GRPC_TLS_CLIENT_CERT: z.enum(['required', 'optional']).default('required'),
  TOLLGATE_GRPC_ALLOWED_PEERS: z.string().optional(),
  TOLLGATE_GRPC_CALLER_TOKENS: z
    .string()
    .refine((value) => value.split(',').every((token) => token.trim().length >= 16), { message: 'each token must be at least 16 characters' })
    .optional(),
  TOLLGATE_GRPC_CALLER_TOKENS_FILE: z.string().min(1).optional(),
  TOLLGATE_HTTP_HOST: z.string().default('0.0.0.0'),
  TOLLGATE_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  TOLLGATE_HTTP_TLS_CERT: z.string().min(1).optional(),
  TOLLGATE_HTTP_TLS_KEY: z.string().min(1).optional(),
  TOLLGATE_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  TOLLGATE_USAGE_SIGNING_KEY: z
    .string()
    .refine((value) => value.split(',').every((key) => key.trim().length >= minSigningKeyLength), {
      message: `each key must be at least ${minSigningKeyLength} characters`,
    })
    .optional(),
  TOLLGATE_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  TOLLGATE_KEY_HEADER: z.string().toLowerCase().default('x-api-key'),
  TOLLGATE_KEY_FROM_BEARER: z.stringbool().default(true),
  TOLLGATE_HEADER_PREFIX: z.string().toLowerCase().default('x-tollgate-'),
  TOLLGATE_SYNC_INTERVAL_MS: z.coerce.number().int().positive().default(250),
  TOLLGATE_IDENTITY_CACHE_KEYS: z.coerce.number().int().positive().default(100_000),
  TOLLGATE_IDENTITY_NEGATIVE_CACHE_KEYS: z.coerce.number().int().positive().default(10_000),
  TOLLGATE_IDENTITY_NEGATIVE_TTL_MS: z.coerce.number().int().nonnegative().default(10_000),
  TOLLGATE_IDENTITY_POLL_MS: z.coerce.number().int().positive().default(1_000),
  TOLLGATE_SHUTDOWN_DELAY_MS: z.coerce.number().int().nonnegative().default(0),
  TOLLGATE_SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(10_000),
  // Set by the image build (Dockerfile's COMMIT argument; empty when the build passed none); shown in tollgate_build_info.
  TOLLGATE_BUILD_COMMIT: z.string().regex(/^([0-9a-f]{7,40})?$/, 'must be a git commit id (7 to 40 hex digits)').optional(),
  TOLLGATE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  TOLLGATE_BILLING_INTERVAL_MS: z.coerce.number().int().nonnegative().default(30_000),
  TOLLGATE_BILLING_FINALIZE_AFTER_MS: z.coerce.number().int().nonnegative().default(3_600_000),
  TOLLGATE_JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  TOLLGATE_JWT_JWKS_FILE: z.string().min(1).optional(),
  TOLLGATE_JWT_ISSUER: z.string().min(1).optional(),
  TOLLGATE_JWT_AUDIENCE: z.string().min(1).optional(),
  TOLLGATE_JWT_CLIENT_CLAIM: z.string().min(1).default('client_id'),
  TOLLGATE_JWT_CLOCK_TOLERANCE_S: z.coerce.number().int().nonnegative().default(30),
  TOLLGATE_SPOOL_FSYNC_MS: z.coerce.number().int().positive().default(200),
  TOLLGATE_SPOOL_MAX_BYTES: z.coerce.number().int().positive().default(1024 ** 3),
  TOLLGATE_USAGE_BATCH_SIZE: z.coerce.number().int().positive().default(50_000),
  TOLLGATE_USAGE_FLUSH_MS: z.coerce.number().int().positive().default(1_000),
  TOLLGATE_STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_(test|live)_\w+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)').optional(),
  TOLLGATE_STRIPE_WEBHOOK_SECRET: z
    .string()
    .refine((value) => value.split(',').every((secret) => secret.trim().startsWith('whsec_')), { message: 'must be webhook signing secrets (whsec_…), comma-separated' })
    .optional(),
  TOLLGATE_STRIPE_API_BASE: z.url({ protocol: /^https?$/ }).default('https://api.stripe.com'),
  TOLLGATE_STRIPE_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  TOLLGATE_STRIPE_SYNC_INTERVAL_MS: z.coerce.number().int().positive().default(2_000),
  TOLLGATE_STRIPE_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  TOLLGATE_STRIPE_RETRY_BASE_MS: z.coerce.number().int().positive().default(1_000),
  TOLLGATE_STRIPE_RETRY_MAX_MS: z.coerce.number().int().positive().default(3_600_000),
  TOLLGATE_STRIPE_MAX_ATTEMPTS: z.coerce.number().int().positive().default(20),
  TOLLGATE_STRIPE_PAYMENT_GRACE_MS: z.coerce.number().int().nonnegative().default(3 * 86_400_000),
  TOLLGATE_STRIPE_USAGE_REPORT_INTERVAL_MS: z.coerce.number().int().positive().default(60_000),
  TOLLGATE_ALERTS_EVALUATION_INTERVAL_MS: z.coerce.number().int().nonnegative().default(30_000),
  TOLLGATE_ALERTS_DELIVERY_INTERVAL_MS: z.coerce.number().int().positive().default(1_000),
  TOLLGATE_ALERTS_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  TOLLGATE_ALERTS_RETRY_BASE_MS: z.coerce.number().int().positive().default(10_000),
  TOLLGATE_ALERTS_RETRY_MAX_MS: z.coerce.number().int().positive().default(3_600_000),
  TOLLGATE_ALERTS_MAX_ATTEMPTS: z.coerce.number().int().positive().default(12),
  TOLLGATE_NATS_URL: z
    .string()
    .refine((value) => value.split(',').every((server) => natsServer.test(server.trim())), {
      message: 'must be NATS server addresses (nats://host:port, tls://host:port or host:port), comma-separated',
    })
    .optional(),
  TOLLGATE_NATS_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"').default('TOLLGATE'),
  TOLLGATE_NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be subject tokens (letters, digits, "_" or "-") separated by dots')
    .default('tollgate'),
  TOLLGATE_NATS_CREATE_STREAM: z.stringbool().default(true),
  TOLLGATE_NATS_DUPLICATE_WINDOW_MS: z.coerce.number().int().min(1_000).default(120_000),
  TOLLGATE_NATS_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
  TOLLGATE_NATS_TOKEN: z.string().min(1).optional(),
  TOLLGATE_NATS_CREDS_FILE: z.string().min(1).optional(),
  TOLLGATE_NATS_TLS_CA: z.string().min(1).optional(),
  TOLLGATE_NATS_TLS_CERT: z.string().min(1).optional(),
  TOLLGATE_NATS_TLS_KEY: z.string().min(1).optional(),
  TOLLGATE_EVENTS_SOURCE: z.string().min(1).default('/tollgate'),
  TOLLGATE_EVENTS_INTERVAL_MS: z.coerce.number().int().positive().default(1_000),
  TOLLGATE_EVENTS_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(500),
  TOLLGATE_EVENTS_RETRY_BASE_MS: z.coerce.number().int().positive().default(1_000),
  TOLLGATE_EVENTS_RETRY_MAX_MS: z.coerce.number().int().positive().default(60_000),
  TOLLGATE_EVENTS_RETENTION_MS: z.coerce.number().int().nonnegative().default(3_600_000),
  ...portalEnvShape,
});


export type Env = z.infer<typeof envSchema>;

/**
 * What one process runs: `all` (the default) everything; `edge` the Check, access logs and their flush to the database,
 * beside Envoy; `control` the admin API, webhooks, portal and the background loops (docs/DEPLOYMENT.md, "Roles").
 */
export type Role = Env['TOLLGATE_ROLE'];

export interface Config {
  role: Role;
  catalogPath: string;
  dataDir: string;
  databaseUrl: string | undefined;
  redis: { url: string | undefined; failureMode: 'closed' | 'open' | 'local'; timeoutMs: number; prefix: string };
  grpc: GrpcConfig;
  http: { host: string; port: number; tls: TlsFilePaths | undefined };
  adminToken: string | undefined;
  /** Usage signing keys: the first signs, all verify (rotation). Empty: one generated into the data directory. */
  usageSigningKeys: string[];
  /** Opens /metrics/business to a scraper without the admin token. */
  metricsToken: string | undefined;
  keys: { header: string; fromBearer: boolean };
  headerPrefix: string;
  syncIntervalMs: number;
  /** Identity on demand (with Redis): the bounded caches in front of the identity records, and the version poll. */
  identity: { cacheKeys: number; unknownKeys: number; unknownTtlMs: number; pollMs: number };
  /** After SIGTERM, how long to go on serving while reporting not ready, before draining. */
  shutdownDelayMs: number;
  shutdownGraceMs: number;
  logLevel: Env['TOLLGATE_LOG_LEVEL'];
  /** The git commit the image was built from, when its build recorded one. */
  buildCommit: string | undefined;
  metering: { spoolFsyncMs: number; spoolMaxBytes: number; batchSize: number; flushIntervalMs: number };
  stripe: StripeConfig;
  /** How often the rating loop runs, and how long after a period ends its invoices are finalized. */
  billing: { intervalMs: number; finalizeAfterMs: number };
  /** Bearer JWTs are accepted beside API keys when a JWKS is configured. */
  jwt: JwtSettings | undefined;
  alerts: AlertsConfig;
  /** OpenTelemetry tracing from the standard OTEL_* variables; undefined when off (the default). */
  tracing: TracingSettings | undefined;
  /** The developer portal, on its own port; undefined: off. */
  portal: PortalSettings | undefined;
  /** Usage events, alerts and finalized invoices published to a broker; undefined: off, and nothing is queued. */
  events: EventsConfig | undefined;
}

export interface EventsConfig {
  /** CloudEvents `source` of every event. */
  source: string;
  nats: NatsConfig;
  /** Time between publisher passes while all is well. */
  intervalMs: number;
  /** Events read from the outbox and sent at once. */
  batchSize: number;
  /** Backoff of failed passes (broker or database down): doubling from the base, capped. */
  retry: { baseMs: number; maxMs: number };
  /** Published events stay in the outbox this long, then are deleted. */
  retentionMs: number;
}

export interface NatsConfig {
  servers: string[];
  stream: string;
  /** Subjects are `<prefix>.<usage|alert|invoice>.<customer>`. */
  subjectPrefix: string;
  /** Create the stream when missing (and check an existing one captures the subjects). */
  createStream: boolean;
  /** The duplicate window of a stream Tollgate creates: republishing within it is de-duplicated by JetStream. */
  duplicateWindowMs: number;
  /** Longest wait to connect, and for each publish's acknowledgement. */
  timeoutMs: number;
  token: string | undefined;
  credsFile: string | undefined;
  /** TLS: a CA to trust, and a client certificate and key for mutual TLS. */
  tls: { ca: string | undefined; cert: string | undefined; key: string | undefined } | undefined;
}

/** Bearer JWTs (identity/jwt.ts): where the keys are and which claim names the client. */
export interface JwtSettings {
  /** JWKS URL (fetched, cached and refreshed by jose) or a local JWKS file. */
  jwks: { url: string } | { file: string };
  issuer: string | undefined;
  audience: string | undefined;
  /** The claim naming the client, e.g. client_id (OAuth2 client credentials) or sub. */
  claim: string;
  /** Clock tolerance for exp/nbf, seconds. */
  clockToleranceSeconds: number;
}

export interface GrpcConfig {
  host: string;
  port: number;
  /** Plaintext without it; mutual TLS when it names a client CA. */
  tls: TlsFilePaths | undefined;
  /** Who may send Checks and access logs (see grpc/callers.ts). */
  callers: { allowedPeers: string[]; tokens: string[]; tokensFile: string | undefined };
}

export interface AlertsConfig {
  /** Time between evaluation passes; 0 evaluates only when asked. */
  evaluationIntervalMs: number;
  /** Time between delivery passes. */
  deliveryIntervalMs: number;
  /** Longest wait for a customer's webhook to answer. */
  timeoutMs: number;
  /** Backoff of failed deliveries (doubling from the base, capped, with jitter) and attempts before one is dead. */
  retry: { baseMs: number; maxMs: number; maxAttempts: number };
}

export interface StripeConfig {
  /** Without it the sync loop does not run; work stays queued in the outbox until a key is configured. */
  secretKey: string | undefined;
  /** Without it POST /webhooks/stripe answers 503, so Stripe keeps the events and redelivers them later. */
  /** Signing secrets of the webhook endpoints (snapshot and thin events each have their own in Stripe); empty: webhooks off. */
  webhookSecrets: string[];
  /** Stripe's API, or a Stripe-compatible test server. */
  apiBase: string;
  timeoutMs: number;
  syncIntervalMs: number;
  /** Stripe requests in flight at once; Stripe allows 25 writes a second in test mode, 100 live, and answers 429 beyond. */
  concurrency: number;
  retry: { baseMs: number; maxMs: number; maxAttempts: number };
  /** How long a customer keeps access after a failed invoice payment before being suspended. */
  paymentGraceMs: number;
  /** How often meter-mode usage is sent to Stripe Billing Meters. */
  usageReportIntervalMs: number;
}

/** Parses the environment; a bad value is an error naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  refuseSplitRoleWithoutSharedStores(e);
  return {
    role: e.TOLLGATE_ROLE,
    catalogPath: e.TOLLGATE_CATALOG,
    dataDir: e.TOLLGATE_DATA_DIR,
    databaseUrl: e.TOLLGATE_DATABASE_URL,
    redis: {
      url: e.TOLLGATE_REDIS_URL,
      failureMode: e.TOLLGATE_REDIS_FAILURE_MODE,
      timeoutMs: e.TOLLGATE_REDIS_TIMEOUT_MS,
      prefix: e.TOLLGATE_REDIS_PREFIX,
    },
    grpc: {
      host: e.TOLLGATE_GRPC_HOST,
      port: e.TOLLGATE_GRPC_PORT,
      tls: tlsFiles('TOLLGATE_GRPC_TLS', e.TOLLGATE_GRPC_TLS_CERT, e.TOLLGATE_GRPC_TLS_KEY, e.TOLLGATE_GRPC_TLS_CLIENT_CA, e.TOLLGATE_GRPC_TLS_CLIENT_CERT),
      callers: {
        allowedPeers: list(e.TOLLGATE_GRPC_ALLOWED_PEERS),
        tokens: list(e.TOLLGATE_GRPC_CALLER_TOKENS),
        tokensFile: e.TOLLGATE_GRPC_CALLER_TOKENS_FILE,
      },
    },
    http: { host: e.TOLLGATE_HTTP_HOST, port: e.TOLLGATE_HTTP_PORT, tls: tlsFiles('TOLLGATE_HTTP_TLS', e.TOLLGATE_HTTP_TLS_CERT, e.TOLLGATE_HTTP_TLS_KEY) },
    adminToken: e.TOLLGATE_ADMIN_TOKEN,
    usageSigningKeys: list(e.TOLLGATE_USAGE_SIGNING_KEY),
    metricsToken: e.TOLLGATE_METRICS_TOKEN,
    keys: { header: e.TOLLGATE_KEY_HEADER, fromBearer: e.TOLLGATE_KEY_FROM_BEARER },
    headerPrefix: e.TOLLGATE_HEADER_PREFIX,
    syncIntervalMs: e.TOLLGATE_SYNC_INTERVAL_MS,
    identity: {
      cacheKeys: e.TOLLGATE_IDENTITY_CACHE_KEYS,
      unknownKeys: e.TOLLGATE_IDENTITY_NEGATIVE_CACHE_KEYS,
      unknownTtlMs: e.TOLLGATE_IDENTITY_NEGATIVE_TTL_MS,
      pollMs: e.TOLLGATE_IDENTITY_POLL_MS,
    },
    shutdownDelayMs: e.TOLLGATE_SHUTDOWN_DELAY_MS,
    shutdownGraceMs: e.TOLLGATE_SHUTDOWN_GRACE_MS,
    logLevel: e.TOLLGATE_LOG_LEVEL,
    buildCommit: e.TOLLGATE_BUILD_COMMIT || undefined,
    metering: {
      spoolFsyncMs: e.TOLLGATE_SPOOL_FSYNC_MS,
      spoolMaxBytes: e.TOLLGATE_SPOOL_MAX_BYTES,
      batchSize: e.TOLLGATE_USAGE_BATCH_SIZE,
      flushIntervalMs: e.TOLLGATE_USAGE_FLUSH_MS,
    },
    billing: { intervalMs: e.TOLLGATE_BILLING_INTERVAL_MS, finalizeAfterMs: e.TOLLGATE_BILLING_FINALIZE_AFTER_MS },
    jwt: jwtSettings(e),
    portal: portalSettings(e),
    alerts: {
      evaluationIntervalMs: e.TOLLGATE_ALERTS_EVALUATION_INTERVAL_MS,
      deliveryIntervalMs: e.TOLLGATE_ALERTS_DELIVERY_INTERVAL_MS,
      timeoutMs: e.TOLLGATE_ALERTS_TIMEOUT_MS,
      retry: { baseMs: e.TOLLGATE_ALERTS_RETRY_BASE_MS, maxMs: e.TOLLGATE_ALERTS_RETRY_MAX_MS, maxAttempts: e.TOLLGATE_ALERTS_MAX_ATTEMPTS },
    },
    events: eventsConfig(e),
    stripe: {
      secretKey: e.TOLLGATE_STRIPE_SECRET_KEY,
      webhookSecrets: list(e.TOLLGATE_STRIPE_WEBHOOK_SECRET),
      apiBase: e.TOLLGATE_STRIPE_API_BASE,
      timeoutMs: e.TOLLGATE_STRIPE_TIMEOUT_MS,
      syncIntervalMs: e.TOLLGATE_STRIPE_SYNC_INTERVAL_MS,
      concurrency: e.TOLLGATE_STRIPE_CONCURRENCY,
      retry: { baseMs: e.TOLLGATE_STRIPE_RETRY_BASE_MS, maxMs: e.TOLLGATE_STRIPE_RETRY_MAX_MS, maxAttempts: e.TOLLGATE_STRIPE_MAX_ATTEMPTS },
      paymentGraceMs: e.TOLLGATE_STRIPE_PAYMENT_GRACE_MS,
      usageReportIntervalMs: e.TOLLGATE_STRIPE_USAGE_REPORT_INTERVAL_MS,
    },
    tracing: tracingSettings(env),
  };
}

/**
 * An edge and a control process are two halves of one service: they meet only in the stores they share, so each needs
 * PostgreSQL (PGlite is one process's file) and Redis (counters, quotas and wallet balances kept in one process's memory
 * would be invisible to the other half).
 */
function refuseSplitRoleWithoutSharedStores(e: Env): void {
  const role = e.TOLLGATE_ROLE;
  if (role === 'all') return;
  const problems: string[] = [];
  if (!e.TOLLGATE_DATABASE_URL) {
    problems.push(`TOLLGATE_ROLE=${role} needs the shared PostgreSQL (TOLLGATE_DATABASE_URL): the embedded PGlite serves one process, so only TOLLGATE_ROLE=all runs on it`);
  }
  if (!e.TOLLGATE_REDIS_URL) {
    problems.push(`TOLLGATE_ROLE=${role} needs the shared Redis (TOLLGATE_REDIS_URL): limits, quotas and wallets counted in one process's memory are invisible to the other role`);
  }
  if (role === 'edge' && e.TOLLGATE_PORTAL_PORT !== undefined) {
    problems.push('TOLLGATE_PORTAL_PORT: the developer portal runs in the control role (or all), not in the edge');
  }
  if (problems.length > 0) throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
}

const list = (value: string | undefined) => (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);

/** A certificate and key go together; a client CA (mutual TLS) needs both. */
function tlsFiles(prefix: string, cert?: string, key?: string, clientCa?: string, clientCert?: 'required' | 'optional'): TlsFilePaths | undefined {
  if (!cert !== !key) throw new Error(`invalid configuration:\n  ${prefix}_CERT and ${prefix}_KEY go together`);
  if (clientCa && !cert) throw new Error(`invalid configuration:\n  ${prefix}_CLIENT_CA needs ${prefix}_CERT and ${prefix}_KEY`);
  if (!cert || !key) return undefined;
  return { cert, key, clientCa, requireClientCertificate: clientCert !== 'optional' };
}

function eventsConfig(e: Env): EventsConfig | undefined {
  if (!e.TOLLGATE_NATS_URL) return undefined;
  if (e.TOLLGATE_NATS_TOKEN && e.TOLLGATE_NATS_CREDS_FILE) {
    throw new Error('invalid configuration:\n  TOLLGATE_NATS_TOKEN and TOLLGATE_NATS_CREDS_FILE are exclusive');
  }
  if (!e.TOLLGATE_NATS_TLS_CERT !== !e.TOLLGATE_NATS_TLS_KEY) {
    throw new Error('invalid configuration:\n  TOLLGATE_NATS_TLS_CERT and TOLLGATE_NATS_TLS_KEY go together');
  }
  if (e.TOLLGATE_EVENTS_RETRY_MAX_MS < e.TOLLGATE_EVENTS_RETRY_BASE_MS) {
    throw new Error('invalid configuration:\n  TOLLGATE_EVENTS_RETRY_MAX_MS must not be less than TOLLGATE_EVENTS_RETRY_BASE_MS');
  }
  const tls = e.TOLLGATE_NATS_TLS_CA || e.TOLLGATE_NATS_TLS_CERT ? { ca: e.TOLLGATE_NATS_TLS_CA, cert: e.TOLLGATE_NATS_TLS_CERT, key: e.TOLLGATE_NATS_TLS_KEY } : undefined;
  return {
    source: e.TOLLGATE_EVENTS_SOURCE,
    nats: {
      servers: list(e.TOLLGATE_NATS_URL),
      stream: e.TOLLGATE_NATS_STREAM,
      subjectPrefix: e.TOLLGATE_NATS_SUBJECT_PREFIX,
      createStream: e.TOLLGATE_NATS_CREATE_STREAM,
      duplicateWindowMs: e.TOLLGATE_NATS_DUPLICATE_WINDOW_MS,
      timeoutMs: e.TOLLGATE_NATS_TIMEOUT_MS,
      token: e.TOLLGATE_NATS_TOKEN,
      credsFile: e.TOLLGATE_NATS_CREDS_FILE,
      tls,
    },
    intervalMs: e.TOLLGATE_EVENTS_INTERVAL_MS,
    batchSize: e.TOLLGATE_EVENTS_BATCH_SIZE,
    retry: { baseMs: e.TOLLGATE_EVENTS_RETRY_BASE_MS, maxMs: e.TOLLGATE_EVENTS_RETRY_MAX_MS },
    retentionMs: e.TOLLGATE_EVENTS_RETENTION_MS,
  };
}

function jwtSettings(e: Env): JwtSettings | undefined {
  if (e.TOLLGATE_JWT_JWKS_URL && e.TOLLGATE_JWT_JWKS_FILE) {
    throw new Error('invalid configuration:\n  TOLLGATE_JWT_JWKS_URL and TOLLGATE_JWT_JWKS_FILE are exclusive');
  }
  const jwks = e.TOLLGATE_JWT_JWKS_URL ? { url: e.TOLLGATE_JWT_JWKS_URL } : e.TOLLGATE_JWT_JWKS_FILE ? { file: e.TOLLGATE_JWT_JWKS_FILE } : undefined;
  if (!jwks) return undefined;
  return {
    jwks,
    issuer: e.TOLLGATE_JWT_ISSUER,
    audience: e.TOLLGATE_JWT_AUDIENCE,
    claim: e.TOLLGATE_JWT_CLIENT_CLAIM,
    clockToleranceSeconds: e.TOLLGATE_JWT_CLOCK_TOLERANCE_S,
  };
}
