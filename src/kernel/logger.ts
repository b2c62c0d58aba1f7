import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths whose values are secrets; pino replaces them wherever they appear in a log object. */
const secretPaths = [
  'key',
  'apiKey',
  'api_key',
  'token',
  'authorization',
  'headers.authorization',
  'headers["x-api-key"]',
  'secret',
  'stripeSecretKey',
  'webhookSecret',
  'adminToken',
  'usageSigningKeys',
  'databaseUrl',
  'redisUrl',
  '*.key',
  '*.token',
  '*.secret',
  '*.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tollgate' },
      redact: { paths: secretPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
