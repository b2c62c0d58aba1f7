import type { Writable } from 'node:stream';
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

/** Log bytes a destination may hold in memory while its reader is behind; beyond, lines are dropped and counted. */
const maxQueuedLogBytes = 1024 * 1024;

/**
 * A destination that never blocks the process: lines go through the stream's own queue (libuv writes a pipe
 * without waiting), are dropped while that queue is full or after the stream failed (EPIPE: the reader is gone),
 * and a note of how many were dropped follows once lines get through again. pino's default destination writes
 * synchronously and, on a full pipe whose reader went away, sleeps and retries forever, so a stop never ended.
 */
export function nonBlockingDestination(stream: Writable, maxQueuedBytes = maxQueuedLogBytes): pino.DestinationStream & { dropped(): number } {
  let failed = false;
  let dropped = 0;
  let droppedSinceNote = 0;
  stream.on('error', () => (failed = true));
  return {
    write(line: string) {
      if (failed || stream.destroyed || stream.writableLength > maxQueuedBytes) {
        dropped++;
        droppedSinceNote++;
        return;
      }
      if (droppedSinceNote > 0) {
        stream.write(`${JSON.stringify({ level: 40, time: new Date().toISOString(), service: 'tollgate', dropped: droppedSinceNote, msg: 'log lines dropped: the log reader was not keeping up' })}\n`);
        droppedSinceNote = 0;
      }
      stream.write(line);
    },
    dropped: () => dropped,
  };
}

export function createLogger(level: string, destination: pino.DestinationStream = nonBlockingDestination(process.stdout)): Logger {
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
