import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { watchFiles } from './file-watch.js';
import type { Logger } from './logger.js';
import type { Scheduler } from './scheduler.js';

/** Where a server's TLS material lives, as files (a Kubernetes Secret, cert-manager, Istio's SDS-less mounts). */
export interface TlsFilePaths {
  cert: string;
  key: string;
  /** CA bundle that client certificates must chain to: mutual TLS. */
  clientCa?: string | undefined;
  /** With a client CA: refuse the handshake of a client without a valid certificate (else it may still call with a token). */
  requireClientCertificate?: boolean;
}

export interface TlsServerOptions extends SecureContextOptions {
  requestCert: boolean;
  rejectUnauthorized: boolean;
  ALPNProtocols?: string[];
  minVersion: 'TLSv1.2';
}

/** Reads the files into server options; throws, naming the file, when one is unreadable or they do not fit together. */
export function readTlsFiles(paths: TlsFilePaths): TlsServerOptions {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`);
    }
  };
  const options: TlsServerOptions = {
    cert: read(paths.cert, 'certificate'),
    key: read(paths.key, 'key'),
    ...(paths.clientCa ? { ca: read(paths.clientCa, 'client CA') } : {}),
    requestCert: Boolean(paths.clientCa),
    rejectUnauthorized: Boolean(paths.clientCa) && paths.requireClientCertificate !== false,
    minVersion: 'TLSv1.2',
  };
  try {
    // Parses the PEM and checks that the key belongs to the certificate, as the server will when it handshakes.
    createSecureContext(options);
  } catch (error) {
    throw new Error(`invalid TLS files (${paths.cert}, ${paths.key}${paths.clientCa ? `, ${paths.clientCa}` : ''}): ${(error as Error).message}`);
  }
  return options;
}

/**
 * Hands over new server options whenever the files change, so rotated certificates apply to new connections without
 * a restart (open ones keep theirs). A half-written or mismatched set is logged and the previous one kept.
 */
export function watchTlsFiles(name: string, paths: TlsFilePaths, apply: (options: TlsServerOptions) => void, logger: Logger, scheduler: Scheduler): { close(): void } {
  const files = [paths.cert, paths.key, ...(paths.clientCa ? [paths.clientCa] : [])];
  return watchFiles(
    name,
    files,
    () => {
      try {
        apply(readTlsFiles(paths));
        logger.info({ cert: paths.cert }, 'TLS files changed; new connections use them');
      } catch (error) {
        logger.error({ err: (error as Error).message }, 'TLS files changed but cannot be used; keeping the previous ones');
      }
    },
    scheduler,
  );
}
