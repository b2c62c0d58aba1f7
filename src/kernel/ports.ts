import { createServer } from 'node:net';

export interface WantedPort {
  /** What listens there, e.g. "HTTP". */
  name: string;
  /** The setting that chose the port. */
  variable: string;
  host: string;
  port: number;
}

/** A port the server is to listen on is taken (or not allowed to this user). */
export class PortUnavailableError extends Error {
  constructor(wanted: WantedPort, code: string) {
    super(
      code === 'EADDRINUSE'
        ? `${wanted.name} port ${wanted.port} on ${wanted.host} is already in use (${wanted.variable}); stop what listens there or choose another port`
        : `${wanted.name} port ${wanted.port} on ${wanted.host} cannot be listened on (${wanted.variable}): ${code}`,
    );
    this.name = 'PortUnavailableError';
  }
}

/**
 * Fails fast, before the database is opened and the loops started, when a port is taken: listens on each for a moment.
 * Port 0 (any free port) always passes.
 */
export async function checkPortsFree(wanted: WantedPort[]): Promise<void> {
  for (const port of wanted) {
    if (port.port === 0) continue;
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', (error: NodeJS.ErrnoException) => {
        const known = error.code === 'EADDRINUSE' || error.code === 'EACCES' || error.code === 'EADDRNOTAVAIL';
        reject(known ? new PortUnavailableError(port, error.code!) : error);
      });
      probe.listen({ port: port.port, host: port.host, exclusive: true }, () => probe.close(() => resolve()));
    });
  }
}
