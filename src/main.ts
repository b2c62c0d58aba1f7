import { loadConfig } from './config/index.js';
import { CatalogError } from './catalog/index.js';
import { checkPortsFree, createLogger, DataDirLockedError, ExitDeadline, portUnavailable } from './kernel/index.js';
import { listenPorts } from './roles.js';

/** `tollgate serve`: runs until SIGTERM or SIGINT, then drains. `role` (--role) overrides TOLLGATE_ROLE. */
export async function serve(role?: string): Promise<void> {
  let config;
  try {
    config = loadConfig(role === undefined ? process.env : { ...process.env, TOLLGATE_ROLE: role });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  // A taken port is the commonest reason a start fails: say so first, in plain words, before anything is opened.
  const ports = listenPorts(config);
  try {
    await checkPortsFree(ports);
  } catch (error) {
    for (const line of (error as Error).message.split('\n')) process.stderr.write(`tollgate: ${line}\n`);
    process.exit(1);
  }
  const logger = createLogger(config.logLevel);
  // The reader of stderr may be gone (EPIPE); an unhandled stream error would end the process mid-drain.
  process.stderr.on('error', () => {});
  process.on('unhandledRejection', (reason) => logger.error({ err: reason instanceof Error ? reason.stack : String(reason) }, 'unhandled rejection'));
  let app;
  try {
    // Loaded once the ports are known to be free: the whole service is most of a start's module loading, which a
    // start that fails on a taken port need not wait for.
    const { startRole } = await import('./app.js');
    app = await startRole(config, logger);
  } catch (error) {
    if (error instanceof CatalogError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    const plain = error instanceof DataDirLockedError ? error : portUnavailable(error, ports);
    if (plain) {
      logger.fatal(plain.message);
      process.stderr.write(`tollgate: ${plain.message}\n`);
      process.exit(1);
    }
    logger.fatal({ err: (error as Error).stack }, 'start failed');
    process.exit(1);
  }
  let signalled = false;
  const deadline = new ExitDeadline(logger);
  const shutdown = (signal: NodeJS.Signals) => {
    if (signalled) {
      // A second signal ends TOLLGATE_SHUTDOWN_DELAY_MS early; the drain itself always runs.
      logger.info({ signal }, 'draining now');
      deadline.arm(config.shutdownGraceMs, 'the stop did not end within TOLLGATE_SHUTDOWN_GRACE_MS');
      app.drainNow();
      return;
    }
    signalled = true;
    logger.info({ signal }, 'draining');
    deadline.arm(config.shutdownDelayMs + config.shutdownGraceMs, 'the stop did not end within TOLLGATE_SHUTDOWN_DELAY_MS + TOLLGATE_SHUTDOWN_GRACE_MS');
    void app.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  logger.info({ role: config.role }, 'started: SIGTERM or SIGINT drains and stops');
}
