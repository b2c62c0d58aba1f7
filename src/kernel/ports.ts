import { createServer } from 'node:net';

export interface WantedPort {
  /** What listens there, e.g. "HTTP". */
  name: string;
  /** The setting that chose the port. */
  variable: string;
  host: string;
  port: number;
}

const listenErrorCodes = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL']);

/** A port the server is to listen on is taken (or not allowed to this user). */
export class PortUnavailableError extends Error {
  constructor(wanted: WantedPort, code: string) {
    const where = `${wanted.name} port ${wanted.port} on ${wanted.host}`;
    super(
      code === 'EADDRINUSE'
        ? `${where} is already in use (${wanted.variable}): stop what listens there (another tollgate serve?) or set ${wanted.variable} to a free port`
        : code === 'EACCES'
          ? `${where} may not be listened on by this user (${wanted.variable}; ports below 1024 need privileges): set ${wanted.variable} to another port`
          : code === 'EADDRNOTAVAIL'
            ? `${where} cannot be listened on: ${wanted.host} is not an address of this machine (${wanted.variable.replace(/_PORT$/, '_HOST')})`
            : `${where} cannot be listened on (${wanted.variable}): ${code}`,
    );
    this.name = 'PortUnavailableError';
  }
}

/**
 * Fails fast, before the database is opened and the loops started, when a port is taken: listens on each for a moment.
 * Port 0 (any free port) always passes. Every taken port is named at once (one line each), so that a user moving
 * both does not learn of the second only after restarting for the first.
 */
export async function checkPortsFree(wanted: WantedPort[]): Promise<void> {
  const unavailable: PortUnavailableError[] = [];
  for (const port of wanted) {
    if (port.port === 0) continue;
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', (error: NodeJS.ErrnoException) => {
        if (!listenErrorCodes.has(error.code!)) return reject(error);
        unavailable.push(new PortUnavailableError(port, error.code!));
        resolve();
      });
      probe.listen({ port: port.port, host: port.host, exclusive: true }, () => probe.close(() => resolve()));
    });
  }
  if (unavailable.length === 1) throw unavailable[0];
  if (unavailable.length > 1) throw new Error(unavailable.map((each) => each.message).join('\n'));
}

/**
 * A server's own listen failure, e.g. a port taken between checkPortsFree and the listen, as a PortUnavailableError
 * naming its setting; undefined for any other error.
 */
export function portUnavailable(error: unknown, wanted: WantedPort[]): PortUnavailableError | undefined {
  const { code, port } = (error ?? {}) as { code?: string; port?: number };
  const named = wanted.find((candidate) => candidate.port === port);
  return code && listenErrorCodes.has(code) && named ? new PortUnavailableError(named, code) : undefined;
}
